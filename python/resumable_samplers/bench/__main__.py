"""``python -m resumable_samplers.bench``: the same as ``resumable-samplers bench``."""

from resumable_samplers.bench.cli import main

raise SystemExit(main())
