"""The machine and software a run measured: CPU model, cores, memory, versions, load.

Ratios against the peers depend on the host (a cloud machine kind may be served by Intel or AMD
hosts, and a shared machine by a busy one), so every report starts with this description.
Versions are read from the installed distributions' metadata: the parent process never imports
torch.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import time
from typing import Any

from resumable_samplers.bench.plan import Options
from resumable_samplers.bench.spec import (
    AUTO_REPEAT,
    AUTO_REPEAT_MAX_N,
    GIB,
    GRAIN_CALLS,
    LAZY_FIRST_NS,
    LOADER_BATCH_SIZE,
    MIXTURE_KS,
    RANK,
    WORLD_SIZE,
    format_n,
)

DISTRIBUTIONS: dict[str, str] = {
    "resumable_samplers": "resumable-samplers",
    "torch": "torch",
    "numpy": "numpy",
    "helios_ml": "helios-ml",
    "grain": "grain",
    "megatron_core": "megatron-core",
    "torchdata": "torchdata",
    "transformers": "transformers",
}
"""The versions every report records: metadata key -> distribution name."""


def cpu_model() -> str | None:
    """The CPU's model name, from ``/proc/cpuinfo``, else ``lscpu``, else ``platform``.

    A virtual machine's model name can be as vague as ``AMD EPYC``, so the family and model
    numbers follow it when ``/proc/cpuinfo`` has them (e.g. ``AMD EPYC (family 25, model 17)``).
    """
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if not key.strip():  # the end of the first CPU's block
                break
            fields.setdefault(key.strip(), value.strip())
    if fields.get("model name"):
        name, family, model = fields["model name"], fields.get("cpu family"), fields.get("model")
        return f"{name} (family {family}, model {model})" if family and model else name
    if shutil.which("lscpu"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
            for line in out.splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "Model name" and value.strip():
                    return value.strip()
    return platform.processor() or None


def memory_total() -> int | None:
    """The machine's physical memory in bytes, or ``None`` where it cannot be read."""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def usable_cpus() -> int | None:
    """The CPUs this process may run on (its affinity), else the machine's count."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    return len(getaffinity(0)) if getaffinity is not None else os.cpu_count()


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or ``None`` where there are none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or ``None``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The machine and software of this run, as recorded in ``results.json``'s ``meta``."""
    return {
        **{key: version(dist) for key, dist in DISTRIBUTIONS.items()},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "memory_total": memory_total(),
    }


def metadata(options: Options, started: float, load_at_start: list[float] | None) -> dict[str, Any]:
    """Machine, versions, options and duration of the run."""
    return {
        **machine(),
        "memory_budget": options.mem_budget,
        "sizes": options.sizes,
        "sections": options.sections,
        "excluded": sorted(options.exclude),
        "loader_n": options.loader_n,
        "loader_batch_size": LOADER_BATCH_SIZE,
        "lazy_first_n": list(LAZY_FIRST_NS),
        "lazy_randperm_n": options.lazy_randperm_n,
        "lazy_iter_n": options.lazy_iter_ns,
        "grain_n": options.grain_n,
        "grain_calls": min(GRAIN_CALLS, options.grain_n),
        "mixture_n": options.mixture_ns,
        "mixture_iter_n": options.mixture_iter_n,
        "mixture_k": list(MIXTURE_KS),
        "length_n": options.length_ns,
        "world_size": WORLD_SIZE,
        "rank": RANK,
        "seed": options.seed,
        "repeat": (
            options.repeat
            if options.repeat is not None
            else f"{AUTO_REPEAT} up to n={format_n(AUTO_REPEAT_MAX_N)}, 1 above"
        ),
        "timeout_s": options.timeout,
        "load_average_start": load_at_start,
        "load_average": load_average(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": time.time() - started,
    }


def describe(meta: dict[str, Any]) -> str:
    """The machine paragraph of the report, from :func:`metadata`'s dict."""
    cores = f"{meta['cpu_count']} cores"
    if meta.get("usable_cpus") not in (None, meta["cpu_count"]):
        cores += f" ({meta['usable_cpus']} usable)"
    memory = f"{meta['memory_total'] / GIB:.0f} GiB" if meta.get("memory_total") else "memory ?"
    names = {
        "torch": "torch",
        "numpy": "NumPy",
        "helios_ml": "helios-ml",
        "grain": "grain",
        "megatron_core": "megatron-core",
        "torchdata": "torchdata",
        "transformers": "transformers",
    }
    versions = ", ".join(
        f"{name} {meta.get(key) or '(not installed)'}" for key, name in names.items()
    )

    def load(values: list[float] | None) -> str:
        return ", ".join(str(x) for x in values) if values else "?"

    return (
        f"Machine: {meta.get('cpu_model') or 'unknown CPU'}, {cores}, {memory}; "
        f"{meta['platform']}; CPython {meta['python']}; {versions}; "
        f"resumable-samplers {meta.get('resumable_samplers') or '?'}. "
        f"Load average (1, 5, 15 min): {load(meta.get('load_average_start'))} at the start, "
        f"{load(meta.get('load_average'))} at the end. Started {meta['started']}, "
        f"took {meta['duration_s']:.0f} s. Ratios depend on the host: compare runs on one machine."
    )
