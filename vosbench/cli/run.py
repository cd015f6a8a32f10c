"""`vosbench run`: segment a dataset with a registered method, score it, record a leaderboard row.

Without --gt it runs on the embedded synthetic dataset (generated on first use),
so the first run needs no download.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from functools import partial
from pathlib import Path

from vosbench.cli.choices import add_enum_argument, add_option_argument, parse_options
from vosbench.errors import VosbenchError
from vosbench.io.atomic import atomic_write
from vosbench.cli.dataset_args import (add_dataset_arguments, dataset_kind, default_leaderboard_dir, default_out,
                                       open_cli_dataset)
from vosbench.io.factory import DatasetKind
from vosbench.tracks.params import Track

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="segment a dataset with a method, score it, record a leaderboard row",
        description="Run a registered method over a dataset (masks written as DAVIS palette PNGs), score the "
                    "masks under the official protocol, print the table, write the CSVs and run.json, and "
                    "record the row in the leaderboard. An interrupted run resumes where it stopped. Without "
                    "--gt it runs on the embedded synthetic dataset.")
    parser.add_argument("--method", required=True, metavar="METHOD",
                        help="registered method: " + ", ".join(_method_names()))
    add_enum_argument(parser, "--track", [Track.SEMI, Track.UNSUPERVISED], default=Track.SEMI)
    add_dataset_arguments(parser, resolution=False)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--resolution", default="480p", choices=["480p", "240p", "Full-Resolution"],
                        help="which Annotations/JPEGImages resolution folder to use; 240p on a DAVIS dataset "
                             "without 240p annotations: the method works on 240-row frames and its masks are "
                             "scored, scaled back, against the 480p annotations")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder: masks, CSVs, run.json (default: $VOSBENCH_HOME/runs/"
                             "<method>-<dataset>-<split>-<track>, $VOSBENCH_HOME defaulting to ~/.cache/vosbench)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded synthetic dataset")
    parser.add_argument("--jobs", type=int, default=1,
                        help="sequences segmented and scored at once, each worker with its share of --threads "
                             "(-1: one per core)")
    parser.add_argument("--backend", default=None, choices=["loky", "threading", "multiprocessing", "dask"],
                        help="joblib backend of --jobs (dask: a distributed cluster, see --scheduler)")
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.1:8786")
    parser.add_argument("--weights", type=Path, default=None, help="weights file for methods that take one")
    add_option_argument(parser, help="a constructor option of the method, e.g. --option finetune_steps=100 "
                                     "(repeatable; recorded with the run, so masks made with other options "
                                     "are never reused)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch/OpenCV threads (default: OMP_NUM_THREADS, else one per core)")
    parser.add_argument("--leaderboard-dir", type=Path, default=None,
                        help="where the leaderboard row is recorded (default: $VOSBENCH_HOME/leaderboards, "
                             "where `vosbench leaderboard` writes by default)")
    parser.add_argument("--restart", dest="resume", action="store_false",
                        help="segment every sequence again instead of resuming a finished or interrupted run")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)


# Resolutions a method can be run at where the dataset has no annotations of that size (the
# official DAVIS downloads have 480p and full resolution only): the method gets frames of that
# many rows (the dataset's own frames of that size when it has them) and its masks are scored,
# scaled back, against the 480p annotations.
INPUT_HEIGHTS = {"240p": 240}


def _resolutions(kind: DatasetKind, root: Path, resolution: str) -> tuple[str, int | None, dict]:
    """(annotations' resolution, rows of the method's frames or None, dataset options) for --resolution."""
    if (kind in (DatasetKind.DAVIS2016, DatasetKind.DAVIS2017, DatasetKind.SYNTHETIC) and resolution in INPUT_HEIGHTS
            and not (root / "Annotations" / resolution).is_dir() and (root / "Annotations" / "480p").is_dir()):
        log.info("no %s annotations in %s: the method works on %d-row frames, scored against the 480p "
                 "annotations (masks scaled back)", resolution, root, INPUT_HEIGHTS[resolution])
        return "480p", INPUT_HEIGHTS[resolution], {"image_resolution": resolution}
    return resolution, None, {}


def _open(args: argparse.Namespace):
    """The dataset (named by its kind: davis2016, synthetic, ...) and the rows of the method's frames
    (None: the annotations' own)."""
    root, kind = dataset_kind(args, seed=args.seed)
    resolution, input_height, extra = _resolutions(kind, root, args.resolution)
    dataset = open_cli_dataset(args, seed=args.seed, unsupervised=args.track is Track.UNSUPERVISED,
                               resolution=resolution, **extra)
    return dataset, kind, input_height


def _method_names() -> list[str]:
    from vosbench.methods.registry import available_methods

    return available_methods()


def run(args: argparse.Namespace) -> int:
    import cv2

    from vosbench.methods.device import configure_threads, prepare_torch
    from vosbench.methods.registry import check_options, load_method
    from vosbench.methods.runner import segment_dataset
    from vosbench.reports.leaderboard import record_run
    from vosbench.tracks import EvalParams, evaluate_dataset

    if args.jobs == 0:
        raise VosbenchError("--jobs 0 means nothing: pass a number of workers, or -1 for one per core.")
    device = prepare_torch(args.device, args.threads)   # a device that is not there fails before any work
    dataset, kind, input_height = _open(args)
    dataset_name = dataset.name
    threads = configure_threads()   # the count prepare_torch set
    cv2.setNumThreads(threads)
    options = parse_options(args.option)
    check_options(args.method, options)
    if args.weights is not None:
        options["weights"] = str(args.weights)
    method = load_method(args.method, device=device, **options)
    # --jobs N: N workers, each building its own copy of the method with its share of the threads.
    factory = partial(load_method, args.method, device=device, **options)

    out = args.out or default_out("runs", f"{args.method}-{dataset_name}-{args.split}-{args.track.value}")
    masks = out / "masks"
    log.info("%s on %s (%s, %d threads) -> %s", args.method, dataset.describe(), device, threads, masks)
    record = segment_dataset(method, dataset, masks, track=args.track, resume=args.resume, progress=args.progress,
                             jobs=args.jobs, method_factory=factory, threads=threads,
                             backend=args.backend, scheduler=args.scheduler, input_height=input_height)
    # The record names the annotations' resolution (480p in the 240p-input mode) where the dataset has one.
    record = replace(record, dataset=dataset_name, split=args.split, resolution=record.resolution or args.resolution)
    if input_height is not None:
        # Part of the row's options, so that it sits beside the row of the same method at full size.
        record = replace(record, options={**record.options, "input_resolution": args.resolution})

    params = EvalParams.official(args.track, dataset=kind)
    result = evaluate_dataset(dataset, masks, params, jobs=args.jobs, backend=args.backend, scheduler=args.scheduler,
                              progress=args.progress, split=args.split)
    result.identity = record.dataset_identity
    print(result.format_table())
    print(f"\n{record.method}: J&F-Mean {result.summary['J&F-Mean']:.3f}, {record.seconds_per_frame:.4f} s/frame "
          f"({record.n_frames} frames, {record.seconds:.1f} s) on {record.device}")
    paths = result.write(out)
    run_json = dict(record.to_dict(), summary=result.summary, protocol=params.to_dict(),
                    protocol_text=params.describe(), gt=str(dataset.root))
    atomic_write(out / "run.json", json.dumps(run_json, indent=1, allow_nan=True) + "\n")
    board = record_run(record, result, args.leaderboard_dir or default_leaderboard_dir())
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    print(f"run folder: {out} (masks, CSVs, run.json)\nleaderboard: {board}")
    return 1 if result.skipped else 0
