"""The dataset options every command declares the same way, with one set of defaults.

``--gt ROOT`` (default: the embedded synthetic dataset, generated on first use), ``--dataset KIND``
(default: detected from the folder by `vosbench.io.identity.detect_kind`; a kind that contradicts
the folder is an error), ``--split`` (val; train for `vosbench train`) and ``--resolution`` (480p).
The dataset a command works on is printed on stdout, with its path.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench.cli.choices import add_enum_argument
from vosbench.errors import VosbenchError
from vosbench.io.factory import DatasetKind, detect_dataset_kind, open_dataset
from vosbench.io.paths import vosbench_home

log = logging.getLogger(__name__)

DATASET_HELP = ("dataset kind of --gt (default: detected from the folder: synthetic.json, ImageSets/2017 "
                "-> davis2017, ImageSets/480p|1080p|2016 -> davis2016, meta.json -> youtubevos; a kind that "
                "contradicts the folder is an error)")


def add_dataset_arguments(parser: argparse.ArgumentParser, *, split: str = "val", gt_help: str | None = None,
                          gt_flags: tuple[str, ...] = ("--gt",), resolution: bool = True,
                          kinds: list[DatasetKind] | None = None) -> None:
    parser.add_argument(*gt_flags, dest="gt", type=Path, default=None,
                        help=gt_help or "dataset root holding Annotations/ (default: the embedded synthetic "
                                        "dataset, generated on first use under $VOSBENCH_HOME/datasets)")
    add_enum_argument(parser, "--dataset", kinds or list(DatasetKind), default=None, help=DATASET_HELP)
    parser.add_argument("--split", default=split, help=f"split to use (default {split})")
    if resolution:
        parser.add_argument("--resolution", default="480p", help="annotations' resolution folder (default 480p)")


def dataset_root(args: argparse.Namespace, seed: int = 0) -> Path:
    """--gt, or the embedded synthetic dataset (generated on first use) when --gt is not given."""
    if args.gt is not None:
        return Path(args.gt)
    if args.dataset not in (None, DatasetKind.SYNTHETIC):
        raise VosbenchError(f"--dataset {args.dataset.value} needs --gt ROOT, the folder holding Annotations/ "
                            "(without --gt the embedded synthetic dataset is used).")
    from vosbench.io.synthetic import default_dataset_root

    return default_dataset_root(seed=seed)


def dataset_kind(args: argparse.Namespace, seed: int = 0) -> tuple[Path, DatasetKind]:
    """(root, kind) of the command's dataset: --dataset checked against --gt, or detected."""
    root = dataset_root(args, seed)
    return root, detect_dataset_kind(root, args.dataset)


def open_cli_dataset(args: argparse.Namespace, *, seed: int = 0, unsupervised: bool = False, announce: bool = True,
                     **options):
    """The dataset of the command (`dataset_kind`), opened; its description, path included, printed."""
    root, kind = dataset_kind(args, seed)
    resolution = options.pop("resolution", getattr(args, "resolution", "480p"))
    dataset = open_dataset(kind, root, split=args.split, resolution=resolution, unsupervised=unsupervised,
                           **options)
    if announce:
        print(f"dataset: {dataset.describe()}", flush=True)
    return dataset


def default_out(kind: str, name: str) -> Path:
    """Where a command writes when --out is not given: ``$VOSBENCH_HOME/<kind>/<name>`` (never the
    working folder)."""
    return vosbench_home() / kind / name


def default_leaderboard_dir() -> Path:
    """The leaderboard folder `vosbench run` records rows in and `vosbench leaderboard` writes by default."""
    return vosbench_home() / "leaderboards"
