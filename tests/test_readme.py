"""Every Python code block of the README runs on its own, in a fresh interpreter, as a reader
who copies only that block would run it; the recipes do what they say; nothing prints
third-party deprecation noise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK_SECONDS = 240


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.DOTALL | re.MULTILINE)


BLOCKS = python_blocks(README)

# Appended to the plain DataLoader recipe: it resumed at batch 10 of epoch 0, as if never
# stopped, then ran epoch 1 whole, in torch's order.
RECIPE_CHECK = """
for epoch, start in ((0, 320), (1, 0)):
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(epoch))
    expected = [order[i : i + 32] for i in range(start, 1000, 32)]
    got = resumed[epoch]
    assert len(got) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
print("recipe checked")
"""


def run_alone(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter that sees this tree's package, as ``python -c`` would."""
    paths = [str(ROOT / "python"), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_SECONDS,
    )


def test_the_readme_has_its_blocks() -> None:
    assert len(BLOCKS) >= 7


@pytest.mark.timeout(BLOCK_SECONDS + 60)
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_each_block_runs_alone(index: int, tmp_path: Path) -> None:
    block = BLOCKS[index]
    if "torchdata" in block:
        pytest.importorskip("torchdata")
    code = block + (RECIPE_CHECK if "resumed.append(" in block else "")
    proc = run_alone(code, tmp_path)
    assert proc.returncode == 0, f"README block {index} alone:\n{block}\n{proc.stderr}"
    if "resumed.append(" in block:
        assert "recipe checked" in proc.stdout
    # The library's own output is free of third-party noise (the blocks filter what they
    # trigger, e.g. torchdata's use of torch's deprecated set_vital).
    assert "Warning" not in proc.stderr, proc.stderr
