"""The baselines package imports without circles: shared helpers live in modules that import no method."""
from __future__ import annotations

import ast
from pathlib import Path

import vosbench_baselines

ROOT = Path(vosbench_baselines.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every vosbench_baselines module `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vosbench_baselines."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("vosbench_baselines."))
    return found


def test_no_module_of_the_baselines_imports_itself_back():
    graph = {p.stem: _imports(p) - {p.stem} for p in ROOT.glob("*.py")}
    assert graph["single_frame"].isdisjoint({"osvos", "masktrack", "official"})
    assert "masktrack" not in graph["osvos"]

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    circles = sorted(m for m in graph if reaches(m, m, {m}))
    assert not circles, f"modules on an import circle: {circles}"
