"""Memory at the switch from one torch-order epoch to the next, in a process of its own (used by
``tests/test_reliability.py``).

``python epoch_switch.py MODE N`` prints JSON objects, one per line, then ``{"end": "ok"}``:

- ``core-limited``: the core alone. Epoch 0 of ``N`` items is built and read to its end by a
  reader, which the caller keeps (as a loop variable outlives its loop). The address space
  (``RLIMIT_AS``) is then limited to what is mapped now plus half an epoch; the epoch object is
  dropped and epoch 1 is built and read: it fits only if the finished reader let go of epoch 0.
  Prints ``{"outcome": "ok"}`` (epoch 1's values right), ``"wrong"``, or the exception's name.
- ``core-peak``: the same for epochs 0 to 3 without a limit; prints the peak resident memory
  (``VmHWM``, MiB) before the first epoch and after each, and the epoch's size.
- ``sampler-limited`` and ``sampler-peak``: the same through ``ResumableRandomSampler``, with
  ``set_epoch`` and ``iter()``, the sampler and its last iterator kept (epoch 1 fits only if
  the sampler lets go of epoch 0 before it builds epoch 1).
"""

from __future__ import annotations

import ctypes
import json
import resource
import sys
from collections import deque
from typing import Any

from resumable_samplers import ResumableRandomSampler, _core

SEED = 3
TAIL = 1000  # read the last indices only: they need the whole shuffle


class Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def status(field: str) -> int:
    """A ``/proc/self/status`` field in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def core_epoch(n: int, epoch: int) -> tuple[_core.Epoch, Any, list[int]]:
    """Builds a core epoch and reads its tail with a reader; returns the epoch, the exhausted
    reader and the tail."""
    e = _core.Epoch(n, 1, 0, 0, False, "torch", SEED, epoch)
    reader = e.reader(n - TAIL)
    return e, reader, list(reader)


def sampler_epoch(s: ResumableRandomSampler, epoch: int) -> tuple[Any, list[int]]:
    """``set_epoch`` and iterate to the end (skipping to the tail); returns the iterator."""
    s.set_epoch(epoch)
    s.start_iter = len(s) - TAIL
    it = iter(s)
    return it, list(it)


def expected_tail(n: int, epoch: int) -> list[int]:
    e = _core.Epoch(n, 1, 0, 0, False, "torch", SEED, epoch)
    return list(e.reader(n - TAIL))


def main(mode: str, n: int) -> None:
    # Big buffers are mapped and unmapped by glibc (fixed thresholds), one arena: what is mapped
    # is what is alive.
    libc = ctypes.CDLL(None)
    libc.mallopt(-3, 128 << 10)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 128 << 10)  # M_TRIM_THRESHOLD
    libc.mallopt(-8, 1)  # M_ARENA_MAX
    epoch_mib = n * 4 / 2**20
    through_sampler = mode.startswith("sampler")
    sampler = ResumableRandomSampler(Sized(n), seed=SEED)

    current: list[_core.Epoch] = []  # the core epoch alive now (the sampler keeps its own)

    def one(epoch: int) -> tuple[Any, list[int]]:
        if through_sampler:
            return sampler_epoch(sampler, epoch)
        current.clear()  # drop the previous epoch, then build the next
        e, reader, tail = core_epoch(n, epoch)
        current.append(e)
        return reader, tail

    if mode.endswith("limited"):
        want = expected_tail(n, 1)
        kept, _ = one(0)  # the caller keeps the finished iterator
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = status("VmSize") * 1024 + n * 4 // 2
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        try:
            kept, got = one(1)
            outcome = "ok" if got == want else "wrong"
        except Exception as e:
            outcome = f"{type(e).__module__}.{type(e).__qualname__}"
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        emit(outcome=outcome, epoch_mib=round(epoch_mib, 1))
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak (VmHWM) to what is resident now
        peaks = [round(status("VmHWM") / 1024, 1)]
        kept: Any = None
        for epoch in range(4):
            kept, _ = one(epoch)
            peaks.append(round(status("VmHWM") / 1024, 1))
        deque(kept, maxlen=0)
        emit(peak_mib=peaks, epoch_mib=round(epoch_mib, 1))
    emit(end="ok")


if __name__ == "__main__":
    main(sys.argv[1], int(float(sys.argv[2])))
