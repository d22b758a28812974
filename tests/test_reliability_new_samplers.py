"""Reliability of the mixture, length-grouping and shard samplers: fork while a helper thread works,
address-space limits, and lengths changed by another thread while an epoch is built.

DESIGN.md section 4 (safe after ``fork``) and section 3.1 (``MemoryError``, never an abort), as
``tests/test_reliability.py`` checks them for the plain samplers. References are torch itself
(``torch.randperm``), transformers' ``get_length_grouped_indices`` and a real ``DataLoader``;
failures that could take a process down happen in forked children or subprocesses.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch.utils.data as tud

import resumable_samplers as rs
from conftest import ctrl_c_handler, torch_perm

SCRIPTS = Path(__file__).parent / "scripts"

# --- 1. fork while a mixture's read-ahead thread computes a source's next cycle ---------------

CYCLE_N = 2**23  # one cycle of the source: torch.randperm(2**23), about 0.2 s of work
SEED = 3
BATCH = 100
# A reader's chunks hold 1024, 2048, 4096, 8192, ... indices; the fourth is the first one
# computed ahead on a helper thread, started when the third becomes current.
THIRD_CHUNK_STARTS = 1024 + 2048
READ_AFTER = 20_000


def _thread_ids() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def _cpu_ns(tid: str) -> int | None:
    """On-CPU time of one of this process's threads, or None once it has ended."""
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            return int(f.read().split()[0])
    except OSError:
        return None


def _mixture() -> tuple[rs.ResumableMixtureSampler, list[int]]:
    """A torch-order mixture of one source resuming 8000 positions before the end of the
    source's first cycle, and the stream it yields from there (``torch.randperm`` of cycles 0
    and 1, seeded with ``SEED`` and ``SEED + 1``)."""
    s = rs.ResumableMixtureSampler(
        [CYCLE_N], [1], num_samples=2 * CYCLE_N, seed=SEED, batch_size=BATCH, permutation="torch"
    )
    s.start_iter = (CYCLE_N - 8000) // BATCH  # the fourth chunk crosses into cycle 1
    start = s.start_iter * BATCH
    cycles = torch_perm(CYCLE_N, SEED)[start:] + torch_perm(CYCLE_N, SEED + 1)[:READ_AFTER]
    return s, cycles[: THIRD_CHUNK_STARTS + 1 + READ_AFTER]


def _busy(s: rs.ResumableMixtureSampler) -> tuple[Iterator[int], list[int]]:
    """An iterator of ``s`` whose read-ahead thread is, right now, computing the source's next
    cycle (a shuffle of ``CYCLE_N`` items), and what it read so far. The caller forks at once."""
    it = iter(s)
    head = [next(it) for _ in range(THIRD_CHUNK_STARTS)]
    before = _thread_ids()
    head.append(next(it))  # the third chunk is current: the fourth is computed ahead
    helpers = _thread_ids() - before
    assert helpers, "no read-ahead thread started"
    # Deterministic timing: wait until the helper has worked 20 ms (it needs about 200 ms), so
    # it is inside the new cycle's shuffle.
    deadline = time.monotonic() + 30
    while not any((_cpu_ns(t) or 0) >= 20_000_000 for t in helpers):
        assert all(_cpu_ns(t) is not None for t in helpers), "the helper ended unobserved"
        assert time.monotonic() < deadline, "the helper never ran"
        time.sleep(0.0005)
    return it, head


def _read_from_child(r: int, pid: int, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        chunk = os.read(r, 1 << 16)
        if not chunk:
            return data
        data += chunk


@pytest.mark.timeout(180)
def test_fork_while_a_mixture_helper_computes_a_cycle_does_not_hang() -> None:
    s, want = _mixture()
    it, head = _busy(s)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the helper thread did not come along
        code = 1
        try:
            os.close(r)
            os.write(w, pickle.dumps(list(itertools.islice(it, READ_AFTER))))
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data = _read_from_child(r, pid, 60)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert head + pickle.loads(data) == want  # torch.randperm of cycles 0 and 1
    assert head + list(itertools.islice(it, READ_AFTER)) == want  # and the parent goes on


class _Continue(tud.IterableDataset[list[int]]):
    """Each worker continues its (forked) copy of a live iterator and yields what it read."""

    def __init__(self, it: Iterator[int], count: int) -> None:
        self.it = it
        self.count = count

    def __iter__(self) -> Iterator[list[int]]:
        yield list(itertools.islice(self.it, self.count))


@pytest.mark.timeout(180)
def test_dataloader_fork_workers_while_a_mixture_helper_computes_a_cycle() -> None:
    s, want = _mixture()
    dataset = _Continue(iter(()), READ_AFTER)
    loader = tud.DataLoader(
        dataset,
        batch_size=None,
        num_workers=2,
        multiprocessing_context="fork",
        timeout=60,  # a hung worker fails the test
    )
    dataset.it, head = _busy(s)
    got = list(loader)  # the workers are forked at once, while the helper works
    assert got == [want[len(head) :]] * 2
    assert head + list(itertools.islice(dataset.it, READ_AFTER)) == want


# --- 2. address-space limits --------------------------------------------------------------------


def _limits(case: str) -> tuple[int, list[dict[str, Any]], str]:
    # One thread in the process (no OpenBLAS pool): a new thread then finds no spare arena.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "new_samplers_limits.py"), case],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, lines, proc.stderr


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", ["length", "budget", "mixture-reader", "mixture-array", "shard"])
def test_new_samplers_never_end_a_process_short_of_address_space(case: str) -> None:
    """Length grouping's sort threads and generator skip, a mixture's read-ahead thread and its
    copy buffer, the shard order's tables and epoch array, under ``RLIMIT_AS`` at the current
    mapping plus a swept slack (see ``tests/scripts/new_samplers_limits.py``): ``MemoryError``
    or the right result, never an exit 127 ("cannot allocate memory for thread-local data") or
    an abort."""
    code, lines, err = _limits(case)
    assert code == 0 and lines, err[-3000:]
    exits = collections.Counter(line["exit"] for line in lines)
    outcomes = collections.Counter(line["outcome"] for line in lines)
    print(f"{case}: {len(lines)} trials, exit codes {dict(exits)}, outcomes {dict(outcomes)}")
    assert exits == {0: len(lines)}, [line for line in lines if line["exit"] != 0]
    assert "thread-local data" not in err and "memory allocation of" not in err, err[-3000:]
    assert set(outcomes) <= {"ok", "builtins.MemoryError"}, outcomes
    assert outcomes["ok"] > 0, outcomes


# --- 3. lengths changed by another thread while an epoch is built -----------------------------

LENGTHS_N = 1_100_000  # two chunks of megabatch sorts, with a signal check between them


@pytest.mark.timeout(300)
def test_writable_lengths_changed_during_a_build_do_not_change_the_order() -> None:
    """The build releases the GIL; another thread (here a signal handler, run inside the build
    when the core checks for signals) reverses a writable ``lengths`` array meanwhile. The
    order must be that of the values when the build started, as transformers computes it."""
    hf = pytest.importorskip("transformers.trainer_pt_utils")
    import torch

    lengths = ((np.arange(LENGTHS_N, dtype=np.uint64) * 2654435761) % 5000).astype(np.int64)
    original = lengths.copy()
    g = torch.Generator().manual_seed(SEED)
    want = hf.get_length_grouped_indices(original.tolist(), 8, None, generator=g)

    in_build = rs.ResumableLengthGroupedSampler._build_epoch.__code__
    changed = threading.Event()

    def reverse(signum: int, frame: Any) -> None:
        # Only while the core builds the epoch (called from _build_epoch), once per build.
        if frame is not None and frame.f_code is in_build and not changed.is_set():
            lengths[:] = lengths[::-1].copy()
            changed.set()

    done = threading.Event()

    def poke() -> None:
        while not done.is_set():
            os.kill(os.getpid(), signal.SIGUSR1)
            done.wait(0.0005)

    old = signal.signal(signal.SIGUSR1, reverse)
    poker = threading.Thread(target=poke, daemon=True)
    poker.start()
    changed_during = 0
    try:
        for _ in range(20):
            lengths[:] = original
            changed.clear()
            s = rs.ResumableLengthGroupedSampler(lengths, 8, seed=SEED)
            got = list(s)
            assert got == want, "the order follows values changed during the build"
            if changed.is_set():
                changed_during += 1
                if changed_during == 3:
                    break
    finally:
        done.set()
        poker.join()
        signal.signal(signal.SIGUSR1, old)
    assert changed_during > 0, "no build was caught by the signal"


# --- 4. Ctrl-C while a mixture computes a torch-order cycle ------------------------------------

BIG_SOURCE = 10**8  # one cycle: torch.randperm(10**8), about 2 s of work here


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["iterator", "indices"])
def test_ctrl_c_stops_a_mixture_computing_a_torch_cycle_within_a_second(how: str) -> None:
    """The first index of a torch-order mixture needs its source's cycle (a shuffle of 1e8
    items); SIGINT arrives once the main thread has worked 0.3 s on it: ``KeyboardInterrupt``
    must follow within a second, not when the shuffle ends, and the sampler stays usable."""
    s = rs.ResumableMixtureSampler(
        [BIG_SOURCE, 10], [1, 1], num_samples=1000, seed=SEED, permutation="torch"
    )
    main = str(threading.get_native_id())
    sent: list[float] = []

    def interrupt() -> None:
        start = _cpu_ns(main) or 0
        deadline = time.monotonic() + 60
        while (_cpu_ns(main) or 0) - start < 300_000_000 and time.monotonic() < deadline:
            time.sleep(0.005)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt)
    sender.start()
    try:
        with ctrl_c_handler(), pytest.raises(KeyboardInterrupt):
            if how == "iterator":
                next(iter(s))
            else:
                s.indices()
        latency = time.monotonic() - sent[0]
    finally:
        sender.join()
    print(f"{how}: KeyboardInterrupt {latency * 1000:.0f} ms after SIGINT")
    assert latency < 1.0, latency
    state = s.state_dict()
    small = rs.ResumableMixtureSampler([10, 20], [1, 2], seed=SEED, permutation="torch")
    assert sorted(list(small)[:30]) == list(range(30))
    assert s.state_dict() == state
