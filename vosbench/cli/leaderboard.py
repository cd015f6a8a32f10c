"""`vosbench leaderboard`: score published masks and runs into leaderboards/<dataset>-<split>-<track>.{csv,md,json}."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench.cli.choices import add_enum_argument
from vosbench.io.factory import DatasetKind
from vosbench.tracks.params import Track

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "leaderboard", help="build the leaderboard of published masks and vosbench runs (csv, md, json)",
        description="Score each folder of published result masks (J, F and temporal stability T), quote the "
                    "published figures beside them, add vosbench runs, and write "
                    "<out>/<dataset>-<split>-<track>.{csv,md,json}. Rows of runs recorded earlier are kept.")
    parser.add_argument("--gt", required=True, type=Path, help="dataset root (the folder holding Annotations/)")
    add_enum_argument(parser, "--dataset", DatasetKind, default=DatasetKind.DAVIS2016)
    parser.add_argument("--split", default="val")
    add_enum_argument(parser, "--track", [Track.SEMI, Track.UNSUPERVISED], default=Track.SEMI)
    parser.add_argument("--resolution", default="480p")
    parser.add_argument("--published", type=Path, default=None,
                        help="folder of <method>/<sequence>/<frame>.png published result masks")
    parser.add_argument("--official", type=Path, default=None,
                        help="published leaderboard figures to quote (default: official_global_<split>.json "
                             "in --published when present)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help="published methods to score and quote (default: those the track admits, by the track "
                             "each was made for in vosbench/data/published_methods.csv: the semi track ranks "
                             "semi-supervised and unsupervised methods together, as the DAVIS 2016 leaderboard "
                             "does; the unsupervised track only unsupervised ones (andiff, fseg), since "
                             "semi-supervised methods were given the first frame's mask. A method missing from "
                             "that table is taken on the semi track and must be named here for the unsupervised "
                             "one)")
    parser.add_argument("--runs", nargs="*", type=Path, default=[],
                        help="vosbench run folders of this track (e.g. made by `vosbench run --track TRACK`); "
                             "their stored scores are reused when made under this leaderboard's protocol, "
                             "else their masks are scored again")
    parser.add_argument("--t-without-first-reference", nargs="+", default=[], metavar="METHOD",
                        help="published methods whose T is computed without comparing the first evaluated frame "
                             "with the first frame's ground truth (the DAVIS toolkit's eval_result, by which "
                             "AnDiff's published T was made); their rows say so")
    parser.add_argument("--measures", default="J,F,T", help="comma-separated: J,F (fast) or J,F,T (default)")
    parser.add_argument("--out", type=Path, default=Path("leaderboards"), help="leaderboard folder")
    parser.add_argument("--jobs", type=int, default=1, help="processes over sequences (-1: all cores)")
    parser.add_argument("--no-cache", dest="cache", action="store_false", help="recompute every score")
    parser.add_argument("--backend", default=None, choices=["loky", "threading", "multiprocessing", "dask"],
                        help="joblib backend for J, F and T (dask: a distributed cluster, see --scheduler)")
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.1:8786")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vosbench.reports.collect import build_leaderboard, parse_measures

    build = build_leaderboard(args.gt, dataset=args.dataset.value, split=args.split, track=args.track.value,
                              published=args.published, official=args.official, runs=args.runs,
                              measures=parse_measures(args.measures), leaderboard_dir=args.out,
                              resolution=args.resolution, jobs=args.jobs, cache=args.cache,
                              progress=args.progress, t_without_first_reference=args.t_without_first_reference,
                              methods=args.methods, backend=args.backend, scheduler=args.scheduler)
    print(build.paths["md"].read_text(encoding="utf-8"))
    log.info("wrote %s", ", ".join(str(p) for p in build.paths.values()))
    return 0
