"""Many epochs in one process: memory, threads and file descriptors must stay flat (used by
``tests/test_reliability.py``; the large run's figures are in ``docs/reliability.md``).

``python long_run.py ORDER N EPOCHS`` iterates ``EPOCHS`` epochs of a ``ResumableRandomSampler``
over ``N`` items with ``permutation=ORDER`` (``torch`` or ``lazy``), every index of every epoch,
the way a training loop does (``set_epoch``, then ``iter()``), and prints one JSON object: the
resident memory (``VmRSS``, MiB) after each of the first epochs and at the end, its largest
value from the tenth epoch on, the peak (``VmHWM``), the threads and the open file descriptors
before the first epoch and after the last (once the helper threads have ended), and the time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque

from resumable_samplers import ResumableRandomSampler

WARM = 10  # epochs after which memory has reached its steady state


class Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settled_threads(baseline: int) -> int:
    """The thread count once helper threads of finished epochs have ended (at most 5 s)."""
    deadline = time.monotonic() + 5
    while status("Threads") > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    return status("Threads")


def main(order: str, n: int, epochs: int) -> None:
    s = ResumableRandomSampler(Sized(n), seed=1, permutation=order)
    threads0, fds0 = status("Threads"), fds()
    rss: list[float] = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        s.set_epoch(epoch)
        deque(iter(s), maxlen=0)
        rss.append(status("VmRSS") / 1024)
    took = time.perf_counter() - t0
    out = {
        "order": order,
        "n": n,
        "epochs": epochs,
        "seconds": round(took, 1),
        "rss_first_mib": [round(r, 1) for r in rss[:3]],
        "rss_warm_mib": round(rss[min(WARM, epochs) - 1], 1),
        "rss_max_after_warm_mib": round(max(rss[min(WARM, epochs) - 1 :]), 1),
        "rss_end_mib": round(rss[-1], 1),
        "peak_mib": round(status("VmHWM") / 1024, 1),
        "threads": [threads0, settled_threads(threads0)],
        "fds": [fds0, fds()],
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(float(sys.argv[2])), int(sys.argv[3]))
