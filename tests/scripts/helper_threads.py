"""Helper threads under memory pressure, in a process of their own (used by
``tests/test_reliability.py``).

``python helper_threads.py ORDER RUNS`` forks ``RUNS`` children, one after the other. Each runs
one epoch of ``ORDER`` (``torch``: a streamed torch-order epoch, shuffled on a helper thread;
``lazy``: a lazy epoch read with chunks computed ahead on helper threads), so that it has started
and ended helper threads (glibc keeps their stacks for reuse). It then limits the address space
(``RLIMIT_AS``) to what is mapped now, drops the first epoch and runs the next one. For each
child the parent prints one JSON object: its exit code and its outcome, ``"ok"`` if the next
epoch's values were right, ``"wrong"`` if not, or the exception's name. A helper thread that
needs memory the limit refuses must not end the process: every exit code must be 0.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import sys
import time

import numpy as np

from resumable_samplers import _core

TORCH_N = 1 << 21  # streamed (2**20 items or more), shuffled on a helper thread
LAZY_N = 1 << 22
LAZY_READ = 300_000  # chunks of 8192 and more are computed ahead on helper threads
SEED = 5


def status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def wait_for_one_thread() -> None:
    """Until the helper threads of the first epoch have ended (their stacks are then cached)."""
    deadline = time.monotonic() + 30
    while status("Threads") > 1 and time.monotonic() < deadline:
        time.sleep(0.01)


def read(epoch: _core.Epoch, order: str) -> list[int]:
    if order == "torch":
        head = list(itertools.islice(epoch.reader(0), 1000))
        return head + list(epoch.reader(len(epoch) - 1000))
    return list(itertools.islice(epoch.reader(0), LAZY_READ))


def scenario(order: str) -> str:
    """The two epochs, the second under the limit; the outcome."""
    n = TORCH_N if order == "torch" else LAZY_N
    expected = _core.Epoch(n, 1, 0, 0, False, order, SEED, 1).array(0)
    if order == "torch":
        want = np.concatenate([expected[:1000], expected[-1000:]]).tolist()
    else:
        want = expected[:LAZY_READ].tolist()
    del expected
    first = _core.Epoch(n, 1, 0, 0, False, order, SEED, 0)
    read(first, order)
    wait_for_one_thread()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") * 1024, hard))
    try:
        del first
        got = read(_core.Epoch(n, 1, 0, 0, False, order, SEED, 1), order)
        outcome = "ok" if got == want else "wrong"
    except Exception as e:
        outcome = f"{type(e).__module__}.{type(e).__qualname__}"
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return outcome


def main(order: str, runs: int) -> None:
    for run in range(runs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                os.write(w, scenario(order).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            outcome = f.read()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"run": run, "exit": code, "outcome": outcome}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
