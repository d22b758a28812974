"""Checks that a CI environment uses only what was installed into it.

Usage: python .ci/isolated.py MODULE [MODULE ...]

Fails when a module imports from outside the environment (the interpreter that created it, the
user site, PYTHONPATH), or when the environment reads any other site-packages directory.
"""

from __future__ import annotations

import importlib
import os
import site
import sys


def main(modules: list[str]) -> int:
    prefix = os.path.realpath(sys.prefix)
    problems = []
    if sys.prefix == sys.base_prefix:
        problems.append(f"{sys.executable} is not a virtual environment")
    if site.ENABLE_USER_SITE:
        problems.append("the user site-packages directory is enabled")
    for entry in sys.path:
        real = os.path.realpath(entry)
        if ("site-packages" in real or "dist-packages" in real) and not real.startswith(prefix):
            problems.append(f"sys.path reads {entry}")
    for name in modules:
        module = importlib.import_module(name)
        where = os.path.realpath(module.__file__ or "")
        if not where.startswith(prefix):
            problems.append(f"{name} comes from {where}")
    for problem in problems:
        print(f"environment {sys.prefix}: {problem}", file=sys.stderr)
    if not problems:
        print(f"environment {sys.prefix}: {', '.join(modules)} installed in it, nothing else read")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
