"""`vosbench evaluate`: score a results folder, print the table, write the CSVs."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench import evaluate
from vosbench.io.factory import DatasetKind
from vosbench.tracks.params import Track

log = logging.getLogger(__name__)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, type=Path, help="dataset root (the folder holding Annotations/)")
    parser.add_argument("--results", required=True, type=Path, help="folder with one sub-folder of PNG masks per sequence")
    parser.add_argument("--track", type=Track, choices=[Track.SEMI, Track.UNSUPERVISED], default=Track.SEMI)
    parser.add_argument("--dataset", type=DatasetKind, choices=list(DatasetKind), default=DatasetKind.DAVIS2017)
    parser.add_argument("--split", default="val")
    parser.add_argument("--resolution", default="480p")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="score result masks against ground truth (official protocol)")
    add_common_arguments(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="where the CSVs go (default: the results folder, as the official toolkit)")
    parser.add_argument("--jobs", type=int, default=1, help="processes over sequences (-1: all cores)")
    parser.add_argument("--backend", default=None, choices=["loky", "threading", "multiprocessing", "dask"],
                        help="joblib backend (dask: a distributed cluster, see --scheduler)")
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.1:8786")
    parser.add_argument("--lenient", "--report-only", dest="lenient", action="store_true",
                        help="score what can be scored and list what was skipped")
    parser.add_argument("--no-cache", dest="cache", action="store_false",
                        help="do not reuse or store per-sequence scores")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = evaluate(args.gt, args.results, dataset=args.dataset, track=args.track, split=args.split,
                      resolution=args.resolution, jobs=args.jobs, backend=args.backend, scheduler=args.scheduler,
                      cache=args.cache, lenient=args.lenient, progress=args.progress)
    print(result.format_table())
    paths = result.write(args.out or args.results)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 1 if result.skipped else 0
