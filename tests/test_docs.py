"""The documentation: every Python block of ``docs/*.md`` runs; the site builds without warnings.

The blocks of a page run in order in one namespace, inside a one-process gloo group (the
distributed snippets take ``num_replicas``/``rank`` from it, as under torchrun). A block made of
``--8<-- "path"`` lines (pymdownx.snippets) runs the file it includes (or the section of it that
``"path:section"`` names), as the page shows it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist

import resumable_samplers

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::(\w+))?"$', flags=re.MULTILINE)


def included(path: str, section: str | None) -> str:
    """A file, or the part of it between ``--8<-- [start:section]`` and ``[end:section]``."""
    text = (ROOT / path).read_text()
    if section is None:
        return text
    start = re.search(rf"^.*--8<-- \[start:{section}\].*\n", text, flags=re.MULTILINE)
    end = re.search(rf"^.*--8<-- \[end:{section}\]", text, flags=re.MULTILINE)
    assert start and end, f"{path} has no section {section!r}"
    return text[start.end() : end.start()]


def python_blocks(page: Path) -> list[str]:
    """The page's Python blocks, with included files (or sections of them, ``"file:section"``) in
    place of their ``--8<--`` lines."""
    blocks = BLOCK.findall(page.read_text())
    return [SNIPPET.sub(lambda m: included(m.group(1), m.group(2)), block) for block in blocks]


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[None]:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_code_blocks_run(page: Path, process_group: None) -> None:
    blocks = python_blocks(page)
    if any("torchdata" in block for block in blocks):
        pytest.importorskip("torchdata")
    namespace: dict[str, Any] = {"__name__": f"docs.{page.stem}"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page.name} python block {i}", "exec"), namespace)


def test_the_api_reference_covers_the_public_names() -> None:
    text = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"^::: resumable_samplers\.(\w+)$", text, flags=re.MULTILINE))
    public = set(resumable_samplers.__all__) - {"__version__"}
    assert documented == public
    assert "__version__" in text


@pytest.mark.timeout(300)
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    for module in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    assert (tmp_path / "api" / "index.html").exists()
