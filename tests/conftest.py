"""Shared test helpers: torch references, written the way torch and helios-ml compute them."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import torch


def torch_perm(n: int, seed: int) -> list[int]:
    """``torch.randperm`` for ``torch.Generator().manual_seed(seed)``, as a list."""
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.randperm(n, generator=g).tolist()  # type: ignore[no-any-return]


class Sized:
    """A dataset that has only a length (samplers never read items)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def sigint_ignored() -> None:
    """``preexec_fn`` that starts a child with SIGINT ignored, as a background job of a
    non-interactive shell or ``nohup`` starts it: a test that interrupts such a child passes only
    if the child sets its own Ctrl-C handler, wherever the test runner was started."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def ctrl_c_handler() -> Iterator[None]:
    """Python's Ctrl-C handler in this process for the block, also when the test runner was
    started with SIGINT ignored (which CI does on purpose, see ``.ci/run``)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
