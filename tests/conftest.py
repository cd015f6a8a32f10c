"""Shared fixtures. Real-data tests skip without ../shared, and fail instead when VOSBENCH_REQUIRE_SHARED=1."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VOSBENCH_SHARED", REPO.parent / "shared"))

os.environ.setdefault("MPLBACKEND", "Agg")


def _shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("VOSBENCH_REQUIRE_SHARED") == "1":
            pytest.fail(f"{path} is missing but VOSBENCH_REQUIRE_SHARED=1 requires the real data")
        pytest.skip(f"real data not present at {path}")
    return path


@pytest.fixture(scope="session", autouse=True)
def _isolated_vosbench_home(tmp_path_factory):
    """Generated datasets and cached scores go to a throw-away folder unless VOSBENCH_HOME is set."""
    if "VOSBENCH_HOME" not in os.environ:
        os.environ["VOSBENCH_HOME"] = str(tmp_path_factory.mktemp("vosbench-home"))
    yield


@pytest.fixture(scope="session")
def davis2016_root() -> Path:
    """The real DAVIS 2016 folder (ground truth of 50 sequences, published result masks)."""
    return _shared_path("data", "davis2016")


@pytest.fixture(scope="session")
def davis_interactive_root() -> Path:
    """Real DAVIS interactive scribble files."""
    return _shared_path("data", "davis-interactive")
