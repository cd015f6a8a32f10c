"""The training interface: what `vosbench train` hands to a method's ``train`` classmethod and gets back.

A method class takes part in `vosbench train` by defining ``train(config: TrainConfig) -> TrainSummary``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    """What `vosbench train` passes to a method's ``train`` classmethod."""

    data: Path
    out: Path
    split: str = "train"
    dataset: str | None = None     # the kind of `data`; None: detected from the folder
    resolution: str = "480p"
    steps: int = 3000
    max_minutes: float | None = None
    seed: int = 0
    resume: bool = False
    batch_size: int = 4
    learning_rate: float = 2e-4
    checkpoint_every: int = 100
    device: str = "auto"
    threads: int | None = None
    progress: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["data"], data["out"] = str(self.data), str(self.out)
        return json.dumps(data, indent=2, sort_keys=True)


@dataclass
class TrainSummary:
    steps: int
    wall_seconds: float
    final_losses: dict[str, float]
    weights: Path | None
    stopped_by: str   # "steps" or "time"
