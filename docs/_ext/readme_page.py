"""An mkdocs hook that makes the site's "Overview (README)" page the repository's README.md.

``docs/readme.md`` in the repository only says where its text comes from; at build time this hook
replaces the page's Markdown with README.md's, so the site shows the README as it is, with
nothing copied by hand. mkdocs.yml loads it with ``hooks: [docs/_ext/readme_page.py]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PAGE = "readme.md"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """README.md's text for the README page; any other page unchanged."""
    if page.file.src_uri != PAGE:
        return markdown
    return (Path(config["config_file_path"]).parent / "README.md").read_text(encoding="utf-8")
