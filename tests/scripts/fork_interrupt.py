"""Ctrl-C in a child forked while a torch-order epoch is being shuffled (used by
``tests/test_reliability.py``).

``python fork_interrupt.py HOW N W`` builds rank 0 of ``W`` of a torch-order epoch of ``N``
items (streamed: the shuffle runs on a helper thread, which a forked child does not have) and
forks at once. The child resumes near the end of the epoch, so it has to compute the whole
epoch itself: with ``HOW=reader`` through a reader at the last indices, with ``HOW=array``
through ``Epoch.array``. Half a second later the parent sends the child SIGINT and prints one
JSON object: what the child reported (``"KeyboardInterrupt"``, or ``"finished"`` if it was not
interrupted) and how long after the signal it reported it, in seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from resumable_samplers import _core


def child(epoch: _core.Epoch, how: str, w: int) -> None:
    # Ctrl-C's handler, also when this script was started with SIGINT ignored (nohup, a
    # background job of a non-interactive shell), which a child inherits.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        os.write(w, b"started\n")
        if how == "reader":
            next(epoch.reader(len(epoch) - 10))
        else:
            epoch.array(len(epoch) - 10)
        os.write(w, b"finished\n")
    except KeyboardInterrupt:
        os.write(w, b"KeyboardInterrupt\n")


def main(how: str, n: int, replicas: int) -> None:
    epoch = _core.Epoch(n, replicas, 0, 0, False, "torch", 5, 0)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            child(epoch, how, w)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    lines = os.fdopen(r)
    assert lines.readline().strip() == "started"
    time.sleep(0.5)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGINT)
    answer = lines.readline().strip()
    latency = time.monotonic() - t0
    os.waitpid(pid, 0)
    print(json.dumps({"child": answer, "latency": round(latency, 3)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(float(sys.argv[2])), int(sys.argv[3]))
