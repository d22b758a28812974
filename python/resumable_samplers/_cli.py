"""argparse ``type=`` converters for the command line's numeric options.

Each raises ``argparse.ArgumentTypeError`` for a value the command cannot use, so that argparse
prints the usage and the option's name and exits with status 2, as for its own errors, instead
of a traceback later. They import neither torch nor NumPy.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from resumable_samplers._limits import MAX_LEN as MAX_LEN
from resumable_samplers._limits import SEED_END as SEED_END
from resumable_samplers._limits import SEED_MIN as SEED_MIN
from resumable_samplers._limits import SEED_RANGE as SEED_RANGE
from resumable_samplers._limits import text as _text


def _whole(token: str, what: str) -> int:
    """``token`` as an integer: decimal digits, or ``1e6`` notation for a whole number."""
    token = token.strip().replace("_", "")
    try:
        return int(token)
    except ValueError:
        pass
    try:
        f = float(token)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {token!r}") from None
    if not math.isfinite(f) or not f.is_integer():
        raise argparse.ArgumentTypeError(f"{what} should be a whole number, got {token!r}")
    return int(f)


def int_in(lo: int, hi: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """An integer in ``[lo, hi]`` (``1e6`` notation allowed)."""

    def parse(text: str) -> int:
        value = _whole(text, what)
        if value < lo or (hi is not None and value > hi):
            upper = "" if hi is None else f" and at most {_text(hi)}"
            raise argparse.ArgumentTypeError(f"should be at least {_text(lo)}{upper}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in errors: "invalid int value: 'x'"
    return parse


def seed(text: str) -> int:
    """A seed in torch's range ``[-2**63, 2**64)``."""
    value = _whole(text, "an integer seed")
    if not SEED_MIN <= value < SEED_END:
        raise argparse.ArgumentTypeError(f"seed should be in {SEED_RANGE}, got {value}")
    return value


def sizes(text: str, minimum: int = 1) -> list[int]:
    """Comma-separated sizes in ``[minimum, 2**63 - 1]``, ``1e6`` notation allowed; sorted,
    without repeats, at least one."""
    out: set[int] = set()
    for token in text.split(","):
        if not token.strip():
            continue
        value = _whole(token, "a size")
        if value < minimum:
            kind = "positive" if minimum == 1 else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"a size should be {kind}, got {token.strip()}")
        if value > MAX_LEN:
            raise argparse.ArgumentTypeError(
                f"a size should be at most {_text(MAX_LEN)}, got {token.strip()}"
            )
        out.add(value)
    if not out:
        raise argparse.ArgumentTypeError(f"no sizes given in {text!r}")
    return sorted(out)


def one_size(text: str) -> int:
    """One size in ``[1, 2**63 - 1]``."""
    found = sizes(text)
    if len(found) != 1:
        raise argparse.ArgumentTypeError(f"expected one size, got {text!r}")
    return found[0]


def positive_float(hi: float) -> Callable[[str], float]:
    """A finite number in ``(0, hi]``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and 0 < value <= hi):
            raise argparse.ArgumentTypeError(
                f"should be a positive number, at most {hi:.15g}, got {text!r}"
            )
        return value

    parse.__name__ = "float"
    return parse
