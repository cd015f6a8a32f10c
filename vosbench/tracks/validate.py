"""Check a results folder against a dataset before anything is scored.

Structural checks read only PNG headers, so they are cheap; content checks
(object ids, proposal counts, undecodable pixels) happen while scoring and
raise the same InputError. Every problem names the file and the fix.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from vosbench.errors import InputError
from vosbench.io.datasets import Dataset
from vosbench.tracks.jobs import SequenceJob
from vosbench.tracks.params import EvalParams

class NotPNGError(ValueError):
    """A mask file holds another image format (JPEG compression corrupts object ids)."""


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG from its IHDR header, read directly.

    Validation looks at every mask of a results folder; opening each with PIL
    would cost more than decoding it does on the fast path. Raises NotPNGError
    for a readable image of another format, OSError/ValueError for anything else.
    """
    with open(path, "rb") as handle:
        head = handle.read(33)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(head) == 33 and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            if width and height:
                return width, height
        raise ValueError("broken PNG header")
    with Image.open(path) as image:
        raise NotPNGError(f"its content is {image.format or 'another format'}, not PNG")


# Files vosbench or the official toolkits write into a results folder; never masks.
OUTPUT_SUFFIXES = (".csv", ".json", ".txt", ".md", ".yml", ".yaml", ".log")


@dataclass
class ValidationReport:
    jobs: list[SequenceJob] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)
    # sequence -> problems; a lenient run skips these sequences.
    by_sequence: dict[str, list[InputError]] = field(default_factory=dict)
    # Jobs of sequences with structural problems, over their readable masks only: `validate_folder`
    # still checks their pixels so that one run lists every problem.
    partial_jobs: list[SequenceJob] = field(default_factory=list)
    # What the report has to say that is not a problem (e.g. folders of other splits, ignored).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _scored_frame_indices(n_frames: int, params: EvalParams) -> set[int]:
    if params.skip_first_last:
        return set(range(1, n_frames - 1))
    return set(range(n_frames))


def build_jobs(dataset: Dataset, results_dir: str | Path, params: EvalParams) -> ValidationReport:
    """Pair every ground-truth frame with its result mask; collect every structural problem."""
    results = Path(results_dir)
    report = ValidationReport()
    if not results.is_dir():
        report.problems.append(InputError(results, "results folder does not exist." if not results.exists()
                                          else "is a file, not a results folder.",
                                          "Pass the folder that holds one sub-folder of PNG masks per sequence."))
        return report
    sequences = dataset.sequence_names()
    present = {p.name for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if not present & set(sequences):
        nested = [p for p in sorted(results.iterdir()) if p.is_dir() and any((p / s).is_dir() for s in sequences)]
        fix = (f"Point at {nested[0]} instead: it holds the sequence folders." if nested else
               f"The folder must hold one sub-folder per sequence ({', '.join(sequences[:3])}, ...) of PNG masks.")
        report.problems.append(InputError(results, "holds no folder of any sequence of the dataset.", fix))
        return report
    other_splits: dict[str, str] = {}
    for split, names in dataset.split_sequences().items():
        for name in names:
            if name not in sequences:
                other_splits.setdefault(name, split)
    ignored: dict[str, list[str]] = {}
    for extra in sorted(present - set(sequences)):
        if extra in other_splits:
            # As the official toolkits do: a result folder of a whole dataset is scored on the split asked for.
            ignored.setdefault(other_splits[extra], []).append(extra)
            continue
        problem = InputError(results / extra, f"is not a sequence of {dataset.describe()}.",
                             "Remove it, or choose the --split / --dataset it belongs to.")
        report.problems.append(problem)
        report.by_sequence.setdefault(extra, []).append(problem)
    if ignored:
        listed = "; ".join(f"{split}: {', '.join(names)}" for split, names in sorted(ignored.items()))
        report.notes.append(f"ignored {sum(map(len, ignored.values()))} sequence folder(s) of other splits "
                            f"({listed}); scored the {len(sequences)} sequences of "
                            f"{getattr(dataset, 'split', 'the split')}.")
    for seq in sequences:
        seq_problems = _check_sequence(dataset, results, seq, params, report)
        if seq_problems:
            report.problems.extend(seq_problems)
            report.by_sequence.setdefault(seq, []).extend(seq_problems)
    return report


def _check_sequence(dataset: Dataset, results: Path, seq: str, params: EvalParams,
                    report: ValidationReport) -> list[InputError]:
    problems: list[InputError] = []
    folder = results / seq
    if not folder.is_dir():
        what = "is a file, not a folder of masks" if folder.exists() else "is missing"
        return [InputError(folder, f"results of sequence {seq!r} {what}.",
                           "Write one PNG mask per frame into a folder named after the sequence.")]
    try:
        frames = dataset.annotated_frames(seq) if params.annotated_only else dataset.frame_names(seq)
    except InputError as exc:
        return [exc]
    if not frames:
        return [InputError(dataset.annotation_path(seq, "00000").parent, "ground truth of the sequence has no masks.",
                           "Check --gt: every sequence of the split needs its annotation PNGs.")]
    gt_paths = [dataset.annotation_path(seq, f) for f in frames]
    try:
        gt_size = image_size(gt_paths[0])
    except (OSError, ValueError, SyntaxError) as exc:
        return [InputError(gt_paths[0], f"ground truth cannot be read ({exc}).", "Re-download the dataset.")]
    scored = _scored_frame_indices(len(frames), params)
    files = {p.name: p for p in folder.iterdir() if not p.name.startswith(".")}
    expected = {f"{f}.png" for f in frames}
    pred_paths: list[Path | None] = []
    checkable: list[Path | None] = []  # pred_paths without the files already reported
    for t, frame in enumerate(frames):
        path = folder / f"{frame}.png"
        if f"{frame}.png" not in files:
            if t in scored:
                problems.append(InputError(path, "mask of a scored frame is missing.",
                                           "Write a mask for every frame of the sequence (00000.png, 00001.png, ...)."))
            pred_paths.append(None)
            checkable.append(None)
            continue
        try:
            size = image_size(path)
        except NotPNGError as exc:
            problems.append(InputError(path, f"is not a PNG file ({exc}).",
                                       "Save masks as PNG (JPEG compression corrupts object ids)."))
            pred_paths.append(path)
            checkable.append(None)
            continue
        except (OSError, ValueError, SyntaxError) as exc:
            problems.append(InputError(path, f"cannot be read as a PNG ({exc}).",
                                       "Re-write the mask; the file may be empty, truncated or not a PNG."))
            pred_paths.append(path)
            checkable.append(None)
            continue
        if size != gt_size:
            problems.append(InputError(path, f"mask is {size[0]}x{size[1]} but the ground truth is "
                                             f"{gt_size[0]}x{gt_size[1]}.",
                                       "Write masks at the ground truth's resolution (resize with nearest neighbour)."))
            checkable.append(None)
        else:
            checkable.append(path)
        pred_paths.append(path)
    # Sparse ground truth (YouTube-VOS): masks of the frames between annotations are allowed and ignored.
    video_frames = {f"{f}.png" for f in dataset.frame_names(seq)} if params.annotated_only else set()
    for name in sorted(set(files) - expected - video_frames):
        path = files[name]
        if path.suffix.lower() in OUTPUT_SUFFIXES:
            continue
        if path.is_dir():
            problems.append(InputError(path, "unexpected folder inside a sequence's results.",
                                       "A sequence folder holds only PNG masks; remove the folder."))
        elif path.suffix.lower() != ".png":
            problems.append(InputError(path, f"is not a PNG ({path.suffix or 'no suffix'}); masks must be PNG files.",
                                       "Save masks as PNG (JPEG compression corrupts object ids)."))
        else:
            problems.append(InputError(path, f"names no frame of {seq!r} ({len(frames)} frames, "
                                             f"{frames[0]}..{frames[-1]}).",
                                       "Name masks after the ground-truth frames, or remove the extra file."))
    if not problems:
        own = dataset.scored_frames(seq, frames)
        object_frames = None if own is None else tuple(
            (int(k), tuple(bool(x) for x in v)) for k, v in sorted(own.items()))
        report.jobs.append(SequenceJob(sequence=seq, frames=tuple(frames), gt_paths=tuple(gt_paths),
                                       pred_paths=tuple(pred_paths), binary=dataset.binary, params=params,
                                       object_frames=object_frames))
    elif any(p is not None for p in checkable):
        report.partial_jobs.append(SequenceJob(sequence=seq, frames=tuple(frames), gt_paths=tuple(gt_paths),
                                               pred_paths=tuple(checkable), binary=dataset.binary, params=params))
    return problems


def validate_folder(dataset: Dataset, results_dir: str | Path, params: EvalParams) -> list[InputError]:
    """Every problem of a results folder, structural and in the pixels (decodes every mask)."""
    from vosbench.tracks.jobs import check_content

    report = build_jobs(dataset, results_dir, params)
    problems = list(report.problems)
    for job in report.jobs + report.partial_jobs:
        problems.extend(check_content(job))
    return problems
