"""What a benchmark server is: its hidden ground truth, its database, its folders and its limits.

Importing this module needs nothing beyond vosbench itself, so the CLI can build
a configuration before it checks that the `server` extra is installed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vosbench.io.factory import DatasetKind, detect_dataset_kind
from vosbench.io.paths import vosbench_home
from vosbench.tracks.interactive.engine import BudgetRule
from vosbench.tracks.params import Track

SERVER_TRACKS = (Track.SEMI, Track.UNSUPERVISED)
MiB = 1024 * 1024


def default_data_dir() -> Path:
    """``$VOSBENCH_HOME/server``: the database (SQLite), the queue and the uploaded masks."""
    return vosbench_home() / "server"


@dataclass(frozen=True)
class Limits:
    """What one upload may hold. Sizes are counted on the bytes actually read, never on what a zip claims."""

    max_upload_bytes: int = 200 * MiB       # the request body
    max_unpacked_bytes: int = 1024 * MiB    # all masks, decompressed
    max_member_bytes: int = 16 * MiB        # one mask, decompressed
    max_members: int = 100_000
    max_ratio: float = 200.0                # decompressed / compressed size of one member (zip bombs)
    daily_submissions: int = 5              # per user per UTC day, unless the user has their own limit


@dataclass(frozen=True)
class ServerConfig:
    """A benchmark server.

    gt: dataset root whose ground truth is scored against and never served.
    db_url: SQLAlchemy URL; default SQLite (WAL) at ``data_dir/server.db``.
    data_dir: where uploads, scores and the job queue live.
    lease_seconds: how long a worker owns a job without a heartbeat; a job whose
        worker died is retried once its lease has run out.
    """

    gt: Path
    # None: detected from `gt` (the rule every command uses); a kind that contradicts the folder is an error.
    dataset: DatasetKind | None = None
    split: str = "val"
    resolution: str = "480p"
    tracks: tuple[Track, ...] = SERVER_TRACKS
    db_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    title: str = "vosbench benchmark"
    limits: Limits = field(default_factory=Limits)
    lease_seconds: float = 60.0
    # The interactive track (the DAVIS interactive remote protocol); off without interactive_gt.
    interactive_gt: Path | None = None
    interactive_split: str = "test-dev"
    interactive_max_interactions: int = 8
    interactive_max_time: float = 240.0
    # None: the official scribbles (the challenges' tie-break); an integer: another robot
    interactive_seed: int | None = None
    interactive_budget_rule: BudgetRule = BudgetRule.METHOD_TIME

    def __post_init__(self):
        object.__setattr__(self, "gt", Path(self.gt))
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "dataset", detect_dataset_kind(self.gt, self.dataset))
        object.__setattr__(self, "tracks", tuple(Track(t) for t in self.tracks))
        object.__setattr__(self, "interactive_budget_rule", BudgetRule(self.interactive_budget_rule))
        if self.interactive_gt is not None:
            object.__setattr__(self, "interactive_gt", Path(self.interactive_gt))

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'server.db'}"

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.db"

    @property
    def submissions_dir(self) -> Path:
        return self.data_dir / "submissions"

    def submission_dir(self, submission_id: int) -> Path:
        return self.submissions_dir / f"{int(submission_id):08d}"

    def to_env(self) -> dict[str, str]:
        """The configuration as environment variables, for a worker process started by `vosbench serve`."""
        return {"VOSBENCH_SERVER_CONFIG": _dump(self)}


def _dump(config: ServerConfig) -> str:
    import dataclasses
    import json

    values = dataclasses.asdict(config)
    values["gt"] = str(config.gt)
    values["data_dir"] = str(config.data_dir)
    values["dataset"] = config.dataset.value
    values["tracks"] = [t.value for t in config.tracks]
    values["interactive_budget_rule"] = config.interactive_budget_rule.value
    values["interactive_gt"] = None if config.interactive_gt is None else str(config.interactive_gt)
    return json.dumps(values)


def config_from_env(environ: dict[str, str] | None = None) -> ServerConfig:
    import json

    values = json.loads((environ or os.environ)["VOSBENCH_SERVER_CONFIG"])
    values["limits"] = Limits(**values["limits"])
    values["tracks"] = tuple(values["tracks"])
    return ServerConfig(**values)
