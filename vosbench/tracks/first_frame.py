"""Results for splits whose ground truth is not public: DAVIS 2017 test-dev and test-challenge, and
MOSEv1 valid and test (their downloads hold the first frame of each video only).

Only the first frame of each sequence is annotated in those downloads, so nothing can be scored
locally; `validate_against_first_frames` checks what the evaluation server will need before a
submission is packed: a folder per sequence of the split, a PNG mask for every frame the server
scores (all frames but the first and the last; the first and last may be there too), each at the
size of the first-frame mask, holding only the ids of the first frame's objects (1 .. largest id,
0 = background; 255 is not a prediction), and no file that names no frame.
"""
from __future__ import annotations

from pathlib import Path

from vosbench.errors import InputError
from vosbench.io.datasets import DavisDataset, _stems
from vosbench.io.masks import VOID_LABEL, read_mask
from vosbench.tracks.validate import OUTPUT_SUFFIXES, NotPNGError, image_size

TEST_SPLITS = ("test-dev", "test-challenge")


def is_test_split(dataset) -> bool:
    """Whether only first-frame masks are public: a DAVIS test split, or a MOSE download of one mask per video."""
    if isinstance(dataset, DavisDataset):
        return getattr(dataset, "split", None) in TEST_SPLITS
    first_only = getattr(dataset, "first_frames_only", None)
    return bool(first_only and first_only())


def _video_frames(dataset, seq: str) -> list[str]:
    if isinstance(dataset, DavisDataset):
        return _stems(dataset.image_dir(seq), (".jpg", ".jpeg", ".png"))
    return dataset.video_frames(seq)


def _first_frame_objects(dataset, seq: str) -> tuple[Path, tuple[int, int], int]:
    frames = dataset.frame_names(seq)
    if not frames:
        raise InputError(dataset.annotation_path(seq, "00000").parent, "holds no first-frame mask.",
                         "Download the DAVIS 2017 test-dev/test-challenge annotations (first frames).")
    path = dataset.annotation_path(seq, frames[0])
    first = read_mask(path)
    ids = first[first != VOID_LABEL]
    return path, first.shape, int(ids.max()) if ids.size else 0


def validate_against_first_frames(dataset, results_dir: str | Path) -> list[InputError]:
    """Every problem of a results folder for a split whose ground truth is only its first frames."""
    results = Path(results_dir)
    if not results.is_dir():
        return [InputError(results, "results folder does not exist.",
                           "Pass the folder that holds one sub-folder of PNG masks per sequence.")]
    problems: list[InputError] = []
    sequences = dataset.sequence_names()
    for extra in sorted(p.name for p in results.iterdir()
                        if p.is_dir() and not p.name.startswith(".") and p.name not in sequences):
        problems.append(InputError(results / extra, f"is not a sequence of {dataset.describe()}.",
                                   "Remove it: the server expects exactly the split's sequences."))
    for seq in sequences:
        folder = results / seq
        if not folder.is_dir():
            problems.append(InputError(folder, f"results of sequence {seq!r} are missing.",
                                       "Write one PNG mask per frame into a folder named after the sequence."))
            continue
        try:
            first_path, shape, n_objects = _first_frame_objects(dataset, seq)
            frames = _video_frames(dataset, seq)
            if not frames:
                raise InputError(dataset.image_path(seq, "00000").parent, "holds no frame of the video.",
                                 "The frames (JPEGImages) name the masks the server expects; download them.")
        except InputError as exc:
            problems.append(exc)
            continue
        files = {p.name: p for p in folder.iterdir() if not p.name.startswith(".")}
        expected = {f"{f}.png" for f in frames}
        for t, frame in enumerate(frames):
            path = folder / f"{frame}.png"
            if path.name not in files:
                if 0 < t < len(frames) - 1:
                    problems.append(InputError(path, "mask of a scored frame is missing.",
                                               f"Write a mask for every frame of {seq!r} ({len(frames)} frames)."))
                continue
            problems.extend(_check_mask(path, shape, n_objects, first_path))
        for name in sorted(set(files) - expected):
            path = files[name]
            if path.suffix.lower() in OUTPUT_SUFFIXES:
                continue
            problems.append(InputError(path, f"names no frame of {seq!r} ({len(frames)} frames).",
                                       "Name masks after the frames (JPEGImages), or remove the file."))
    return problems


def _check_mask(path: Path, shape: tuple[int, int], n_objects: int, first_path: Path) -> list[InputError]:
    try:
        width, height = image_size(path)
    except NotPNGError as exc:
        return [InputError(path, f"is not a PNG file ({exc}).", "Save masks as PNG (JPEG corrupts object ids).")]
    except (OSError, ValueError, SyntaxError) as exc:
        return [InputError(path, f"cannot be read as a PNG ({exc}).", "Re-write the mask.")]
    if (height, width) != shape:
        return [InputError(path, f"mask is {width}x{height} but the first-frame mask {first_path.name} is "
                                 f"{shape[1]}x{shape[0]}.", "Write masks at the frames' resolution.")]
    try:
        mask = read_mask(path)
    except InputError as exc:
        return [exc]
    top = int(mask.max()) if mask.size else 0
    if top > n_objects:
        return [InputError(path, f"holds object id {top}, but the first frame ({first_path}) has {n_objects} "
                                 "object(s).", "Write only the first frame's ids (0 = background); 255 is not a "
                                               "valid prediction.")]
    return []
