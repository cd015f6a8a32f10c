"""Layers import only downward: io -> metrics -> tracks -> interactive -> methods -> reports -> server -> cli.

`vosbench.interactive` (the DAVIS interactive framework's API: the drop-in session and its
helpers) drives the interactive track's step engine and needs no method: it sits right above tracks.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["errors", "io", "metrics", "tracks", "interactive", "methods", "reports", "server", "cli"]
# Modules at the package root that are not a layer of their own.
FREE = {"__init__", "__main__", "data"}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "vosbench" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def test_vosbench_layers_import_only_downward():
    violations = []
    for path in sorted((REPO / "vosbench").rglob("*.py")):
        rel = path.relative_to(REPO / "vosbench")
        own = rel.parts[0].removesuffix(".py")
        if own in FREE:
            continue
        assert own in LAYERS, f"{rel}: not in a known layer"
        for module in _imports(path):
            if module.startswith("vosbench_baselines"):
                violations.append(f"{rel} imports {module} (baselines are found through entry points)")
            target = _layer_of(module)
            if target is None or target in FREE:
                continue
            if LAYERS.index(target) > LAYERS.index(own):
                violations.append(f"{rel} ({own}) imports {module} ({target})")
    assert not violations, "\n".join(violations)


def test_baselines_never_import_the_cli():
    for path in sorted((REPO / "baselines").rglob("*.py")):
        for module in _imports(path):
            assert not module.startswith("vosbench.cli"), f"{path} imports {module}"
