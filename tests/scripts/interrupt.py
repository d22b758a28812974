"""Ctrl-C during a long torch-order generation (used by ``tests/test_reliability.py``).

Prints ``started`` and builds the epoch of a sampler over ``N`` items (the inside-out regime of
torch's randperm, a 1.2 GB buffer); the test sends SIGINT about a second later. The
``KeyboardInterrupt`` handler prints ``interrupted``; then the script checks that the sampler's
state is unchanged, that small permutations and samplers still equal torch's, and (``--full``)
that the very same sampler now builds the whole epoch, equal to torch's. Prints ``OK`` and exits
0 if all holds, else exits non-zero.
"""

from __future__ import annotations

import hashlib
import signal
import sys
import time

import numpy as np
import numpy.typing as npt
import torch
import torch.utils.data as tud

from resumable_samplers import ResumableDistributedSampler, ResumableRandomSampler, randperm

N = 3 * 10**8  # above 214,748,364: torch's inside-out regime
SEED = 7
# torch.randperm(N, generator=torch.Generator().manual_seed(SEED)) with torch 2.15 (48 s here):
# its first and last 4 values, and the SHA-256 of every SAMPLE_STEP-th value as int64 bytes.
FIRST = [93268064, 268582069, 165770247, 155513421]
LAST = [269596226, 42038116, 227143732, 12701258]
SAMPLE_STEP = 999_983
SAMPLE_SHA256 = "e0146edd9538f515df826513fb666486929ef2b940269175df37ccd1afc47e7f"


class Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def sample_sha256(a: npt.NDArray[np.generic], step: int) -> str:
    return hashlib.sha256(np.ascontiguousarray(a[::step]).astype(np.int64).tobytes()).hexdigest()


def torch_perm(n: int, seed: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()  # type: ignore[no-any-return]


def check(cond: bool, what: str) -> None:
    if not cond:
        print(f"FAILED: {what}", flush=True)
        raise SystemExit(1)


def main(argv: list[str]) -> int:
    # Ctrl-C's handler, also when the test runner was started with SIGINT ignored (nohup, a
    # background job of a non-interactive shell): a child inherits that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    s = ResumableRandomSampler(Sized(N), seed=SEED, batch_size=4)
    before = s.state_dict()
    print("started", flush=True)
    t = time.monotonic()
    try:
        next(iter(s))  # starts an iterator, which builds the epoch: ~10 s, the GIL released
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - t:.3f} s of generation", flush=True)
    else:
        print("finished without being interrupted", flush=True)
        return 2

    check(s.state_dict() == before, "the interrupted sampler's state changed")
    check(randperm(1000, 3).tolist() == torch_perm(1000, 3), "randperm after the interrupt")
    small = ResumableRandomSampler(Sized(5000), seed=11, batch_size=4)
    check(list(small) == torch_perm(5000, 11), "a small sampler after the interrupt")
    d = ResumableDistributedSampler(Sized(1001), 3, 2, seed=5)
    ref = tud.DistributedSampler(Sized(1001), 3, 2, seed=5)  # type: ignore[arg-type]
    check(list(d) == list(ref), "a distributed sampler after the interrupt")
    if "--full" in argv:
        t = time.monotonic()
        arr = s.indices()  # the same sampler object, now uninterrupted
        print(f"rebuilt the whole epoch in {time.monotonic() - t:.1f} s", flush=True)
        check(len(arr) == N, "length of the rebuilt epoch")
        check(arr[:4].tolist() == FIRST and arr[-4:].tolist() == LAST, "ends of the epoch")
        check(sample_sha256(arr, SAMPLE_STEP) == SAMPLE_SHA256, "sampled values of the epoch")
        it = iter(s)
        check([next(it) for _ in range(4)] == FIRST, "iterating the rebuilt epoch")
    print("OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
