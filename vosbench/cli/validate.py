"""`vosbench validate`: check a results folder without scoring it."""
from __future__ import annotations

import argparse
import logging

from vosbench.cli.dataset_args import dataset_kind
from vosbench.cli.evaluate import add_common_arguments
from vosbench.io.factory import open_dataset
from vosbench.tracks.params import EvalParams, Track
from vosbench.tracks.validate import validate_folder

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("validate", help="check a results folder (files, sizes, ids) without scoring")
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root, kind = dataset_kind(args)
    dataset = open_dataset(kind, root, split=args.split, resolution=args.resolution,
                           unsupervised=args.track is Track.UNSUPERVISED)
    params = EvalParams.official(args.track, dataset=kind)
    from vosbench.tracks.benchmarks import benchmark_problems, uses_benchmark_jobs
    from vosbench.tracks.first_frame import is_test_split, validate_against_first_frames

    if is_test_split(dataset):
        # test-dev / test-challenge: only first frames are public; checked against them.
        problems = validate_against_first_frames(dataset, args.results)
    elif uses_benchmark_jobs(dataset):
        problems = benchmark_problems(dataset, args.results)
    else:
        problems = validate_folder(dataset, args.results, params)
    for problem in problems:
        print(f"- {problem}")
    if problems:
        print(f"{len(problems)} problem(s) in {args.results}")
        return 2
    print(f"{args.results}: valid for {dataset.describe()} ({params.track.value})")
    return 0
