"""`vosbench leaderboard`: score published masks and runs into leaderboards/<dataset>-<split>-<track>.{csv,md,json}."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench.cli.choices import add_enum_argument
from vosbench.cli.dataset_args import add_dataset_arguments, dataset_kind, default_leaderboard_dir
from vosbench.tracks.params import Track

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "leaderboard", help="build the leaderboard of published masks and vosbench runs (csv, md, json)",
        description="Score each folder of published result masks (J, F and temporal stability T), quote the "
                    "published figures beside them, add vosbench runs, and write "
                    "<out>/<dataset>-<split>-<track>.{csv,md,json}. Rows of runs recorded earlier are kept. The "
                    "leaderboard belongs to the dataset at --gt (its identity: kind, split, resolution, number of "
                    "sequences, ground-truth fingerprint); a run made on other data is refused.")
    add_dataset_arguments(parser)
    add_enum_argument(parser, "--track", [Track.SEMI, Track.UNSUPERVISED], default=Track.SEMI)
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
    parser.add_argument("--out", type=Path, default=None,
                        help="leaderboard folder (default: $VOSBENCH_HOME/leaderboards, where `vosbench run` records "
                             "its rows; pass --out leaderboards to update the tables committed in a clone)")
    parser.add_argument("--jobs", type=int, default=1, help="processes over sequences (-1: all cores)")
    parser.add_argument("--no-cache", dest="cache", action="store_false", help="recompute every score")
    parser.add_argument("--backend", default=None, choices=["loky", "threading", "multiprocessing", "dask"],
                        help="joblib backend for J, F and T (dask: a distributed cluster, see --scheduler)")
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.1:8786")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vosbench.reports.collect import build_leaderboard, parse_measures

    root, kind = dataset_kind(args)
    print(f"dataset: {kind.value} at {root}", flush=True)
    build = build_leaderboard(root, dataset=kind.value, split=args.split, track=args.track.value,
                              published=args.published, official=args.official, runs=args.runs,
                              measures=parse_measures(args.measures),
                              leaderboard_dir=args.out or default_leaderboard_dir(),
                              resolution=args.resolution, jobs=args.jobs, cache=args.cache,
                              progress=args.progress, t_without_first_reference=args.t_without_first_reference,
                              methods=args.methods, backend=args.backend, scheduler=args.scheduler)
    print(build.paths["md"].read_text(encoding="utf-8"))
    log.info("wrote %s", ", ".join(str(p) for p in build.paths.values()))
    return 0
