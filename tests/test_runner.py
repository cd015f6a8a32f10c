"""Running a method over a dataset: given masks, masks on disk, timing, resume, stale markers, the CLI."""
from __future__ import annotations

import json
import logging
import time

import numpy as np
import pandas as pd
import pytest

from vosbench.cli import main
from vosbench.errors import VosbenchError
from vosbench.io import read_mask, write_mask
from vosbench.io.datasets import DavisDataset
from vosbench.io.synthetic import SyntheticParams, generate_dataset
from vosbench.methods import runner
from vosbench.methods.base import SemiSupervisedMethod, UnsupervisedMethod
from vosbench.methods.runner import MARKER_NAME, RunRecord, segment_dataset

TINY = SyntheticParams(n_sequences=4, n_frames=6, height=48, width=64, max_objects=2)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("runner") / "tiny", seed=5, params=TINY)


@pytest.fixture()
def tiny(tiny_root):
    return DavisDataset(tiny_root, year=2017, split="val")


class Recorder(SemiSupervisedMethod):
    """Writes the given masks on every frame and remembers what it was shown; can fail on purpose."""

    name = "recorder"

    def __init__(self, device="cpu", fail_on: str | None = None, **options):
        super().__init__(device=device, **options)
        self.fail_on = fail_on
        self.videos = []

    def segment(self, video):
        self.videos.append(video)
        if video.name == self.fail_on:
            yield np.zeros(video.size, np.uint8)
            raise RuntimeError(f"crash in {video.name}")
        labels = np.zeros(video.size, np.uint8)
        for t in range(len(video.frame_names)):
            given = video.given_masks.get(t)
            if given is not None:
                labels = np.where(given > 0, given, labels).astype(np.uint8)
            yield labels


def _tiny_davis(root, masks: list[np.ndarray], name: str = "seq") -> DavisDataset:
    """A DAVIS 2017 folder of one sequence with the given ground truth (frames are flat grey)."""
    from PIL import Image

    for t, mask in enumerate(masks):
        write_mask(root / "Annotations" / "480p" / name / f"{t:05d}.png", mask)
        (root / "JPEGImages" / "480p" / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full(mask.shape + (3,), 100, np.uint8)).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg")
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text(f"{name}\n")
    return DavisDataset(root, year=2017, split="val")


def test_semi_methods_get_each_object_on_its_first_frame_without_void(tmp_path):
    masks = [np.zeros((8, 10), np.uint8) for _ in range(4)]
    masks[0][1:3, 1:3] = 1
    masks[0][3, 1:3] = 255          # void is not an object
    masks[2][5:7, 5:8] = 2          # object 2 appears on frame 2
    masks[2][1:3, 1:3] = 1
    dataset = _tiny_davis(tmp_path / "gt", masks)
    method = Recorder()
    record = segment_dataset(method, dataset, tmp_path / "out", track="semi", progress=False)
    video = method.videos[0]
    assert sorted(video.given_masks) == [0, 2] and video.object_ids == [1, 2]
    np.testing.assert_array_equal(video.given_masks[0], np.where(masks[0] == 1, 1, 0))
    np.testing.assert_array_equal(video.given_masks[2], np.where(masks[2] == 2, 2, 0))   # object 1 not repeated
    assert video.frame_names == [f"{t:05d}" for t in range(4)]
    assert video.frames[1].shape == (8, 10, 3) and video.frames[1].dtype == np.uint8
    assert (record.n_sequences, record.n_frames, record.n_objects) == (1, 4, 2)
    written = read_mask(tmp_path / "out" / "seq" / "00003.png")
    assert set(np.unique(written)) == {0, 1, 2}


def test_frames_at_another_resolution_than_the_masks_are_resized_to_the_masks(tmp_path, caplog):
    """DAVIS 2016 train ships 240p frames beside 480p masks: the method sees frames on the masks' grid."""
    import shutil

    from PIL import Image

    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 1
    dataset = _tiny_davis(tmp_path / "d", [mask, mask, mask])
    low = tmp_path / "d" / "JPEGImages" / "240p" / "seq"
    low.mkdir(parents=True)
    for t in range(3):
        small = np.zeros((24, 32, 3), np.uint8)
        small[5:15, 10:20] = 200
        Image.fromarray(small).save(low / f"{t:05d}.png")
    shutil.rmtree(tmp_path / "d" / "JPEGImages" / "480p")
    method = Recorder()
    with caplog.at_level(logging.INFO, logger="vosbench"):
        segment_dataset(method, dataset, tmp_path / "out", track="semi", progress=False)
    assert "frames are 32x24, the method works at 64x48; frames resized" in caplog.text   # news, so told
    frame = method.videos[0].frames[1]
    assert frame.shape == (48, 64, 3)
    assert frame[20, 30].min() > 150 and frame[40, 5].max() < 50    # the object's pixels where the mask has it
    assert read_mask(tmp_path / "out" / "seq" / "00002.png").shape == (48, 64)


class Proposals(UnsupervisedMethod):
    name = "proposals"

    def __init__(self, device="cpu", **options):
        super().__init__(device=device, **options)
        self.videos = []

    def segment(self, video):
        self.videos.append(video)
        for _ in video.frame_names:
            yield np.ones(video.size, np.uint8)


def test_unsupervised_methods_are_given_nothing(tiny, tmp_path):
    method = Proposals()
    record = segment_dataset(method, tiny, tmp_path / "out", track="unsupervised", progress=False)
    assert all(v.given_masks == {} and v.object_ids == [] for v in method.videos)
    assert record.track == "unsupervised" and record.n_objects > 0
    with pytest.raises(VosbenchError, match="cannot run the semi track"):
        segment_dataset(method, tiny, tmp_path / "other", track="semi", progress=False)


def test_interrupted_run_resumes_only_the_missing_sequences(tiny, tmp_path, caplog):
    sequences = tiny.sequence_names()
    assert len(sequences) >= 3
    out = tmp_path / "masks"
    crashing = Recorder(fail_on=sequences[1])
    with pytest.raises(RuntimeError, match="crash"):
        segment_dataset(crashing, tiny, out, track="semi", progress=False)
    assert (out / sequences[0] / MARKER_NAME).is_file()
    assert not (out / sequences[1] / MARKER_NAME).exists()        # its first mask was written, but it is not done
    assert (out / sequences[1] / "00000.png").is_file()
    first_bytes = {p.name: p.read_bytes() for p in (out / sequences[0]).glob("*.png")}
    first_mtimes = {p.name: p.stat().st_mtime_ns for p in (out / sequences[0]).glob("*.png")}

    again = Recorder()
    with caplog.at_level(logging.INFO, logger="vosbench"):
        record = segment_dataset(again, tiny, out, track="semi", progress=False)
    assert [v.name for v in again.videos] == sequences[1:]
    assert f"1 of {len(sequences)} sequences already segmented" in caplog.text
    assert f"segmenting the remaining {len(sequences) - 1}" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in (out / sequences[0]).glob("*.png")} == first_mtimes
    assert {p.name: p.read_bytes() for p in (out / sequences[0]).glob("*.png")} == first_bytes
    assert record.n_frames == sum(len(tiny.frame_names(s)) for s in sequences)
    for seq in sequences:
        assert len(list((out / seq).glob("*.png"))) == len(tiny.frame_names(seq))
        assert (out / seq / MARKER_NAME).is_file()

    # A finished run is reused whole; resume=False recomputes it.
    third = Recorder()
    segment_dataset(third, tiny, out, track="semi", progress=False)
    assert third.videos == []
    fourth = Recorder()
    segment_dataset(fourth, tiny, out, track="semi", progress=False, resume=False)
    assert [v.name for v in fourth.videos] == sequences


class Shifted(Recorder):
    """Same outputs as Recorder under another name."""

    name = "shifted"


def test_masks_of_another_method_or_other_options_are_not_reused(tiny, tmp_path, caplog):
    sequences = tiny.sequence_names()
    out = tmp_path / "masks"
    segment_dataset(Recorder(threshold=0.5), tiny, out, track="semi", progress=False)

    other_options = Recorder(threshold=0.7)
    with caplog.at_level(logging.WARNING, logger="vosbench"):
        segment_dataset(other_options, tiny, out, track="semi", progress=False)
    assert [v.name for v in other_options.videos] == sequences
    assert "recomputing" in caplog.text and '"threshold": 0.5' in caplog.text
    marker = json.loads((out / sequences[0] / MARKER_NAME).read_text())
    assert marker["identity"]["options"] == {"threshold": 0.7}

    other_method = Shifted(threshold=0.7)
    segment_dataset(other_method, tiny, out, track="semi", progress=False)
    assert [v.name for v in other_method.videos] == sequences

    # A marker from another version of the frame list is stale too.
    marker = json.loads((out / sequences[0] / MARKER_NAME).read_text())
    marker["frames"] = marker["frames"][:-1]
    (out / sequences[0] / MARKER_NAME).write_text(json.dumps(marker))
    same = Shifted(threshold=0.7)
    segment_dataset(same, tiny, out, track="semi", progress=False)
    assert [v.name for v in same.videos] == sequences[:1]


def test_a_stale_sequence_loses_its_old_masks_before_recomputing(tiny, tmp_path):
    seq = tiny.sequence_names()[0]
    out = tmp_path / "masks"
    segment_dataset(Recorder(), tiny, out, track="semi", progress=False)
    with pytest.raises(RuntimeError):
        segment_dataset(Recorder(fail_on=seq, variant=2), tiny, out, track="semi", progress=False)
    # The crashing method wrote only frame 0; the stale masks of frames 1.. are gone, and so is the marker.
    assert sorted(p.name for p in (out / seq).glob("*.png")) == ["00000.png"]
    assert not (out / seq / MARKER_NAME).exists()


class Miscounting(SemiSupervisedMethod):
    name = "miscounting"

    def segment(self, video):
        for _ in video.frame_names[:-1]:
            yield np.zeros(video.size, np.uint8)


class WrongSize(SemiSupervisedMethod):
    name = "wrong-size"

    def segment(self, video):
        for _ in video.frame_names:
            yield np.zeros((3, 3), np.uint8)


@pytest.mark.parametrize("method, message", [(Miscounting(), "returned 5 masks for the 6 frames"),
                                             (WrongSize(), "shape \\(3, 3\\)")])
def test_bad_method_output_is_an_error_and_not_marked_done(tiny, tmp_path, method, message):
    with pytest.raises(VosbenchError, match=message):
        segment_dataset(method, tiny, tmp_path / "masks", track="semi", progress=False)
    assert not list((tmp_path / "masks").rglob(MARKER_NAME))


class Instant(SemiSupervisedMethod):
    name = "instant"

    def segment(self, video):
        mask = np.zeros(video.size, np.uint8)
        for _ in video.frame_names:
            yield mask


def test_method_time_excludes_writing_masks(tiny, tmp_path, monkeypatch):
    original = runner.write_mask
    writes = []

    def slow_write(path, ids):
        writes.append(path)
        time.sleep(0.02)
        original(path, ids)

    monkeypatch.setattr(runner, "write_mask", slow_write)
    record = segment_dataset(Instant(), tiny, tmp_path / "masks", track="semi", progress=False)
    assert len(writes) == record.n_frames
    writing = 0.02 * len(writes)
    assert record.seconds < writing / 2
    assert record.seconds_per_frame == pytest.approx(record.seconds / record.n_frames)
    assert isinstance(record, RunRecord) and record.method == "instant" and record.device == "auto"


# ------------------------------------------------------------------------------------------ CLI ---

def test_cli_run_end_to_end_and_resume(tiny_root, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    argv = ["run", "--method", "flow-warp", "--track", "semi", "--gt", str(tiny_root), "--dataset", "synthetic",
            "--out", str(out), "--leaderboard-dir", str(tmp_path / "boards"), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Protocol: track=semi" in printed and "J&F-Mean" in printed and "s/frame" in printed
    record = json.loads((out / "run.json").read_text())
    # A generated dataset is named as such (not as the DAVIS 2017 layout it is written in), by its content key.
    name = "synthetic-" + TINY.key(5)
    assert record["method"] == "flow-warp" and record["device"] == "cpu" and record["dataset"] == name
    assert record["dataset_identity"]["kind"] == "synthetic" and record["dataset_identity"]["n_sequences"] == TINY.n_val
    assert len(record["commit"]) == 40 and record["dirty"] in (True, False)
    assert record["seconds_per_frame"] > 0 and record["n_frames"] == TINY.n_val * TINY.n_frames
    global_csv = pd.read_csv(out / "global_results-val.csv")
    assert global_csv["J&F-Mean"].iloc[0] == pytest.approx(record["summary"]["J&F-Mean"], abs=5e-4)
    seq = DavisDataset(tiny_root, year=2017, split="val").sequence_names()[0]
    assert (out / "masks" / seq / "00005.png").is_file()
    assert not (tmp_path / "boards" / "davis2017-val-semi.csv").exists()
    board = pd.read_csv(tmp_path / "boards" / f"{name}-val-semi.csv")
    assert list(board["method"]) == ["flow-warp"]
    assert board["gt_fingerprint"].iloc[0] == record["dataset_identity"]["fingerprint"]
    assert board["commit"].iloc[0] == record["commit"]
    assert board["J&F-Mean"].iloc[0] == pytest.approx(record["summary"]["J&F-Mean"], abs=1e-6)

    with caplog.at_level(logging.INFO, logger="vosbench"):
        assert main(argv) == 0
    assert f"{TINY.n_val} of {TINY.n_val} sequences already segmented" in caplog.text
    assert len(pd.read_csv(tmp_path / "boards" / f"{name}-val-semi.csv")) == 1    # the row is updated, not added


def test_cli_run_defaults_to_the_embedded_dataset(tmp_path, capsys, monkeypatch):
    from vosbench.io import synthetic

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOSBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(synthetic, "DEFAULT_PARAMS", TINY)
    assert main(["run", "--method", "first-frame", "--track", "semi", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed
    # Everything goes under $VOSBENCH_HOME, said on stdout; nothing into the working folder.
    run_dir = tmp_path / "home" / "runs" / "first-frame-synthetic-val-semi"
    assert (run_dir / "run.json").is_file() and (run_dir / "per-sequence_results-val.csv").is_file()
    assert (tmp_path / "home" / "leaderboards" / "synthetic-val-semi.md").is_file()
    datasets = list((tmp_path / "home" / "datasets").iterdir())
    assert datasets and f"at {datasets[0]}" in printed and str(run_dir) in printed
    assert "synthetic (generated by vosbench, seed 0" in printed and "DAVIS" not in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    # Without --gt only the embedded (DAVIS 2017-layout) dataset exists.
    assert main(["run", "--method", "first-frame", "--dataset", "davis2016", "--no-progress"]) == 2


def test_cli_run_passes_method_options_and_refuses_unknown_ones(tmp_path, caplog, monkeypatch):
    from vosbench.io import synthetic

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOSBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(synthetic, "DEFAULT_PARAMS", TINY)
    out = tmp_path / "warp"
    argv = ["run", "--method", "flow-warp", "--no-progress", "--out", str(out)]
    assert main(argv + ["--option", "softness=0.5", "--option", "occlusion-check=true"]) == 0
    options = json.loads((out / "run.json").read_text())["options"]
    assert options["softness"] == 0.5 and options["occlusion_check"] is True

    typo = tmp_path / "typo"
    assert main(["run", "--method", "flow-warp", "--no-progress", "--out", str(typo), "--option", "softnes=0.5"]) == 2
    assert "no option 'softnes'; its options are: flow, softness, occlusion_check" in caplog.text
    assert not typo.exists()
    assert main(["run", "--method", "flow-warp", "--no-progress", "--out", str(typo), "--option", "softness"]) == 2
    assert "must look like KEY=VALUE" in caplog.text


def test_parse_options_reads_json_values():
    from vosbench.cli.choices import parse_options

    assert parse_options(["crop=160", "scale=[0.8,1.7]", "flow=dis", "finetune-lr=1e-4", "on=true"]) == {
        "crop": 160, "scale": [0.8, 1.7], "flow": "dis", "finetune_lr": 1e-4, "on": True}


def test_cli_generate(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["generate", "--out", str(out), "--seed", "2", "--sequences", "2", "--frames", "4",
                 "--height", "40", "--width", "48", "--no-progress"]) == 0
    dataset = DavisDataset(out, year=2017, split="val")
    assert len(dataset.sequence_names()) == 2 and len(dataset.frame_names(dataset.sequence_names()[0])) == 4
    assert main(["generate", "--out", str(out), "--seed", "3", "--sequences", "2", "--frames", "4",
                 "--height", "40", "--width", "48", "--no-progress"]) == 2    # will not overwrite


class ThreadCounter(SemiSupervisedMethod):
    """Fills every mask with the number of torch threads it runs with (to see a worker's share)."""

    name = "thread-counter"

    def segment(self, video):
        import torch

        for _ in video.frame_names:
            yield np.full(video.size, torch.get_num_threads(), np.uint8)


def _mask_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_parallel_segmenting_writes_what_one_worker_writes(tiny, tmp_path, backend):
    from functools import partial

    one = segment_dataset(Recorder(), tiny, tmp_path / "one", track="semi", progress=False)
    two = segment_dataset(Recorder(), tiny, tmp_path / "two", track="semi", progress=False, jobs=2,
                          method_factory=partial(Recorder), backend=backend)
    assert _mask_bytes(tmp_path / "one") == _mask_bytes(tmp_path / "two") != {}
    assert (one.jobs, two.jobs) == (1, 2)
    assert two.n_objects == one.n_objects and two.n_frames == one.n_frames and two.seconds > 0
    for seq in tiny.sequence_names():
        marker = json.loads((tmp_path / "two" / seq / MARKER_NAME).read_text())
        assert marker["identity"] == runner.method_identity(Recorder())
    # Every sequence is marked done, so a parallel re-run reuses them all.
    again = segment_dataset(Recorder(), tiny, tmp_path / "two", track="semi", progress=False, jobs=2,
                            method_factory=partial(Recorder), backend=backend)
    assert again.seconds == pytest.approx(two.seconds)


def test_parallel_workers_get_their_share_of_threads(tiny, tmp_path):
    from functools import partial

    segment_dataset(ThreadCounter(), tiny, tmp_path / "run", track="semi", progress=False, jobs=2,
                    method_factory=partial(ThreadCounter), threads=6)
    masks = [read_mask(p) for p in (tmp_path / "run").rglob("*.png")]
    assert masks and all((m == 3).all() for m in masks)


def test_parallel_segmenting_needs_a_factory_of_the_same_method(tiny, tmp_path):
    from functools import partial

    with pytest.raises(VosbenchError, match="method_factory"):
        segment_dataset(Recorder(), tiny, tmp_path / "a", track="semi", progress=False, jobs=2)
    with pytest.raises(VosbenchError, match="must build the same method"):
        segment_dataset(Recorder(), tiny, tmp_path / "b", track="semi", progress=False, jobs=2,
                        method_factory=partial(Recorder, flavour="other"), backend="threading")


def test_cli_run_segments_sequences_in_parallel(tiny_root, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--method", "flow-warp", "--track", "semi", "--gt", str(tiny_root),
            "--leaderboard-dir", str(tmp_path / "boards"), "--no-progress", "--threads", "2"]
    assert main(argv + ["--out", str(tmp_path / "one")]) == 0
    assert main(argv + ["--out", str(tmp_path / "two"), "--jobs", "2"]) == 0
    assert _mask_bytes(tmp_path / "one" / "masks") == _mask_bytes(tmp_path / "two" / "masks")
    record = json.loads((tmp_path / "two" / "run.json").read_text())
    assert record["jobs"] == 2
    one = json.loads((tmp_path / "one" / "run.json").read_text())
    assert record["summary"] == one["summary"]
    assert main(argv + ["--out", str(tmp_path / "three"), "--jobs", "0"]) == 2
    assert "--jobs 0 means nothing" in caplog.text
    assert not (tmp_path / "three").exists()


class SizeRecorder(Recorder):
    """Recorder that also keeps the shape of every frame and given mask it was shown."""

    name = "size-recorder"

    def segment(self, video):
        self.shapes = {np.asarray(video.frames[t]).shape[:2] for t in range(len(video.frame_names))}
        self.given_shapes = {m.shape for m in video.given_masks.values()}
        yield from super().segment(video)


def test_input_height_gives_the_method_smaller_frames_and_writes_masks_at_the_annotations_size(tiny, tmp_path,
                                                                                               caplog):
    method = SizeRecorder()
    record = segment_dataset(method, tiny, tmp_path / "half", track="semi", progress=False,
                             input_height=TINY.height // 2)
    assert method.shapes == {(TINY.height // 2, TINY.width // 2)} == method.given_shapes
    assert record.input_height == TINY.height // 2
    seq = tiny.sequence_names()[0]
    written = read_mask(tmp_path / "half" / seq / "00000.png")
    gt = tiny.read_annotation(seq, "00000")
    assert written.shape == gt.shape
    # The given mask went down and back up by nearest neighbour: the same objects, nearly the same pixels.
    assert set(np.unique(written)) <= set(np.unique(gt)) | {0}
    assert (written == np.where(gt == 255, 0, gt)).mean() > 0.9
    assert json.loads((tmp_path / "half" / seq / MARKER_NAME).read_text())["input_height"] == TINY.height // 2

    # Masks made at another input size are never reused.
    with caplog.at_level(logging.WARNING, logger="vosbench"):
        full = segment_dataset(SizeRecorder(), tiny, tmp_path / "half", track="semi", progress=False)
    assert "input height" in caplog.text and full.seconds > 0
    # Frames are never enlarged for a method.
    bigger = SizeRecorder()
    segment_dataset(bigger, tiny, tmp_path / "big", track="semi", progress=False, input_height=TINY.height * 2)
    assert bigger.shapes == {(TINY.height, TINY.width)}


def test_cli_run_at_240p_on_480p_annotations(tmp_path, monkeypatch):
    """DAVIS downloads have no 240p annotations: --resolution 240p runs the method on 240-row frames
    and scores its masks, scaled back to 480 rows, against the 480p annotations."""
    params = SyntheticParams(n_sequences=2, n_frames=4, height=480, width=640, max_objects=1)
    root = generate_dataset(tmp_path / "big", seed=1, params=params)
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--method", "flow-warp", "--gt", str(root), "--no-progress",
            "--leaderboard-dir", str(tmp_path / "boards"), "--threads", "1"]
    assert main(argv + ["--out", str(tmp_path / "r480")]) == 0
    assert main(argv + ["--out", str(tmp_path / "r240"), "--resolution", "240p"]) == 0
    small = json.loads((tmp_path / "r240" / "run.json").read_text())
    assert small["input_height"] == 240 and small["resolution"] == "480p"
    assert small["options"]["input_resolution"] == "240p"
    masks = list((tmp_path / "r240" / "masks").rglob("*.png"))
    assert masks and all(read_mask(p).shape == (480, 640) for p in masks)
    assert 0.3 < small["summary"]["J&F-Mean"] <= 1
    # Both rows stay on the leaderboard, told apart by their options.
    board = pd.read_csv(tmp_path / "boards" / f"synthetic-{params.key(1)}-val-semi.csv")
    assert len(board) == 2 and board["options"].str.contains("input_resolution").sum() == 1
    assert board["gt_fingerprint"].nunique() == 1   # the same ground truth: both rows rank on one board
