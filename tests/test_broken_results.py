"""Broken results folders: each gives a clear error naming the file, a non-zero exit and no output file.

Every case goes through the command line (`vosbench evaluate`), as a user meets it.
The lenient `--report-only` mode scores what it can and lists what it skipped.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosbench.cli import main
from vosbench.io import write_mask

from tiny_davis import moving_boxes, write_davis, write_sequence

OUTPUT_SUFFIXES = (".csv", ".json")


@pytest.fixture
def davis(tmp_path):
    """A valid DAVIS 2017-layout ground truth and a valid results folder for it (2 sequences)."""
    gt = {"alpha": moving_boxes(6, 24, 32, 2, seed=0), "beta": moving_boxes(5, 24, 32, 3, seed=1)}
    root = write_davis(tmp_path / "gt", gt)
    results = tmp_path / "res"
    for name, masks in gt.items():
        write_sequence(results / name, np.roll(masks, 1, axis=2))
    return root, results


def _break_results_missing(results: Path) -> Path:
    shutil.rmtree(results)
    return results


def _break_results_is_file(results: Path) -> Path:
    shutil.rmtree(results)
    results.write_text("not a folder")
    return results


def _break_nested_one_level(results: Path) -> Path:
    inner = results / "my_method"
    inner.mkdir()
    for name in ("alpha", "beta"):
        (results / name).rename(inner / name)
    return inner  # the message must point at it


def _break_sequence_missing(results: Path) -> Path:
    shutil.rmtree(results / "beta")
    return results / "beta"


def _break_extra_sequence(results: Path) -> Path:
    shutil.copytree(results / "alpha", results / "gamma")
    return results / "gamma"


def _break_sequence_is_file(results: Path) -> Path:
    shutil.rmtree(results / "beta")
    (results / "beta").write_text("")
    return results / "beta"


def _break_frame_missing(results: Path) -> Path:
    (results / "beta" / "00002.png").unlink()
    return results / "beta" / "00002.png"


def _break_extra_frame(results: Path) -> Path:
    shutil.copy(results / "alpha" / "00001.png", results / "alpha" / "00099.png")
    return results / "alpha" / "00099.png"


def _break_jpeg_mask(results: Path) -> Path:
    path = results / "alpha" / "00002.png"
    Image.open(path).convert("RGB").save(results / "alpha" / "00002.jpg")
    path.unlink()
    return results / "alpha" / "00002.jpg"


def _break_jpeg_named_png(results: Path) -> Path:
    path = results / "beta" / "00001.png"
    Image.open(path).convert("L").save(path, format="JPEG")  # greyscale JPEG data would pass as ids
    return path


def _break_size_mismatch(results: Path) -> Path:
    path = results / "alpha" / "00003.png"
    write_mask(path, np.zeros((12, 16), np.uint8))
    return path


def _break_truncated_png(results: Path) -> Path:
    path = results / "alpha" / "00002.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _break_empty_file(results: Path) -> Path:
    path = results / "beta" / "00001.png"
    path.write_bytes(b"")
    return path


def _break_text_named_png(results: Path) -> Path:
    path = results / "beta" / "00003.png"
    path.write_text("this is not an image\n")
    return path


def _break_unknown_object_id(results: Path) -> Path:
    path = results / "alpha" / "00002.png"
    mask = np.zeros((24, 32), np.uint8)
    mask[3:6, 3:6] = 7  # alpha has 2 objects
    write_mask(path, mask)
    return path


def _break_void_id_in_prediction(results: Path) -> Path:
    path = results / "beta" / "00002.png"
    mask = np.zeros((24, 32), np.uint8)
    mask[0, :] = 255
    mask[5:9, 5:9] = 1
    write_mask(path, mask)
    return path


def _break_foreign_rgb_colours(results: Path) -> Path:
    path = results / "alpha" / "00004.png"
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[4:10, 4:10] = (12, 200, 37)  # no DAVIS palette colour
    Image.fromarray(rgb, "RGB").save(path)
    return path


def _break_sixteen_bit_ids(results: Path) -> Path:
    path = results / "alpha" / "00001.png"
    values = np.zeros((24, 32), np.uint16)
    values[2:5, 2:5] = 300
    Image.fromarray(values).save(path)
    return path


def _break_folder_inside_sequence(results: Path) -> Path:
    (results / "beta" / "debug").mkdir()
    return results / "beta" / "debug"


BROKEN = {
    "results folder missing": _break_results_missing,
    "results path is a file": _break_results_is_file,
    "sequences nested one level too deep": _break_nested_one_level,
    "sequence folder missing": _break_sequence_missing,
    "extra sequence": _break_extra_sequence,
    "sequence is a file": _break_sequence_is_file,
    "frame missing": _break_frame_missing,
    "extra frame": _break_extra_frame,
    "mask saved as JPEG": _break_jpeg_mask,
    "JPEG data named .png": _break_jpeg_named_png,
    "size mismatch": _break_size_mismatch,
    "truncated PNG": _break_truncated_png,
    "empty file": _break_empty_file,
    "text file named .png": _break_text_named_png,
    "unknown object id": _break_unknown_object_id,
    "void id 255 in a prediction": _break_void_id_in_prediction,
    "RGB colours outside the palette": _break_foreign_rgb_colours,
    "16-bit ids above 255": _break_sixteen_bit_ids,
    "folder inside a sequence": _break_folder_inside_sequence,
}


def _outputs(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if p.suffix in OUTPUT_SUFFIXES]


def _run(args: list[str], caplog, capsys) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vosbench"):
        status = main(args)
    captured = capsys.readouterr()
    return status, caplog.text + captured.out + captured.err


def _evaluate_broken(kind: str, jobs: int, davis, tmp_path, caplog, capsys) -> None:
    root, results = davis
    culprit = BROKEN[kind](results)
    status, text = _run(["evaluate", "--gt", str(root), "--results", str(results), "--dataset", "davis2017",
                         "--jobs", str(jobs), "--no-progress"], caplog, capsys)
    assert status != 0, text
    assert "error" in text.lower()
    assert str(culprit) in text, f"the message does not name {culprit}:\n{text}"
    assert "Fix:" in text
    assert _outputs(tmp_path) == [], "a failed run wrote output"


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_results_fail_clearly_and_write_nothing(kind, davis, tmp_path, caplog, capsys):
    _evaluate_broken(kind, 1, davis, tmp_path, caplog, capsys)


@pytest.mark.parametrize("kind", ["unknown object id", "truncated PNG"])
def test_problems_found_in_worker_processes_keep_their_file(kind, davis, tmp_path, caplog, capsys):
    # Content problems surface inside joblib workers; the error must cross the process boundary intact.
    _evaluate_broken(kind, 2, davis, tmp_path, caplog, capsys)


def test_there_are_at_least_twelve_kinds():
    assert len(BROKEN) >= 12


def test_too_many_proposals_fails_in_the_unsupervised_track(davis, tmp_path, caplog, capsys):
    root, results = davis
    path = results / "alpha" / "00003.png"
    mask = np.zeros((24, 32), np.uint8)
    mask[1:4, 1:4] = 21
    write_mask(path, mask)
    status, text = _run(["evaluate", "--gt", str(root), "--results", str(results), "--track", "unsupervised",
                         "--no-progress"], caplog, capsys)
    assert status != 0 and str(path) in text and "20 proposals" in text
    assert _outputs(tmp_path) == []


def test_validate_command_lists_every_problem_without_scoring(davis, caplog, capsys):
    root, results = davis
    missing = _break_frame_missing(results)
    unknown = _break_unknown_object_id(results)
    extra = _break_extra_frame(results)
    status, text = _run(["validate", "--gt", str(root), "--results", str(results)], caplog, capsys)
    assert status == 2
    for culprit in (missing, unknown, extra):
        assert str(culprit) in text
    assert "3 problem(s)" in text


def test_validate_command_accepts_a_valid_folder(davis, caplog, capsys):
    root, results = davis
    status, text = _run(["validate", "--gt", str(root), "--results", str(results)], caplog, capsys)
    assert status == 0 and "valid for DAVIS 2017" in text


def test_report_only_scores_the_rest_and_lists_what_it_skipped(davis, tmp_path, caplog, capsys):
    root, results = davis
    culprit = _break_unknown_object_id(results)       # alpha fails while scoring
    missing = _break_frame_missing(results)            # beta fails validation
    out = tmp_path / "out"
    status, text = _run(["evaluate", "--gt", str(root), "--results", str(results), "--report-only",
                         "--out", str(out), "--no-progress"], caplog, capsys)
    # Nothing could be scored: lenient mode still refuses to write an empty report.
    assert status != 0 and str(missing) in text
    assert _outputs(tmp_path) == []

    # Repair alpha only: beta is skipped, alpha is scored and written, the skip is listed.
    write_sequence(results / "alpha_fixed", moving_boxes(6, 24, 32, 2, seed=0))
    shutil.rmtree(results / "alpha")
    (results / "alpha_fixed").rename(results / "alpha")
    status, text = _run(["evaluate", "--gt", str(root), "--results", str(results), "--report-only",
                         "--out", str(out), "--no-progress"], caplog, capsys)
    assert status == 1, text  # non-zero: something was skipped
    assert "Skipped (1)" in text and str(missing) in text
    import pandas as pd

    per_sequence = pd.read_csv(out / "per-sequence_results-val.csv")
    assert list(per_sequence.Sequence) == ["alpha_1", "alpha_2"]
    assert culprit.exists()
