"""Run the benchmarks from the repository: ``python benches/run.py [options]``.

The same as ``python -m resumable_samplers.bench``; see ``--help`` and ``benches/README.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from resumable_samplers.bench import main
except ImportError:  # not installed: use the source tree (the extension must be built in place)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    from resumable_samplers.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
