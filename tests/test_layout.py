"""The Rust core's layers: each file uses only its own layer and those below, with no cycles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RUST = Path(__file__).resolve().parents[1] / "rust"
# Lowest first: a file may use its own layer and the layers before it.
LAYERS = ["util", "orders", "epoch", "bindings"]
USE = re.compile(r"crate::([a-z_]+)(?:::([a-z_0-9]+))?")


def _modules() -> dict[str, set[str]]:
    """Each layered file (``layer/name``) and the layered files it names."""
    graph: dict[str, set[str]] = {}
    for layer in LAYERS:
        for path in sorted((RUST / layer).glob("*.rs")):
            if path.stem == "mod":
                continue
            uses = {
                f"{a}/{b}"
                for a, b in USE.findall(path.read_text())
                if a in LAYERS and b and f"{a}/{b}" != f"{layer}/{path.stem}"
            }
            graph[f"{layer}/{path.stem}"] = uses
    return graph


def test_every_layer_exists_and_holds_files() -> None:
    graph = _modules()
    assert {m.split("/")[0] for m in graph} == set(LAYERS)
    assert sorted(p.name for p in RUST.glob("*.rs")) == ["invariants.rs", "lib.rs"]


@pytest.mark.parametrize("module", sorted(_modules()))
def test_uses_only_lower_or_same_layers(module: str) -> None:
    own = LAYERS.index(module.split("/")[0])
    above = sorted(u for u in _modules()[module] if LAYERS.index(u.split("/")[0]) > own)
    assert not above, f"{module} uses a higher layer: {above}"


def test_no_file_uses_a_file_that_uses_it_back() -> None:
    graph = _modules()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, "cycle: " + " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
