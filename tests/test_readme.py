"""Every Python code block of the README runs, in order, and the recipes do what they say."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


@pytest.fixture
def process_group(tmp_path: Path) -> Any:
    # The distributed snippets take num_replicas/rank from the process group, as under torchrun.
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_readme_code_blocks_run(process_group: None) -> None:
    pytest.importorskip("torchdata")
    blocks = python_blocks(README)
    assert len(blocks) >= 5
    namespace: dict[str, Any] = {"__name__": "readme"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)

    # The plain DataLoader recipe resumed at batch 10 of epoch 0, as if never stopped, then
    # ran epoch 1 whole.
    for epoch, start in ((0, 320), (1, 0)):
        order = torch.randperm(1000, generator=torch.Generator().manual_seed(epoch))
        expected = [order[i : i + 32] for i in range(start, 1000, 32)]
        got = namespace["resumed"][epoch]
        assert len(got) == len(expected)
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
