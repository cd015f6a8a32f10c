"""`vosbench pack`: zip a results folder in the official layout (what `vosbench serve` and the DAVIS servers take)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench.cli.choices import add_enum_argument
from vosbench.errors import ValidationError
from vosbench.io.factory import DatasetKind, detect_dataset_kind, open_dataset
from vosbench.tracks.pack import pack_results
from vosbench.tracks.params import EvalParams, Track
from vosbench.tracks.validate import validate_folder

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pack", help="zip result masks in the official layout (<sequence>/<frame>.png) for a server",
        description="Writes one PNG per frame under one folder per sequence at the archive's root. With --gt the "
                    "folder is first checked exactly as `vosbench validate` does and nothing is written when it "
                    "has a problem.")
    parser.add_argument("--results", required=True, type=Path, help="folder with one sub-folder of PNG masks per sequence")
    parser.add_argument("--out", required=True, type=Path, help="zip file to write")
    parser.add_argument("--gt", type=Path, default=None, help="dataset root: validate against it first")
    add_enum_argument(parser, "--track", [Track.SEMI, Track.UNSUPERVISED], default=Track.SEMI)
    add_enum_argument(parser, "--dataset", DatasetKind, default=None,
                      help="dataset kind of --gt (default: detected from the folder)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--resolution", default="480p")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sequences = None
    if args.gt is not None:
        kind = detect_dataset_kind(args.gt, args.dataset)
        dataset = open_dataset(kind, args.gt, split=args.split, resolution=args.resolution,
                               unsupervised=args.track is Track.UNSUPERVISED)
        problems = validate_folder(dataset, args.results, EvalParams.official(args.track, dataset=kind))
        if problems:
            raise ValidationError(problems)
        sequences = dataset.sequence_names()
    out = pack_results(args.results, args.out, sequences=sequences)
    print(f"{out}: {args.results} packed")
    return 0
