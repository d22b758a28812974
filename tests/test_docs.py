"""The documentation: every Python block of ``docs/*.md`` runs; the site builds without warnings.

The blocks of a page run in order in one namespace, as a reader would run them: no process group
exists before a page runs, so a page that needs one (``docs/distributed.md``) shows how it is
created.

Pages show their code. A block taken from a script that the test suite runs carries a comment
naming it on the line before its fence, ``<!-- code: path -->`` (the whole file) or
``<!-- code: path:section -->`` (the lines between ``# [start:section]`` and
``# [end:section]``), and must be byte-identical to it. ``python tests/test_docs.py`` copies
every such script (or section) into its page.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import warnings
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
TAGGED = re.compile(
    r"^<!-- code: ([^ :]+)(?::(\w+))? -->\n```python\n(.*?)^```", flags=re.DOTALL | re.MULTILINE
)


def section_of(path: str, section: str | None) -> str:
    """A file, or the part of it between ``# [start:section]`` and ``# [end:section]``."""
    text = (ROOT / path).read_text()
    if section is None:
        return text
    start = re.search(rf"^# \[start:{section}\]\n", text, flags=re.MULTILINE)
    end = re.search(rf"^# \[end:{section}\]$", text, flags=re.MULTILINE)
    assert start and end, f"{path} has no section {section!r}"
    return text[start.end() : end.start()]


def python_blocks(page: Path) -> list[str]:
    """The page's Python blocks, as it shows them."""
    return BLOCK.findall(page.read_text())


def sync(page: Path) -> bool:
    """Copy every tagged script (or section) into ``page``; report whether it changed."""
    text = page.read_text()

    def fill(m: re.Match[str]) -> str:
        tag = m.group(0).split("\n", 1)[0]
        return f"{tag}\n```python\n{section_of(m.group(1), m.group(2))}```"

    new = TAGGED.sub(fill, text)
    if new != text:
        page.write_text(new)
    return new != text


@pytest.fixture
def process_group() -> Iterator[None]:
    """No process group before a page runs (a page that needs one creates it, as the reader
    must); whatever group a page created is destroyed after it."""
    assert not dist.is_initialized()
    try:
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_code_blocks_run(page: Path, process_group: None) -> None:
    blocks = python_blocks(page)
    if any("torchdata" in block for block in blocks):
        pytest.importorskip("torchdata")
    namespace: dict[str, Any] = {"__name__": f"docs.{page.stem}"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # as a reader sees them; the page's own filters apply
        for i, block in enumerate(blocks):
            exec(compile(block, f"{page.name} python block {i}", "exec"), namespace)
    # A page that uses torchdata's loader filters the deprecation it triggers in torch.
    noise = [str(w.message) for w in caught if "set_vital" in str(w.message)]
    assert not noise, noise


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_pages_show_their_code(page: Path) -> None:
    text = page.read_text()
    assert "--8<--" not in text, f"{page.name} includes code instead of showing it"
    for m in TAGGED.finditer(text):
        expected = section_of(m.group(1), m.group(2))
        assert m.group(3) == expected, (
            f"{page.name}: the block tagged {m.group(1)}:{m.group(2)} differs from the script; "
            "run python tests/test_docs.py to copy the script into the page"
        )


def test_the_tagged_scripts_are_the_ones_the_suite_runs() -> None:
    tagged = {m.group(1) for page in PAGES for m in TAGGED.finditer(page.read_text())}
    assert tagged == {
        "examples/ddp_train.py",
        "examples/ddp_stateful_dataloader.py",
        "examples/shard_dataset.py",
        "tests/scripts/lightning_train.py",
        "tests/scripts/accelerate_train.py",
        "tests/scripts/transformers_train.py",
    }
    suite = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for path in tagged:
        assert Path(path).name in suite.replace(Path(__file__).read_text(), ""), path


def test_install_commands_work_from_a_clone() -> None:
    # The package is not on PyPI: an extra is installed from a clone (pip install ".[extra]"),
    # never as "resumable-samplers[extra]", which pip cannot find.
    texts = [ROOT / "README.md", ROOT / "benches" / "README.md", *PAGES]
    texts += sorted((ROOT / "python" / "resumable_samplers").rglob("*.py"))
    offending = [p.relative_to(ROOT) for p in texts if "resumable-samplers[" in p.read_text()]
    assert not offending, offending


def test_the_readme_api_list_names_every_public_name() -> None:
    readme = (ROOT / "README.md").read_text()
    api = readme[readme.index("## API") : readme.index("\n## ", readme.index("## API") + 1)]
    public = set(resumable_samplers.__all__) - {"__version__"}
    missing = sorted(name for name in public if not re.search(rf"`{name}[`(\[]", api))
    assert not missing, missing


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


if __name__ == "__main__":
    changed = [page.name for page in PAGES if sync(page)]
    print(
        "updated: " + ", ".join(changed) if changed else "every page shows its scripts as they are"
    )
