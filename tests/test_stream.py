"""Torch-order epochs of 2**20 items or more are shuffled on a helper thread and read as their
positions become final: the order is torch's, from any start, however it is read, after
``fork`` too, and dropping an unfinished epoch is safe."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from _workers import fork_and_check

from conftest import Sized, sigint_ignored
from resumable_samplers import ResumableDistributedSampler, ResumableRandomSampler, _core

N = 1_500_007  # above the streaming threshold (2**20), in torch's first regime


def _torch_share(n: int, w: int, r: int, seed: int) -> list[int]:
    return list(torch.utils.data.DistributedSampler(Sized(n), num_replicas=w, rank=r, seed=seed))


@pytest.mark.parametrize("w,r", [(1, 0), (4, 1), (8, 7)])
def test_streamed_epoch_is_torchs_order_however_it_is_read(w: int, r: int) -> None:
    want = _torch_share(N, w, r, seed=5)
    # Iterated straight away, while the shuffle runs.
    assert list(ResumableDistributedSampler(Sized(N), num_replicas=w, rank=r, seed=5)) == want
    # indices() waits for the whole share; then iteration reads the finished share.
    sampler = ResumableDistributedSampler(Sized(N), num_replicas=w, rank=r, seed=5)
    assert sampler.indices().tolist() == want
    assert list(sampler) == want


def test_resume_deep_in_a_streamed_epoch() -> None:
    w, r, batch = 4, 2, 32
    want = _torch_share(N, w, r, seed=9)
    sampler = ResumableDistributedSampler(
        Sized(N), num_replicas=w, rank=r, seed=9, batch_size=batch
    )
    sampler.start_iter = 9000
    assert list(sampler) == want[9000 * batch :]
    random = ResumableRandomSampler(Sized(N), seed=3, batch_size=1)
    random.set_epoch(2)
    random.start_iter = N - 5
    g = torch.Generator().manual_seed(5)
    assert list(random) == torch.randperm(N, generator=g).tolist()[N - 5 :]


def test_epochs_read_while_others_are_dropped_unfinished() -> None:
    for seed in range(6):
        _core.Epoch(2**24, 8, 3, 0, False, "torch", seed, 0)  # dropped at once
    e = _core.Epoch(N, 2, 0, 0, False, "torch", 1, 0)
    head = list(itertools.islice(e.reader(0), 1000))
    assert head == _torch_share(N, 2, 0, seed=1)[:1000]


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_child_forked_mid_shuffle_computes_the_epoch_itself() -> None:
    n = 20_000_003
    want = np.asarray(_torch_share(n, 8, 3, seed=4)[:100_000] + _torch_share(n, 8, 3, seed=4)[-10:])
    epoch = _core.Epoch(n, 8, 3, 0, False, "torch", 4, 0)  # the shuffle has just started

    def read() -> list[int]:
        head = list(itertools.islice(epoch.reader(0), 100_000))
        return head + epoch.array(len(epoch) - 10).tolist()

    def parent() -> None:
        assert np.array_equal(read(), want)

    fork_and_check(lambda: bool(np.array_equal(read(), want)), parent)


def test_indices_of_a_streamed_epoch_is_a_view_of_its_share() -> None:
    sampler = ResumableDistributedSampler(Sized(N), num_replicas=2, rank=1, seed=2)
    a = sampler.indices()
    assert not a.flags.writeable and a.base is not None
    assert a.tolist() == _torch_share(N, 2, 1, seed=2)


INTERRUPT_SCRIPT = r"""
import json, os, signal, subprocess, threading, time
from resumable_samplers import ResumableRandomSampler

signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored

class Sized:
    def __len__(self):
        return 200_000_000  # torch's first regime: streamed, seconds of shuffle here

s = ResumableRandomSampler(Sized(), seed=1)
s.start_iter = 199_999_990  # the first index needs the whole shuffle
it = iter(s)
counted = [0]
def count():  # runs only if next() releases the GIL while it waits
    while counted[0] >= 0:
        counted[0] += 1
threading.Thread(target=count, daemon=True).start()
# Ctrl-C as a terminal sends it: from outside the process.
subprocess.Popen(["sh", "-c", f"sleep 0.5; kill -INT {os.getpid()}"])
t0 = time.perf_counter()
try:
    next(it)
    outcome = "no interrupt"
except KeyboardInterrupt:
    outcome = "KeyboardInterrupt"
took = time.perf_counter() - t0
during = counted[0]
state = s.state_dict()  # nothing was consumed
print(json.dumps({"outcome": outcome, "took": took, "counted": during, "offset": state["offset"]}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_interrupts_a_wait_for_a_streamed_epoch_which_releases_the_gil() -> None:
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", INTERRUPT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=sigint_ignored,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "KeyboardInterrupt", result
    assert result["took"] < 1.5, result  # sent at 0.5 s; waits check every 20 ms
    assert result["counted"] > 10_000, result  # another thread ran during the wait
    assert result["offset"] == 199_999_990, result


def test_another_thread_using_a_reader_while_it_waits() -> None:
    """While one thread waits in next() (GIL released), another gets RuntimeError from next()
    on the same reader and the saved position from position(); the wait then completes."""
    import threading

    n = 20_000_001  # streamed: next() at the end waits for the shuffle (a fraction of a second)
    epoch = _core.Epoch(n, 1, 0, 0, False, "torch", 6, 0)
    reader = epoch.reader(n - 3)
    got: list[int] = []
    calling = threading.Event()

    def wait() -> None:
        def profile(frame: object, event: str, arg: object) -> None:
            if event == "c_call" and arg is next:
                calling.set()  # this thread holds the GIL until the reader waits without it

        sys.setprofile(profile)
        try:
            got.append(next(reader))
        finally:
            sys.setprofile(None)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert calling.wait(60)  # the waiter is in next() now (no delay assumed)
    seen = []
    while waiter.is_alive() and not seen:
        try:
            next(reader)
        except RuntimeError as e:
            seen.append((str(e), reader.position()))
    waiter.join()
    assert seen and "busy" in seen[0][0] and seen[0][1] == n - 3
    # torch.randperm(20_000_001, generator=torch.Generator().manual_seed(6))[-3:] with torch
    # 2.15, computed once: [2262689, 7860851, 9325580].
    assert got == [2262689]


def test_on_one_cpu_a_long_epoch_is_shuffled_before_it_is_read() -> None:
    """With one CPU (a process pinned to it) the reader and a streaming shuffle would take
    turns, slower than shuffling first: the epoch is then shuffled by its constructor, on the
    calling thread, and no helper thread runs once it returns (the order is torch's)."""
    script = textwrap.dedent(
        """
        import os
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        from resumable_samplers import _core
        e = _core.Epoch(50_000_000, 8, 3, 0, False, "torch", 0, 0)
        with open("/proc/self/status") as f:
            threads = next(int(x.split()[1]) for x in f if x.startswith("Threads:"))
        import torch
        d = torch.utils.data.DistributedSampler(range(50_000_000), 8, 3, seed=0)
        first = [int(i) for _, i in zip(range(1000), d)]
        print(threads, e.array()[:1000].tolist() == first)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["1", "True"]
