"""Reliability: allocation failures, Ctrl-C, fork/spawn/forkserver, pickling, threads, memory
across epochs and long runs.

docs/reliability.md, sections 1-4b: a buffer that cannot be allocated raises ``MemoryError`` and
the process goes on, also when a helper thread starts short of memory; a long generation stops
within about a second of SIGINT, in a forked child too; samplers work after ``fork`` (no thread
pool survives a call), in DataLoader workers and after pickling; several Python threads get the
serial results and the GIL is released while the core works; moving to the next epoch never
holds two epochs, and a thousand epochs leave memory, threads and file descriptors as they
were. Failing calls that could take a process down run in subprocesses (``tests/scripts``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import multiprocessing as mp
import os
import pickle
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import resumable_samplers as rs
from conftest import Sized, sigint_ignored, torch_perm
from resumable_samplers import (
    ResumableDistributedSampler,
    ResumableRandomSampler,
    ResumableSequentialSampler,
    _core,
)

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
import interrupt
from loader_workers import SamplerStream

SCRIPTS = Path(__file__).parent / "scripts"
PROMPT = 3.0  # seconds: "promptly" / "within about a second", generously


def digest(values: Any) -> str:
    """SHA-256 of a sequence of indices (list or array), as int64."""
    return hashlib.sha256(np.asarray(values, dtype=np.int64).tobytes()).hexdigest()


def dist_ref(n: int, w: int, r: int, seed: int, epoch: int, drop_last: bool = False) -> list[int]:
    ref = tud.DistributedSampler(Sized(n), w, r, seed=seed, drop_last=drop_last)  # type: ignore[arg-type]
    ref.set_epoch(epoch)
    return list(ref)


def run_script(*args: str, timeout: float = 120) -> tuple[int, list[dict[str, str]], str]:
    """Run a script of tests/scripts; return its exit code, JSON lines and stderr."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=sigint_ignored,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, lines, proc.stderr


# --- 1. Memory --------------------------------------------------------------------------------

IMPOSSIBLE: list[tuple[str, Callable[[], Any]]] = [
    ("randperm(2**62)", lambda: rs.randperm(2**62)),
    ("randperm(2**62, lazy)", lambda: rs.randperm(2**62, permutation="lazy")),
    ("randperm(2**40)", lambda: rs.randperm(2**40, 5)),
    ("iter(random 2**40)", lambda: next(iter(ResumableRandomSampler(Sized(2**40))))),
    ("random 2**40 .indices()", lambda: ResumableRandomSampler(Sized(2**40)).indices()),
    ("list(distributed 2**40)", lambda: list(ResumableDistributedSampler(Sized(2**40), 1024, 3))),
    (
        "lazy 2**40 .indices()",
        lambda: ResumableRandomSampler(Sized(2**40), permutation="lazy").indices(),
    ),
]


@pytest.mark.parametrize(("name", "call"), IMPOSSIBLE, ids=[c[0] for c in IMPOSSIBLE])
def test_impossible_buffer_is_a_prompt_memory_error(name: str, call: Callable[[], Any]) -> None:
    t = time.monotonic()
    with pytest.raises(MemoryError, match=r"cannot allocate \d+ bytes"):
        call()
    assert time.monotonic() - t < PROMPT
    # The interpreter goes on and the next call works.
    assert rs.randperm(1000, 3).tolist() == torch_perm(1000, 3)
    assert list(ResumableRandomSampler(Sized(300), seed=4)) == torch_perm(300, 4)


def test_sampler_is_usable_after_its_memory_error() -> None:
    s = ResumableRandomSampler(Sized(2**40), seed=3, batch_size=8)
    s.start_iter = 2
    state = s.state_dict()
    for _ in range(2):  # nothing half-built is cached: the second attempt fails the same way
        with pytest.raises(MemoryError):
            next(iter(s))  # an iterator builds its epoch when it starts
    assert s.state_dict() == state and len(s) == 2**40 and s.start_iter == 2
    # The lazy order never needs the buffer: its iteration still works after indices() failed.
    lazy = ResumableRandomSampler(Sized(2**40), seed=3, permutation="lazy")
    with pytest.raises(MemoryError):
        lazy.indices()
    it = iter(lazy)
    head = [next(it) for _ in range(1000)]
    assert len(set(head)) == 1000 and all(0 <= i < 2**40 for i in head)


ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def alloc_run() -> tuple[int, dict[str, str], str]:
    """One subprocess for the address-space sweep, the impossible buffers and (as root, last, as
    it drops privileges) the refused threads: its exit code, outcomes by case, and stderr."""
    modes = ["limited", "impossible"] + (["threads"] if ROOT else [])
    code, lines, err = run_script("alloc_failure.py", *modes)
    return code, {d["case"]: d["outcome"] for d in lines}, err


def _mode(outcomes: dict[str, str], mode: str) -> dict[str, str]:
    return {k.split(": ", 1)[1]: v for k, v in outcomes.items() if k.startswith(mode + ": ")}


def test_impossible_buffers_in_a_subprocess_exit_normally(
    alloc_run: tuple[int, dict[str, str], str],
) -> None:
    code, outcomes, err = alloc_run
    assert code == 0 and outcomes["end"] == "ok", err[-3000:]
    cases = _mode(outcomes, "impossible")
    failing = {k: v for k, v in cases.items() if not k.startswith("after ")}
    after = {k: v for k, v in cases.items() if k.startswith("after ")}
    assert len(failing) == len(after) == len(IMPOSSIBLE)
    assert set(failing.values()) == {"builtins.MemoryError"}, failing
    assert set(after.values()) == {"ok"}, after
    assert "memory allocation of" not in err  # Rust's abort message


def test_allocation_failures_at_realistic_sizes_under_an_address_space_limit(
    alloc_run: tuple[int, dict[str, str], str],
) -> None:
    code, outcomes, err = alloc_run
    assert code == 0 and outcomes["end"] == "ok", err[-3000:]
    trials = _mode(outcomes, "limited")
    assert trials.pop("randperm(1000) at the end") == "ok"
    # Every trial either succeeds with the right result or raises MemoryError; nothing else.
    assert set(trials.values()) == {"ok", "builtins.MemoryError"}, trials
    by_call: dict[str, set[str]] = {}
    for case, result in trials.items():
        by_call.setdefault(case.split(" with ")[0], set()).add(result)
    assert len(by_call) == 3
    assert all(v == {"ok", "builtins.MemoryError"} for v in by_call.values()), by_call
    # Some limit fits the distributed sampler's first buffer (the epoch) but not its second (the
    # rank's share): the failure after a successful allocation is clean too.
    assert any(
        trials[f"randperm(4e6) with {m} MiB to spare"] == "ok"
        and trials[f"Distributed(4e6, 2, 1).indices() with {m} MiB to spare"] != "ok"
        for m in range(0, 32, 2)
    ), trials


@pytest.mark.skipif(not ROOT, reason="needs root to drop to nobody under RLIMIT_NPROC")
def test_refused_thread_creation_is_not_a_panic(
    alloc_run: tuple[int, dict[str, str], str],
) -> None:
    code, outcomes, err = alloc_run
    assert code == 0 and outcomes["end"] == "ok", err[-3000:]
    cases = _mode(outcomes, "threads")
    assert cases.pop("randperm(1000) at the end") == "ok"
    assert len(cases) == 3
    assert set(cases.values()) <= {"ok", "builtins.MemoryError"}, cases
    assert cases["list(Random(2**20, lazy))"] == "ok", cases


# --- 2. Interrupts ----------------------------------------------------------------------------


def _reader(stream: Any) -> queue.Queue[str]:
    q: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put("<eof>")

    threading.Thread(target=pump, daemon=True).start()
    return q


@pytest.mark.timeout(180)
def test_sigint_stops_a_long_generation_within_a_second() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "interrupt.py"), "--full"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_ignored,
    )
    try:
        lines = _reader(proc.stdout)
        assert lines.get(timeout=60) == "started"
        time.sleep(1.0)  # well inside the ~10 s generation
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        line = lines.get(timeout=30)
        latency = time.monotonic() - t0
        assert line.startswith("interrupted"), line
        assert latency < PROMPT, f"KeyboardInterrupt {latency:.2f} s after SIGINT"
        proc.wait(timeout=120)
        rest = []
        while (line := lines.get(timeout=10)) != "<eof>":
            rest.append(line)
        assert proc.returncode == 0, (rest, proc.stderr.read() if proc.stderr else "")
        assert rest[-1] == "OK", rest
        print(f"SIGINT -> KeyboardInterrupt in {latency * 1000:.0f} ms; {rest}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- 3. Processes -----------------------------------------------------------------------------


def _fork_workload(s: ResumableRandomSampler, d: ResumableDistributedSampler) -> dict[str, str]:
    """What parent and child both compute, as digests."""
    lazy = ResumableRandomSampler(Sized(10**6), seed=3, permutation="lazy")
    out = {
        "lazy.indices": digest(lazy.indices()),  # 2 threads (std::thread::scope)
        "randperm": digest(rs.randperm(3 * 10**6, 11)),
        "sampler": digest(list(s)),  # the epoch cached before the fork, if any
        "distributed": digest(list(d)),
    }
    s.set_epoch(5)
    out["sampler epoch 5"] = digest(s.indices())
    return out


@pytest.mark.timeout(120)
def test_fork_after_threads_and_torch_ops_same_results_no_hang() -> None:
    s = ResumableRandomSampler(Sized(10**5), seed=2, batch_size=8)
    d = ResumableDistributedSampler(Sized(10**5 + 1), 3, 1, seed=4, batch_size=8)
    donor = ResumableDistributedSampler(Sized(10**5 + 1), 2, 0, seed=4, batch_size=8)
    it = iter(donor)
    for _ in range(800):
        next(it)
    d.load_state_dict(donor.state_dict())  # elastic: saved by 2 ranks, continued by 3
    n, c = 10**5 + 1, 1600  # global positions consumed by the two ranks
    perm4 = torch_perm(n, 4)
    want = {
        "randperm": digest(torch_perm(3 * 10**6, 11)),
        "sampler": digest(torch_perm(10**5, 2)),
        # docs/resume.md: rank 1 of 3 continues with G(c + 1 + 3j), G(p) = P[p mod n]
        "distributed": digest([perm4[(c + 1 + 3 * j) % n] for j in range(-(-(n - c) // 3))]),
        "sampler epoch 5": digest(torch_perm(10**5, 7)),
    }

    old_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(800, 800)
        (x @ x).sum().item()  # torch's OpenMP pool is live in the parent
        s.indices()  # the parent builds and caches s's epoch
        parent = _fork_workload(copy.deepcopy(s), copy.deepcopy(d))
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: only our library, no torch ops
            code = 1
            try:
                os.close(r)
                os.write(w, pickle.dumps(_fork_workload(s, d)))
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        data = b""
        deadline = time.monotonic() + 60
        while True:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung")
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            data += chunk
        os.close(r)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        torch.set_num_threads(old_threads)
    child = pickle.loads(data)
    assert child == parent
    for k, v in want.items():
        assert parent[k] == v, k


def _chunks(order: list[int], b: int) -> list[list[int]]:
    return [order[i : i + b] for i in range(0, len(order), b)]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_samplers_iterated_inside_dataloader_workers(method: str) -> None:
    n, b = 103, 4
    # A torch-order sampler resumed from a saved state, its epoch built in the parent.
    donor = ResumableRandomSampler(Sized(n), seed=9, batch_size=b)
    donor.set_epoch(2)
    it = iter(donor)
    for _ in range(5 * b):
        next(it)
    state = donor.state_dict()
    a = ResumableRandomSampler(Sized(n), seed=9, batch_size=b)
    a.load_state_dict(state)
    a.indices()
    # A lazy distributed sampler resumed with start_iter.
    d = ResumableDistributedSampler(Sized(n), 3, 1, seed=4, batch_size=b, permutation="lazy")
    d.set_epoch(1)
    d.start_iter = 2
    lazy_ref = ResumableDistributedSampler(Sized(n), 3, 1, seed=4, permutation="lazy")
    lazy_ref.set_epoch(1)
    want = torch_perm(n, 11)[5 * b :] + list(lazy_ref)[2 * b :]

    if method == "forkserver":
        mp.get_context("forkserver").set_forkserver_preload(["torch", "loader_workers"])
    loader = tud.DataLoader(
        SamplerStream([a, d], b),
        batch_size=b,
        num_workers=2,
        multiprocessing_context=method,
        timeout=60,
    )
    got = [batch.tolist() for batch in loader]
    assert got == _chunks(want, b)
    # The workers iterated copies: the parent's samplers still stand where they were.
    assert a.state_dict() == state and d.start_iter == 2


def _random(perm: str) -> Any:
    return ResumableRandomSampler(Sized(1001), seed=3, batch_size=4, permutation=perm)


def _distributed(perm: str) -> Any:
    return ResumableDistributedSampler(
        Sized(1001), 3, 2, seed=5, batch_size=4, drop_last=perm == "lazy", permutation=perm
    )


SAMPLERS: dict[str, Callable[[], Any]] = {
    "random-torch": lambda: _random("torch"),
    "random-lazy": lambda: _random("lazy"),
    "sequential": lambda: ResumableSequentialSampler(Sized(1001), batch_size=4),
    "distributed-torch": lambda: _distributed("torch"),
    "distributed-lazy": lambda: _distributed("lazy"),
}


def _modify(s: Any, how: str) -> None:
    if how in ("set_epoch", "start_iter"):
        s.set_epoch(3)
    if how == "start_iter":
        s.start_iter = 7
    if how == "load_state_dict":
        donor = copy.deepcopy(s)
        donor.set_epoch(2)
        it = iter(donor)
        for _ in range(30):
            next(it)
        s.load_state_dict(donor.state_dict())
    s.indices()  # an epoch cache exists: it must not be pickled


@pytest.mark.parametrize("how", ["fresh", "set_epoch", "start_iter", "load_state_dict"])
@pytest.mark.parametrize("kind", list(SAMPLERS))
def test_pickle_round_trip_gives_an_equal_sampler(kind: str, how: str) -> None:
    s = SAMPLERS[kind]()
    _modify(s, how)
    blobs = [pickle.dumps(s), pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL)]
    assert all(len(blob) < 2000 for blob in blobs), [len(blob) for blob in blobs]  # no cache
    copies = [pickle.loads(blob) for blob in blobs] + [copy.deepcopy(s)]
    for c in copies:
        assert type(c) is type(s)
        assert len(c) == len(s) and c.start_iter == s.start_iter
        assert c.state_dict() == s.state_dict()
    want = list(s)
    if kind == "random-torch":
        epoch, skip = {"fresh": (0, 0), "set_epoch": (3, 0), "start_iter": (3, 28)}.get(
            how, (2, 30)
        )
        assert want == torch_perm(1001, 3 + epoch)[skip:]
    if kind == "distributed-torch" and how == "set_epoch":
        assert want == dist_ref(1001, 3, 2, 5, 3)
    for c in copies:
        assert list(c) == want
        assert c.state_dict() == s.state_dict()  # both finished the epoch
        c.set_epoch(4)
    s.set_epoch(4)
    for c in copies:
        assert list(c) == list(s)


# --- 4. Threads -------------------------------------------------------------------------------

# torch.randperm(10**8, generator=torch.Generator().manual_seed(3)) with torch 2.15 (7 s here).
PERM_1E8_FIRST = [65658986, 3761052, 41471799, 7553778]
PERM_1E8_LAST = [9225136, 14368253, 72750107, 1296470]
PERM_1E8_SAMPLE_SHA256 = "47e4b34c3a0d60f4532b6d32c77200fe65d2805f42e08f0a3c32df3fdc94b8bb"


def _while_spinning(call: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``call`` in this thread while another Python thread counts; return the result and
    how far the count advanced during the call."""
    count = [0]
    stop, running = threading.Event(), threading.Event()

    def spin() -> None:
        running.set()
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    running.wait()
    time.sleep(0.05)
    before = count[0]
    result = call()
    advanced = count[0] - before
    stop.set()
    t.join()
    return result, advanced


@pytest.mark.timeout(120)
def test_gil_is_released_during_generation() -> None:
    t = time.monotonic()
    arr, advanced = _while_spinning(lambda: rs.randperm(10**8, 3))
    took = time.monotonic() - t
    print(f"another thread counted to {advanced:,} during randperm(1e8) ({took:.1f} s)")
    # With the GIL held for the ~1-3 s call, the other thread could not count at all.
    assert advanced > 100_000, advanced
    assert arr[:4].tolist() == PERM_1E8_FIRST and arr[-4:].tolist() == PERM_1E8_LAST
    assert interrupt.sample_sha256(arr, 999_983) == PERM_1E8_SAMPLE_SHA256
    del arr
    # The same for a sampler's epoch (built by iter()) and a lazy fill.
    s = ResumableDistributedSampler(Sized(10**7), 2, 1, seed=1)
    _, advanced = _while_spinning(lambda: next(iter(s)))
    assert advanced > 10_000, advanced
    _, advanced = _while_spinning(lambda: rs.randperm(10**7, 1, permutation="lazy"))
    assert advanced > 10_000, advanced


CONCURRENT: dict[str, Callable[[], Any]] = {
    "random-torch": lambda: ResumableRandomSampler(Sized(200_003), seed=1, batch_size=7),
    "random-lazy": lambda: ResumableRandomSampler(Sized(300_007), seed=2, permutation="lazy"),
    "distributed-torch": lambda: ResumableDistributedSampler(Sized(200_003), 3, 0, seed=3),
    "distributed-lazy": lambda: ResumableDistributedSampler(
        Sized(900_011), 3, 2, seed=4, batch_size=5, permutation="lazy"
    ),
    "sequential": lambda: ResumableSequentialSampler(Sized(100_000), batch_size=3),
}


def _thread_work(make: Callable[[], Any], barrier: threading.Barrier | None) -> list[str]:
    s = make()
    if barrier is not None:
        barrier.wait()
    out = []
    for epoch in range(3):
        s.set_epoch(epoch)
        s.start_iter = epoch
        out.append(digest(list(s)))
        out.append(digest(s.indices()))
    out.append(digest(rs.randperm(100_000 + len(out), 7)))
    return out


@pytest.mark.timeout(180)
def test_threads_give_the_serial_results() -> None:
    serial = {k: _thread_work(make, None) for k, make in CONCURRENT.items()}
    assert serial["random-torch"][0] == digest(torch_perm(200_003, 1))
    assert serial["distributed-torch"][2] == digest(dist_ref(200_003, 3, 0, 3, 1)[1:])
    workers = 2 * len(CONCURRENT)  # every sampler twice at once
    barrier = threading.Barrier(workers)
    with ThreadPoolExecutor(workers) as pool:
        futures = {
            (k, i): pool.submit(_thread_work, make, barrier)
            for k, make in CONCURRENT.items()
            for i in range(2)
        }
        for (k, _), f in futures.items():
            assert f.result(timeout=120) == serial[k], k


@pytest.mark.timeout(120)
def test_one_sampler_iterated_by_several_threads() -> None:
    n, b, threads = 200_000, 10, 4
    s = ResumableRandomSampler(Sized(n), seed=5, batch_size=b)
    barrier = threading.Barrier(threads)

    def consume(it: Any = None) -> list[int]:
        barrier.wait()
        return list(it if it is not None else iter(s))  # the epoch is built concurrently

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _: consume(), range(threads)))
    want = torch_perm(n, 5)
    assert all(r == want for r in results)

    # Iterators created with a start pending, then consumed concurrently: the one that starts
    # first consumes it, the others read the whole epoch.
    s.set_epoch(1)
    s.start_iter = 7
    iterators = [iter(s) for _ in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(consume, iterators))
    whole = torch_perm(n, 6)
    assert sorted(len(r) for r in results) == [n - 7 * b] + [n] * (threads - 1)
    assert all(r == (whole if len(r) == n else whole[7 * b :]) for r in results)
    assert s.start_iter == 0

    # indices() from several threads at once on a fresh sampler: one consistent epoch.
    fresh = ResumableDistributedSampler(Sized(n), 2, 1, seed=8)
    with ThreadPoolExecutor(threads) as pool:
        arrays = list(pool.map(lambda _: (barrier.wait(), fresh.indices())[1], range(threads)))
    assert all(a.tolist() == dist_ref(n, 2, 1, 8, 0) for a in arrays)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("how", "replicas"), [("reader", 1), ("array", 2)])
def test_ctrl_c_reaches_a_child_forked_mid_shuffle_within_a_second(how: str, replicas: int) -> None:
    """A child forked while a streamed epoch of 1e8 items is shuffled has no helper thread and
    computes the epoch itself (seconds of work): SIGINT must interrupt that work."""
    code, lines, err = run_script("fork_interrupt.py", how, "1e8", str(replicas))
    assert code == 0 and lines, err[-3000:]
    result = lines[0]
    print(f"{how}: KeyboardInterrupt in the child {result['latency'] * 1000:.0f} ms after SIGINT")
    assert result["child"] == "KeyboardInterrupt", result
    assert result["latency"] < 1.0, result


# --- 5. Memory across epochs, helper threads short of memory, long runs ---------------------

EPOCH_N = 5 * 10**7  # 191 MiB of uint32 an epoch; torch's first regime, streamed


def test_a_finished_reader_lets_go_of_its_epoch_under_an_address_space_limit() -> None:
    """Epoch 0 is read to its end and its reader kept; with the address space limited to what
    is mapped plus half an epoch, epoch 1 fits only if the reader let go of epoch 0."""
    code, lines, err = run_script("epoch_switch.py", "core-limited", str(EPOCH_N))
    assert code == 0 and lines[-1] == {"end": "ok"}, err[-3000:]
    assert lines[0]["outcome"] == "ok", lines[0]


def test_peak_memory_stays_at_one_epoch_while_the_last_reader_is_kept() -> None:
    code, lines, err = run_script("epoch_switch.py", "core-peak", str(EPOCH_N))
    assert code == 0 and lines[-1] == {"end": "ok"}, err[-3000:]
    peaks, epoch = lines[0]["peak_mib"], lines[0]["epoch_mib"]
    print(f"peak resident MiB before and after epochs 0-3: {peaks} (an epoch is {epoch} MiB)")
    assert peaks[1] - peaks[0] < 1.3 * epoch, lines[0]  # one epoch on top of the start
    assert peaks[-1] - peaks[1] < 0.2 * epoch, lines[0]  # and never a second one


def test_sampler_epoch_switch_fits_in_one_epoch_of_memory() -> None:
    """The same through ``ResumableRandomSampler``: ``set_epoch`` and ``iter()`` with the
    sampler and its last (finished) iterator kept, under the address-space limit."""
    code, lines, err = run_script("epoch_switch.py", "sampler-limited", str(EPOCH_N))
    assert code == 0 and lines[-1] == {"end": "ok"}, err[-3000:]
    assert lines[0]["outcome"] == "ok", lines[0]
    code, lines, err = run_script("epoch_switch.py", "sampler-peak", str(EPOCH_N))
    assert code == 0 and lines[-1] == {"end": "ok"}, err[-3000:]
    peaks, epoch = lines[0]["peak_mib"], lines[0]["epoch_mib"]
    assert peaks[-1] - peaks[0] < 1.3 * epoch, lines[0]


HELPER_RUNS = 20


@pytest.mark.timeout(300)
@pytest.mark.parametrize("order", ["torch", "lazy"])
def test_helper_threads_never_end_a_process_short_of_address_space(order: str) -> None:
    """After an epoch has started and ended helper threads, the next epoch under an
    address-space limit at the current mapping: glibc reuses a cached stack, so the thread
    starts, and must then need no memory (its thread-local storage) to do its work; otherwise
    glibc ends the process with exit 127. 20 forked processes per order."""
    code, lines, err = run_script("helper_threads.py", order, str(HELPER_RUNS), timeout=280)
    assert code == 0 and len(lines) == HELPER_RUNS, err[-3000:]
    exits = Counter(line["exit"] for line in lines)
    outcomes = Counter(line["outcome"] for line in lines)
    print(f"{order}: exit codes {dict(exits)}, outcomes {dict(outcomes)}")
    assert exits == {0: HELPER_RUNS}, (exits, err[-2000:])
    assert "thread-local data" not in err
    assert set(outcomes) <= {"ok", "builtins.MemoryError"}, outcomes
    assert outcomes["ok"] > 0, outcomes


LONG_RUNS = [("torch", 100_000, 1000), ("lazy", 100_000, 1000), ("torch", 2**20, 200)]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("order", "n", "epochs"), LONG_RUNS, ids=["torch", "lazy", "streamed"])
def test_a_thousand_epochs_keep_memory_threads_and_files_flat(
    order: str, n: int, epochs: int
) -> None:
    """Every index of every epoch, as a training loop reads them (``set_epoch``, ``iter()``):
    the lazy order starts and ends helper threads for every epoch, a torch-order epoch of 2**20
    items is shuffled on a helper thread."""
    code, lines, err = run_script("long_run.py", order, str(n), str(epochs), timeout=280)
    assert code == 0 and lines, err[-3000:]
    r = lines[0]
    print(r)
    assert r["rss_max_after_warm_mib"] - r["rss_warm_mib"] < 4, r
    assert r["rss_end_mib"] - r["rss_warm_mib"] < 4, r
    assert r["threads"][1] == r["threads"][0], r
    assert r["fds"][1] == r["fds"][0], r


# --- 6. torch's conventions -------------------------------------------------------------------


@pytest.mark.parametrize("order", ["torch", "torch-legacy", "lazy", "identity"])
@pytest.mark.parametrize("n", [1000, 2**20 + 5])
def test_epoch_arrays_are_read_only_in_every_order(order: str, n: int) -> None:
    for w, start in [(1, 0), (3, 7)]:
        a = _core.Epoch(n, w, 1 % w, 0, False, order, 5, 2).array(start)
        assert not a.flags.writeable, (order, n, w)
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 1


def test_invalid_rank_uses_torchs_wording() -> None:
    message = "Invalid rank 3, rank should be in the interval [0, 2]"
    with pytest.raises(ValueError) as info:
        _core.Epoch(10, 3, 3, 0, False, "torch", 0, 0)
    assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        _core.shard_len(10, 3, 3, 0, False)
    assert str(info.value) == message
    # torch's own sampler says the same.
    with pytest.raises(ValueError) as info:
        tud.DistributedSampler(Sized(10), num_replicas=3, rank=3)  # type: ignore[arg-type]
    assert str(info.value) == message
