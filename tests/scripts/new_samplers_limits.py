"""The mixture, length-grouping and shard cores under an address-space limit, in processes of
their own (used by ``tests/test_reliability_new_samplers.py``).

``python new_samplers_limits.py CASE`` runs trials, each in a forked child that sets
``RLIMIT_AS`` to its current mapping plus some slack and then does the case's work; for each
trial it prints one JSON object: the slack in KiB, the child's exit code and its outcome, ``"ok"``
if the result was right (compared, with the limit lifted, with the same work done again),
``"wrong"`` if not, or the exception's name. Nothing may end a child: every exit code must be 0.

Cases:

- ``length`` and ``budget``: a length-grouped epoch and token-budget batches of 100,000 samples,
  whose megabatches are sorted on helper threads (and, for the budget, the generator's draws
  skipped on one). No thread ran before, so a helper needs a new stack; the slack is swept in
  4 KiB steps around the stack sizes of a helper (256 KiB) and of a ``std::thread`` (2 MiB), where
  the stack fits and little else does. Run with ``OPENBLAS_NUM_THREADS=1`` (no thread pool in
  the process), so that a new thread finds no spare ``malloc`` arena either.
- ``mixture-reader``: a lazy-order mixture epoch read into a list through a reader, whose chunks
  are computed ahead on helper threads; an epoch runs first so that helpers have started and
  ended (their stacks are cached), then the slack is swept from 0 to 8 MiB: the growing list
  takes the room left while the helpers work.
- ``mixture-array``: ``array()`` of a mixture epoch of 4 million positions (16 MB, copied out
  through an 8 MB buffer), the slack swept from 0 to 40 MiB in 2 MiB steps.
- ``shard``: a shard order over 2**20 shards (their offsets and the epoch's shard table, 8 bytes
  a shard each) and ``array()`` of its epoch (about 1 million positions), the slack swept from 0
  to 40 MiB in 2 MiB steps.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from helper_threads import status, wait_for_one_thread

from resumable_samplers import _core

N = 100_000
LENGTHS = ((np.arange(N, dtype=np.uint64) * 2654435761) % 5000).astype(np.uint16)
LENGTHS.flags.writeable = False  # read in place
MIXTURE = ([1 << 20, 1 << 19, 3000], [0], [[5, 3, 1]], "lazy", 5)
SHARD_SIZES = ((np.arange(1 << 20, dtype=np.uint64) * 2654435761) % 3).astype(np.int64)
READ = 300_000  # chunks of 8192 indices and more are computed ahead on helper threads


# Each case works under the limit and returns what `value` turns into lists once the limit is
# lifted (building those lists under the limit would fail in Python, not in the core).


def length(epoch: int) -> Any:
    return _core.length_grouped_epoch(LENGTHS, 4999, 4096, 1, 7, epoch, 1, 0, 0, False)


def budget(epoch: int) -> Any:
    return _core.TokenBudgetBatches(LENGTHS, 4999, 4096, 1, 20_000, 64, 7, epoch)


def mixture_reader(epoch: int) -> Any:
    # A list that grows as it is read: the process runs out of room while helpers compute.
    e = _core.Mixture(*MIXTURE).epoch(1 << 21, 1, 0, 0, False, epoch)
    return list(itertools.islice(e.reader(0), READ))


def mixture_array(epoch: int) -> Any:
    return _core.Mixture(*MIXTURE).epoch(1 << 22, 1, 0, 0, False, epoch).array(0)


def shard(epoch: int) -> Any:
    return _core.ShardSizes(SHARD_SIZES).epoch(8, 7, epoch, [], 1, 0, False).array(0)


def value(got: Any) -> Any:
    if isinstance(got, _core.TokenBudgetBatches):
        batches = [got.batch(k) for k in range(len(got))]
        return batches, got.epoch(1, 0, 0, False).array(0).tolist()
    if isinstance(got, _core.Epoch):
        return got.array(0).tolist()
    return np.asarray(got).tolist()


def around(stack_kib: int) -> list[int]:
    return list(range(stack_kib - 64, stack_kib + 64, 4))


CASES: dict[str, tuple[Callable[[int], Any], bool, list[int]]] = {
    # work, whether an epoch runs first, the slacks in KiB
    "length": (length, False, around(256) + around(2048)),
    "budget": (budget, False, around(256) + around(2048)),
    "mixture-reader": (mixture_reader, True, list(range(0, 8 << 10, 512))),
    "mixture-array": (mixture_array, False, list(range(0, 40 << 10, 2 << 10))),
    "shard": (shard, False, list(range(0, 40 << 10, 2 << 10))),
}


def trial(work: Callable[[int], Any], warm: bool, slack_kib: int) -> str:
    if warm:
        work(0)
        wait_for_one_thread()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") * 1024 + (slack_kib << 10), hard))
    try:
        got = work(1)
    except Exception as e:
        return f"{type(e).__module__}.{type(e).__qualname__}"
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    got = value(got)
    return "ok" if got == value(work(1)) else "wrong"


def main(case: str) -> None:
    work, warm, slacks = CASES[case]
    for slack in slacks:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                os.write(w, trial(work, warm, slack).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            outcome = f.read()
        _, st = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(st)
        print(json.dumps({"slack_kib": slack, "exit": code, "outcome": outcome}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
