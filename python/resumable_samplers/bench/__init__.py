"""The benchmark: ``resumable-samplers bench`` (or ``python -m resumable_samplers.bench``).

Nine sections; ``a`` to ``c`` are repeated for every dataset size ``n``:

- ``a``: a permutation of ``[0, n)``: :func:`resumable_samplers.randperm` against
  ``torch.randperm`` and ``numpy.random.default_rng(seed).permutation``, plus a bit-identity
  check of ours against torch's at every size both ran.
- ``b``: a distributed epoch (8 replicas, rank 3): construction, time to the first index and the
  whole ``for i in sampler: pass``, against torch's ``DistributedSampler`` and helios-ml's
  ``ResumableDistributedSampler``.
- ``c``: resuming half-way through the epoch (``start_iter = len(sampler) // 2``, batch size 1):
  time from construction to the first index, against helios-ml, and against torch (which cannot
  resume) constructing and skipping with ``itertools.islice``.
- ``d``: ``DataLoader(batch_size=256, num_workers=0)`` index throughput with our sampler against
  the same loader over a prebuilt Python list of the same indices.
- ``e``: the lazy order at scale, against the library's performance targets: time to the first
  index at ``n`` up to ``2**63 - 1`` at any resume offset, ``randperm(10**9, permutation="lazy")``
  time and memory overhead, iterating one rank of 8 over ``10**9`` against producing as many
  Python ints, and core throughput against Grain's ``index_shuffle``.
- ``f`` (asked for by name): transformers' ``Trainer``, stock against ``ResumableTrainerMixin``:
  the first batch, and the first batch after a resume at 50%.
- ``g``: weighted mixtures of 3 and 1000 sources: the first index at any position against
  Megatron's blending index, iteration against the plain lazy sampler, and torchdata's
  ``MultiNodeWeightedSampler`` restoring a state; with targets.
- ``h``: length grouping: an epoch, a resume at 50% in a fresh process and their memory, against
  transformers' ``LengthGroupedSampler``, and the padding efficiency; with targets.
- ``s``: sharded datasets: ``ResumableShardSampler`` against Mosaic Streaming's ``py1e`` and
  ``py1br`` shuffles: time and memory to the first index (fresh, resumed, elastic), shard
  loads, open shards and mixing; with targets.

``ours`` is the default (torch) order; ``lazy`` is ours with ``permutation="lazy"``.

The files, by job:

- :mod:`~resumable_samplers.bench.cli`: the command line (imports neither torch nor NumPy).
- :mod:`~resumable_samplers.bench.spec`: sections, implementations, sizes, one outcome.
- :mod:`~resumable_samplers.bench.plan`: the options and the measurements they select.
- :mod:`~resumable_samplers.bench.cases`, :mod:`~resumable_samplers.bench.scale_cases`,
  :mod:`~resumable_samplers.bench.trainer_cases`, :mod:`~resumable_samplers.bench.mixture_cases`
  :mod:`~resumable_samplers.bench.length_cases` and :mod:`~resumable_samplers.bench.shard_cases`:
  the measurements themselves (sections ``a``-``d``, ``e``, ``f``, ``g``, ``h`` and ``s``), run
  in a child process.
- :mod:`~resumable_samplers.bench.child`: the child process: one measurement and its memory.
- :mod:`~resumable_samplers.bench.runner`: the parent: one child per measurement, collected.
- :mod:`~resumable_samplers.bench.progress`: the progress bar.
- :mod:`~resumable_samplers.bench.checks`: correctness checks gathered from the run.
- :mod:`~resumable_samplers.bench.targets`: the performance targets of ``e`` and the verdict;
  :mod:`~resumable_samplers.bench.mixture_targets`,
  :mod:`~resumable_samplers.bench.length_targets` and
  :mod:`~resumable_samplers.bench.shard_targets`: the rows and targets of ``g``, ``h`` and ``s``.
- :mod:`~resumable_samplers.bench.machine`: the CPU, memory, versions and load of the run.
- :mod:`~resumable_samplers.bench.report` and :mod:`~resumable_samplers.bench.plot`: the tables,
  ``results.json``, ``results.md`` and ``plot.png``.
"""

from resumable_samplers.bench.cli import add_parser, main, parse_sizes, run
from resumable_samplers.bench.progress import Progress

__all__ = ["Progress", "add_parser", "main", "parse_sizes", "run"]
