"""A Griffe extension that turns the reStructuredText in the package's docstrings into Markdown.

The docstrings follow torch's conventions (``:func:`name```, ``:math:`x```,
``.. code-block:: python``), which mkdocstrings would otherwise render as literal text. Roles
naming a public object of the package (one in ``__all__``) become cross-references to its entry
in the API reference; the others become code spans. ``code-block`` directives become fenced
code blocks. mkdocs.yml loads it with ``extensions: [docs/_ext/sphinx_roles.py]``.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(func|class|meth|attr|data|obj|mod|exc|math):`~?([^`]+)`")
CODE_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. code-block::[ \t]*(?P<lang>\w*)[ \t]*\n")


def convert_roles(text: str, package: str, exports: set[str]) -> str:
    """Replace every Sphinx role by a Markdown cross-reference or a code span."""

    def replace(match: re.Match[str]) -> str:
        role, target = match.group(1), match.group(2)
        name = target.rsplit(".", 1)[-1]
        if role == "math":
            return f"`{target}`"
        if name in exports:
            return f"[`{name}`][{package}.{name}]"
        return f"`{name}()`" if role in ("func", "meth") else f"`{name}`"

    return ROLE.sub(replace, text)


def convert_code_blocks(text: str) -> str:
    """Replace every ``.. code-block::`` directive and its indented body by a fenced block."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = CODE_BLOCK.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group("indent")
        body: list[str] = []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        code = textwrap.dedent("".join(body).strip("\n") + "\n")
        out.append(f"{indent}```{match.group('lang')}\n")
        out.extend(indent + line if line.strip() else line for line in code.splitlines(True))
        out.append(f"{indent}```\n")
        if i < len(lines):
            out.append("\n")
    return "".join(out)


class SphinxRoles(griffe.Extension):
    """Rewrite the docstrings of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Convert the docstrings of ``pkg`` and of every object it defines."""
        exports = {name for name in (pkg.exports or []) if isinstance(name, str)}
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None:
                value = convert_code_blocks(obj.docstring.value)
                obj.docstring.value = convert_roles(value, pkg.path, exports)
            stack.extend(m for m in obj.members.values() if isinstance(m, griffe.Object))
