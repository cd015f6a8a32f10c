"""`vosbench evaluate`: score a results folder, print the table, write the CSVs."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench import evaluate
from vosbench.cli.choices import add_enum_argument
from vosbench.cli.dataset_args import add_dataset_arguments, dataset_kind
from vosbench.errors import VosbenchError
from vosbench.io.atomic import atomic_write
from vosbench.io.factory import DatasetKind, open_dataset
from vosbench.tracks.youtubevos import read_category_list, seen_unseen_breakdown
from vosbench.tracks.params import Track

log = logging.getLogger(__name__)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    parser.add_argument("--results", required=True, type=Path, help="folder with one sub-folder of PNG masks per sequence")
    add_enum_argument(parser, "--track", [Track.SEMI, Track.UNSUPERVISED], default=Track.SEMI)


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
    parser.add_argument("--metrics", default=None,
                        help="comma-separated registered metrics to measure, e.g. J,F,T "
                             "(default: the dataset's official ones; J,F for DAVIS)")
    parser.add_argument("--metric-option", action="append", default=[], metavar="METRIC.KEY=VALUE",
                        help="an option of one metric, VALUE read as JSON (repeatable), e.g. "
                             "lvos.compiled_boundary=true (LVOS's compiled boundary path)")
    parser.add_argument("--seen-categories", type=Path, default=None,
                        help="YouTube-VOS: text file of the categories seen in training (one per line)")
    parser.add_argument("--unseen-categories", type=Path, default=None,
                        help="YouTube-VOS: text file of the unseen categories; with --seen-categories "
                             "adds J/F seen and unseen and their mean")
    parser.set_defaults(func=run)


def parse_metric_options(items: list[str]) -> dict[str, dict]:
    """``["lvos.compiled_boundary=true"]`` -> ``{"lvos": {"compiled_boundary": True}}`` (values are JSON;
    a value that is not JSON is taken as a string)."""
    import json

    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        metric, dot, option = key.partition(".")
        if not sep or not dot or not metric or not option:
            raise VosbenchError(f"--metric-option {item!r}: write METRIC.KEY=VALUE, e.g. lvos.compiled_boundary=true.")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(metric, {})[option] = parsed
    return out


def run(args: argparse.Namespace) -> int:
    if (args.seen_categories is None) != (args.unseen_categories is None):
        raise VosbenchError("--seen-categories and --unseen-categories go together.")
    root, kind = dataset_kind(args)
    if args.seen_categories is not None and kind is not DatasetKind.YOUTUBEVOS:
        raise VosbenchError("--seen-categories/--unseen-categories apply to YouTube-VOS only.")
    result = evaluate(root, args.results, dataset=kind, track=args.track, split=args.split,
                      resolution=args.resolution, jobs=args.jobs, backend=args.backend, scheduler=args.scheduler,
                      cache=args.cache, lenient=args.lenient, progress=args.progress, metrics=args.metrics,
                      metric_options=parse_metric_options(args.metric_option) or None)
    print(result.format_table())
    breakdown = None
    if args.seen_categories is not None:
        breakdown = seen_unseen_breakdown(result, open_dataset(kind, root, split=args.split),
                                          seen=read_category_list(args.seen_categories),
                                          unseen=read_category_list(args.unseen_categories))
        print("\n------------------- YouTube-VOS seen / unseen -------------------")
        print(breakdown.to_string(index=False, float_format="%.3f"))
    out = args.out or args.results
    paths = result.write(out)
    if breakdown is not None:
        target = Path(out) / f"seen-unseen_results-{args.split}.csv"
        atomic_write(target, breakdown.to_csv(index=False, float_format="%.3f", lineterminator="\n"))
        paths["seen_unseen"] = target
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    if result.skipped:
        print(f"\nPARTIAL: {len(result.skipped)} sequence(s) skipped (--lenient); the tables cover the scored "
              "sequences only. Exit status 1.")
    return 1 if result.skipped else 0
