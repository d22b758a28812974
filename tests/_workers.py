"""Importable helpers for the multi-process tests (spawn/forkserver need module-level targets).

Only standard library, torch and the library under test are imported here, so a spawned child
does not import pytest or the test modules.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import socket
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.utils.data as tud


class IndexDataset(tud.Dataset[int]):
    """A map-style dataset of length ``n`` whose item ``i`` is ``i`` itself."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i


# --- torch.distributed worker -----------------------------------------------------------------

DIST_WORLD = 4
# (n, seed, epoch, shuffle, drop_last): n not divisible by the world size, n < world, n == 0.
DIST_SIZES = (0, 1, 3, 4, 10, 13, 37)
DIST_SEEDS = (0, 7)
DIST_EPOCHS = (0, 2)
# (n, seed, epoch, shuffle, drop_last, batch_size) for the resume checks; start_iter is swept.
DIST_RESUME_CASES = (
    (37, 3, 1, True, False, 3),
    (37, 3, 1, True, True, 3),
    (13, 0, 0, True, False, 1),
    (13, 5, 4, False, False, 2),
    (10, 11, 0, True, True, 2),
    (3, 2, 0, True, False, 1),
)


def dist_combos() -> list[tuple[int, int, int, bool, bool]]:
    return [
        (n, seed, epoch, shuffle, drop_last)
        for n in DIST_SIZES
        for seed in DIST_SEEDS
        for epoch in DIST_EPOCHS
        for shuffle in (True, False)
        for drop_last in (False, True)
    ]


def dist_resume_ks(n: int, world: int, drop_last: bool, b: int) -> list[int]:
    """start_iter values: 0, 1, a middle one, the last batch, and past the end."""
    per_rank = n // world if drop_last and n % world else -(-n // world)
    batches = -(-per_rank // b)
    return sorted({0, 1, batches // 2, max(batches - 1, 0), batches, batches + 2})


def dist_results(rank: int, world: int) -> dict[str, Any]:
    import torch.distributed as dist

    from resumable_samplers import ResumableDistributedSampler

    out: dict[str, Any] = {}
    # Defaults taken from the process group, as torch's DistributedSampler does.
    s = ResumableDistributedSampler(IndexDataset(10))
    out["defaults"] = {
        "num_replicas": s.num_replicas,
        "rank": s.rank,
        "dist_rank": dist.get_rank(),
        "dist_world": dist.get_world_size(),
        "given_rank": rank,
    }

    combos = {}
    for n, seed, epoch, shuffle, drop_last in dist_combos():
        ds = IndexDataset(n)
        ours = ResumableDistributedSampler(ds, shuffle=shuffle, seed=seed, drop_last=drop_last)
        ours.set_epoch(epoch)
        ref = tud.DistributedSampler(ds, shuffle=shuffle, seed=seed, drop_last=drop_last)
        ref.set_epoch(epoch)
        arr = ours.indices()
        got = list(ours)
        combos[(n, seed, epoch, shuffle, drop_last)] = {
            "ours": got,
            "types": sorted({type(i).__name__ for i in got}),
            "indices": arr.tolist(),
            "dtype": str(arr.dtype),
            "len": len(ours),
            "torch": list(ref),
            "torch_len": len(ref),
        }
    out["combos"] = combos

    resume = {}
    for n, seed, epoch, shuffle, drop_last, b in DIST_RESUME_CASES:
        ds = IndexDataset(n)
        ref = tud.DistributedSampler(ds, shuffle=shuffle, seed=seed, drop_last=drop_last)
        ref.set_epoch(epoch)
        ref_e = list(ref)
        ref.set_epoch(epoch + 1)
        ref_next = list(ref)
        for k in dist_resume_ks(n, world, drop_last, b):
            s = ResumableDistributedSampler(
                ds, shuffle=shuffle, seed=seed, drop_last=drop_last, batch_size=b
            )
            s.set_epoch(epoch)
            s.start_iter = k
            arr = s.indices().tolist()
            got = list(s)
            after = s.start_iter
            s.set_epoch(epoch + 1)
            nxt = list(s)
            resume[(n, seed, epoch, shuffle, drop_last, b, k)] = {
                "indices": arr,
                "ours": got,
                "types": sorted({type(i).__name__ for i in got + nxt}),
                "start_iter_after": after,
                "next": nxt,
                "len": len(s),
                "torch": ref_e,
                "torch_next": ref_next,
            }
    out["resume"] = resume
    return out


def gloo_rank(
    rank: int, world: int, port: int, out_dir: str, work: Callable[[int, int], Any]
) -> None:
    """One rank of a gloo job on 127.0.0.1 running ``work(rank, world)``; rank 0 writes every
    rank's result to ``results.pkl``.

    Any exception is written to ``error{rank}.txt`` and the process exits non-zero.
    """
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    import torch.distributed as dist

    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world,
            timeout=timedelta(seconds=60),
        )
        try:
            mine = work(rank, world)
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, mine)
            if rank == 0:
                tmp = os.path.join(out_dir, "results.pkl.tmp")
                with open(tmp, "wb") as f:
                    pickle.dump(gathered, f)
                os.replace(tmp, os.path.join(out_dir, "results.pkl"))
            dist.barrier()
        finally:
            dist.destroy_process_group()
    except BaseException:
        with open(os.path.join(out_dir, f"error{rank}.txt"), "w") as f:
            f.write(traceback.format_exc())
        raise SystemExit(1) from None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_gloo_job(
    world: int,
    out_dir: Path,
    work: Callable[[int, int], Any],
    preload: list[str],
    join_seconds: float = 90,
) -> list[Any]:
    """Run ``world`` ranks of a new gloo group, each calling ``work(rank, world)`` (a picklable
    module-level callable), and return every rank's result; hung or failed ranks fail loudly.

    The ranks are fresh processes, not forks of pytest: a forkserver imports ``preload`` (torch)
    once and forks the ranks from that clean state, instead of spawned interpreters each importing
    torch (about 4x the CPU on a 2-core machine). If the forkserver already runs without the
    preload (another test started it), the ranks simply import torch themselves.
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(preload)
    out_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    procs = [
        ctx.Process(target=gloo_rank, args=(r, world, port, str(out_dir), work), daemon=True)
        for r in range(world)
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + join_seconds
    try:
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
    finally:
        hung = [p for p in procs if p.is_alive()]
        for p in hung:
            p.terminate()
        for p in hung:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
    errors = "\n".join(
        f"--- rank {r} ---\n" + (out_dir / f"error{r}.txt").read_text()
        for r in range(world)
        if (out_dir / f"error{r}.txt").exists()
    )
    assert not hung, f"ranks {[procs.index(p) for p in hung]} hung\n{errors}"
    codes = [p.exitcode for p in procs]
    assert codes == [0] * world, f"exit codes {codes}\n{errors}"
    with open(out_dir / "results.pkl", "rb") as f:
        results: list[Any] = pickle.load(f)
    assert len(results) == world
    return results


def fork_and_check(child: Callable[[], bool], parent: Callable[[], None]) -> None:
    """``os.fork()``; the child runs ``child`` and exits at once, the parent runs ``parent`` and
    then asserts that the child exited normally and that ``child`` returned True."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_fd, b"ok" if child() else b"bad")
        finally:
            os._exit(0)
    os.close(write_fd)
    parent()
    with os.fdopen(read_fd, "rb") as f:
        answer = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert answer == b"ok"


def mixture_results(rank: int, world: int) -> dict[str, Any]:
    """One rank of a gloo job with a mixture sampler that takes its rank from the group: its
    whole epoch 1, and a stopped run (2 indices) with its state."""
    from resumable_samplers import ResumableMixtureSampler

    def make() -> ResumableMixtureSampler:
        s = ResumableMixtureSampler([7, 3, 12, 1], [3.0, 1.0, 5.5, 0.5], seed=11, batch_size=3)
        s.set_epoch(1)
        return s

    s = make()
    assert (s.num_replicas, s.rank) == (world, rank)
    whole = list(s)
    stopped = make()
    it = iter(stopped)
    head = [next(it) for _ in range(2)]
    return {"whole": whole, "head": head, "state": stopped.state_dict()}
