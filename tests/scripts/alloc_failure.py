"""Allocation failures, in a process of their own (used by ``tests/test_reliability.py``).

``python alloc_failure.py MODE...`` prints one JSON object per case, ``{"case": "MODE: ...",
"outcome": ...}``, where the outcome is ``"ok"`` (the call succeeded and its result was right),
``"wrong"`` (it succeeded with a wrong result) or the exception's qualified name; then ``"end"``
and exits 0, normally, if the process survived. Modes:

- ``impossible``: buffers no machine has (``randperm(2**62)``, a torch-order sampler over
  ``2**40`` items, iterated or ``indices()``);
- ``limited``: realistic sizes (16 MB) under an address-space limit (``RLIMIT_AS``) swept from
  "nothing fits" to "everything fits", so that each allocation fails in some trial (the
  distributed sampler's second buffer, its share, fails after its first succeeded);
- ``threads`` (root only): the lazy order's multi-threaded fill when the OS refuses to create a
  thread (``RLIMIT_NPROC``);
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from resumable_samplers import (
    ResumableDistributedSampler,
    ResumableRandomSampler,
    randperm,
)


class Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def torch_perm(n: int, seed: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()  # type: ignore[no-any-return]


def outcome(f: Callable[[], Any], want: Any = None) -> str:
    """Run ``f``; ``"ok"`` if it returns ``want`` (anything if ``want`` is None)."""
    try:
        got = f()
    except BaseException as e:
        return f"{type(e).__module__}.{type(e).__qualname__}"
    if want is None:
        return "ok"
    if isinstance(want, np.ndarray):
        return "ok" if np.array_equal(np.asarray(got), want) else "wrong"
    return "ok" if got == want else "wrong"


def emit(case: str, result: str) -> None:
    print(json.dumps({"case": case, "outcome": result}), flush=True)


def impossible() -> list[tuple[str, str]]:
    """Buffers that cannot exist; then the next (small) call must work."""
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("randperm(2**62)", lambda: randperm(2**62)),
        ("randperm(2**62, lazy)", lambda: randperm(2**62, permutation="lazy")),
        ("randperm(2**40)", lambda: randperm(2**40, 5)),
        ("iter(Random(2**40))", lambda: next(iter(ResumableRandomSampler(Sized(2**40))))),
        ("Random(2**40).indices()", lambda: ResumableRandomSampler(Sized(2**40)).indices()),
        (
            "iter(Distributed(2**40, 1024, 3))",
            lambda: list(ResumableDistributedSampler(Sized(2**40), 1024, 3)),
        ),
        (
            "Random(2**40, lazy).indices()",
            lambda: ResumableRandomSampler(Sized(2**40), permutation="lazy").indices(),
        ),
    ]
    out = []
    for name, f in calls:
        out.append((name, outcome(f)))
        out.append(
            (f"after {name}", outcome(lambda: randperm(1000, 3).tolist(), torch_perm(1000, 3)))
        )
    return out


def vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def under_limit(extra: int, f: Callable[[], Any]) -> tuple[str, Any]:
    """Call ``f`` with the address space limited to what is mapped now plus ``extra`` bytes;
    return ``("ok", result)`` or ``(exception name, None)``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm_size() + extra, hard))
    try:
        return "ok", f()
    except BaseException as e:
        return f"{type(e).__module__}.{type(e).__qualname__}", None
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def limited() -> list[tuple[str, str]]:
    """Each call under limits from 0 to 32 MiB above the current mapping, in 2 MiB steps: a
    buffer of 15.3 MiB, or 15.3 then 7.6 MiB for the distributed sampler, must fit."""
    n, seed = 4 * 10**6, 5
    ref = np.array(torch_perm(n, seed), dtype=np.uint32)
    calls: list[tuple[str, Callable[[], Any], Any]] = [
        ("randperm(4e6)", lambda: randperm(n, seed), ref),
        (
            "Random(4e6).indices()",
            lambda: ResumableRandomSampler(Sized(n), seed=seed).indices(),
            ref,
        ),
        (
            "Distributed(4e6, 2, 1).indices()",
            lambda: ResumableDistributedSampler(Sized(n), 2, 1, seed=seed).indices(),
            ref[1::2],
        ),
    ]
    out = []
    for extra in range(0, 32 << 20, 2 << 20):
        for name, f, want in calls:
            result, got = under_limit(extra, f)
            if result == "ok" and not np.array_equal(got, want):
                result = "wrong"
            del got
            out.append((f"{name} with {extra >> 20} MiB to spare", result))
    out.append(
        (
            "randperm(1000) at the end",
            outcome(lambda: randperm(1000, 3).tolist(), torch_perm(1000, 3)),
        )
    )
    return out


def threads() -> list[tuple[str, str]]:
    """The lazy order's multi-threaded fill when the OS refuses new threads: as root, become
    ``nobody`` and set ``RLIMIT_NPROC`` to the threads this process already has."""
    n, seed = 1 << 20, 5  # the lazy fill uses all cores from 2**18 positions on
    ref = randperm(n, seed, permutation="lazy").copy()
    with open("/proc/self/status") as f:
        running = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    resource.setrlimit(resource.RLIMIT_NPROC, (running, running))
    sampler = ResumableRandomSampler(Sized(n), seed=seed, permutation="lazy")
    return [
        ("randperm(2**20, lazy)", outcome(lambda: randperm(n, seed, permutation="lazy"), ref)),
        ("Random(2**20, lazy).indices()", outcome(sampler.indices, ref)),
        # Iteration computes each next chunk on a helper thread, or here when refused one.
        ("list(Random(2**20, lazy))", outcome(lambda: np.array(list(sampler)), ref)),
        (
            "randperm(1000) at the end",
            outcome(lambda: randperm(1000, 3).tolist(), torch_perm(1000, 3)),
        ),
    ]


MODES = {"impossible": impossible, "limited": limited, "threads": threads}


def main(modes: list[str]) -> None:
    # glibc malloc, made predictable for the address-space sweep: big buffers are mmapped and
    # unmapped when freed (fixed thresholds), so the mapping measured before a call holds no
    # freed buffer; and a single arena, as after a failed allocation glibc would otherwise move
    # the thread to a new arena whose 64 MiB reservation serves later buffers unlimited.
    libc = ctypes.CDLL(None)
    libc.mallopt(-3, 128 << 10)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 128 << 10)  # M_TRIM_THRESHOLD
    libc.mallopt(-8, 1)  # M_ARENA_MAX
    for mode in modes:
        for case, result in MODES[mode]():
            emit(f"{mode}: {case}", result)
    emit("end", "ok")


if __name__ == "__main__":
    main(sys.argv[1:])
