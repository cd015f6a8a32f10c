"""YouTube-VOS: sparse annotations, objects that first appear mid-video, the seen/unseen breakdown."""
from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import vosbench
from vosbench.cli import main
from vosbench.errors import InputError
from vosbench.io import write_mask
from vosbench.io.factory import open_dataset
from vosbench.metrics.reference import f_measure_reference, jaccard_reference
from vosbench.tracks.youtubevos import read_category_list, seen_unseen_breakdown

N_FRAMES = 21          # frames 00000 .. 00020
STEP = 5               # annotations on every 5th frame
H, W = 36, 48


def _box(y, x, h, w, value, shape=(H, W)):
    out = np.zeros(shape, np.uint8)
    out[max(y, 0):y + h, max(x, 0):x + w] = value
    return out


def _video_masks(layout):
    """{frame index: mask} for every frame from a list of (id, first frame, y, x, dy, dx)."""
    masks = {}
    for t in range(N_FRAMES):
        mask = np.zeros((H, W), np.uint8)
        for object_id, first, y, x, dy, dx in layout:
            if t >= first:
                mask[np.maximum(_box(y + dy * t, x + dx * t, 8, 10, 1), 0) == 1] = object_id
        masks[t] = mask
    return masks


VIDEOS = {
    # video: objects as (id, first frame, y, x, dy, dx); categories by id
    "vid_a": ([(1, 0, 4, 4, 1, 1), (2, 10, 20, 30, 0, -1)], {1: "person", 2: "dog"}),   # object 2 from frame 10
    "vid_b": ([(1, 0, 10, 10, 0, 1), (2, 0, 24, 2, -1, 1), (3, 5, 2, 30, 1, 0)], {1: "zebra", 2: "person",
                                                                                 3: "giraffe"}),
}


@pytest.fixture
def ytvos(tmp_path):
    root = tmp_path / "ytvos"
    split = root / "valid"
    meta = {"videos": {}}
    truth, predictions = {}, {}
    rng = np.random.default_rng(7)
    for video, (layout, categories) in VIDEOS.items():
        masks = _video_masks(layout)
        truth[video] = masks
        preds = {}
        for t, mask in masks.items():
            (split / "JPEGImages" / video).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((H, W, 3), 128, np.uint8)).save(split / "JPEGImages" / video / f"{t:05d}.jpg")
            if t % STEP == 0:
                write_mask(split / "Annotations" / video / f"{t:05d}.png", mask)
            pred = np.roll(mask, int(rng.integers(-1, 2)), axis=int(rng.integers(0, 2)))
            preds[t] = pred
            write_mask(tmp_path / "results" / video / f"{t:05d}.png", pred)  # every frame, as methods write
        predictions[video] = preds
        meta["videos"][video] = {"objects": {str(k): {"category": c, "frames": [
            f"{t:05d}" for t in range(0, N_FRAMES, STEP) if (masks[t] == k).any()]} for k, c in categories.items()}}
    (split / "meta.json").write_text(json.dumps(meta))
    return root, tmp_path / "results", truth, predictions


def test_dataset_reads_layout_and_categories(ytvos):
    root, *_ = ytvos
    ds = open_dataset("youtubevos", root, split="val")  # "val" means the valid/ folder
    assert ds.sequence_names() == ["vid_a", "vid_b"]
    assert ds.annotated_frames("vid_a") == [f"{t:05d}" for t in range(0, N_FRAMES, STEP)]
    assert len(ds.frame_names("vid_a")) == N_FRAMES
    assert ds.object_categories("vid_b") == {1: "zebra", 2: "person", 3: "giraffe"}
    assert ds.image_path("vid_a", "00003").is_file()
    # The split folder itself works as the root too.
    assert open_dataset("youtubevos", root / "valid").sequence_names() == ["vid_a", "vid_b"]


def test_only_annotated_frames_each_object_from_the_frame_after_its_first_annotation(ytvos):
    root, results, truth, preds = ytvos
    result = vosbench.evaluate(root, results, dataset="youtubevos", split="valid", cache=False)
    frame = result.per_frame
    # vid_a object 1 first annotated at 00000 -> scored at 00005, 00010, 00015, 00020.
    a1 = frame[(frame.sequence == "vid_a") & (frame.object_id == 1)]
    assert list(a1.frame) == ["00005", "00010", "00015", "00020"]
    # vid_a object 2 appears at frame 10 -> scored from 00015.
    a2 = frame[(frame.sequence == "vid_a") & (frame.object_id == 2)]
    assert list(a2.frame) == ["00015", "00020"]
    # vid_b object 3 appears at frame 5 -> scored from 00010.
    b3 = frame[(frame.sequence == "vid_b") & (frame.object_id == 3)]
    assert list(b3.frame) == ["00010", "00015", "00020"]
    for row in frame.itertuples():
        t = int(row.frame)
        g, p = truth[row.sequence][t] == row.object_id, preds[row.sequence][t] == row.object_id
        assert row.J == jaccard_reference(g, p)
        assert row.F == f_measure_reference(g, p)
    assert "annotated frames only" in result.protocol()


def test_seen_unseen_breakdown(ytvos, tmp_path):
    root, results, *_ = ytvos
    ds = open_dataset("youtubevos", root, split="valid")
    result = vosbench.evaluate(root, results, dataset="youtubevos", split="valid", cache=False)
    seen_file = tmp_path / "seen.txt"
    seen_file.write_text("# training categories\nperson\nzebra\n\n")
    seen = read_category_list(seen_file)
    assert seen == {"person", "zebra"}
    table = seen_unseen_breakdown(result, ds, seen=seen, unseen={"dog", "giraffe"})
    obj = result.per_object
    is_seen = [(s, o) in {("vid_a", 1), ("vid_b", 1), ("vid_b", 2)} for s, o in zip(obj.sequence, obj.object_id)]
    is_seen = np.array(is_seen)
    expected = {"J_seen": obj["J-Mean"][is_seen].mean(), "F_seen": obj["F-Mean"][is_seen].mean(),
                "J_unseen": obj["J-Mean"][~is_seen].mean(), "F_unseen": obj["F-Mean"][~is_seen].mean()}
    for key, value in expected.items():
        assert table[key][0] == pytest.approx(value, abs=1e-12)
    assert table["overall"][0] == pytest.approx(sum(expected.values()) / 4, abs=1e-12)
    assert (table.n_seen[0], table.n_unseen[0]) == (3, 2)
    # A mapping works as well as the dataset.
    again = seen_unseen_breakdown(result, ds.categories(), seen=seen, unseen={"dog", "giraffe"})
    pd.testing.assert_frame_equal(table, again)
    # An object in no list is an error, not a silently smaller group.
    with pytest.raises(InputError, match="giraffe"):
        seen_unseen_breakdown(result, ds, seen=seen, unseen={"dog"})
    with pytest.raises(ValueError, match="both"):
        seen_unseen_breakdown(result, ds, seen=seen, unseen={"dog", "giraffe", "person"})


def test_frames_between_annotations_may_be_absent(ytvos):
    root, results, *_ = ytvos
    for t in (1, 2, 3, 4, 6):
        (results / "vid_a" / f"{t:05d}.png").unlink()
    result = vosbench.evaluate(root, results, dataset="youtubevos", split="valid", cache=False)
    assert len(result.per_object) == 5


def test_unknown_object_id_and_missing_annotated_frame_are_errors(ytvos, caplog, capsys):
    root, results, *_ = ytvos
    unknown = results / "vid_b" / "00010.png"
    write_mask(unknown, _box(1, 1, 4, 4, 9))
    status = main(["evaluate", "--gt", str(root), "--results", str(results), "--dataset", "youtubevos",
                   "--split", "valid", "--no-progress"])
    assert status == 2
    assert str(unknown) in caplog.text and "[9]" in caplog.text
    missing = results / "vid_a" / "00015.png"
    missing.unlink()
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        status = main(["validate", "--gt", str(root), "--results", str(results), "--dataset", "youtubevos",
                       "--split", "valid"])
    out = capsys.readouterr().out
    assert status == 2 and str(missing) in out and str(unknown) in out
    assert not list(results.rglob("*.csv"))


def test_not_a_youtubevos_folder(tmp_path):
    with pytest.raises(InputError, match="not a YouTube-VOS folder"):
        open_dataset("youtubevos", tmp_path, split="valid")
    bad = tmp_path / "valid"
    (bad / "Annotations").mkdir(parents=True)
    (bad / "meta.json").write_text("{not json")
    with pytest.raises(InputError, match="meta.json"):
        open_dataset("youtubevos", tmp_path, split="valid")


def test_folder_dataset(tmp_path):
    gt_root = tmp_path / "clips"
    masks = _video_masks([(1, 0, 4, 4, 1, 1), (2, 0, 20, 30, 0, -1)])
    for t in range(6):
        write_mask(gt_root / "clip" / f"{t:03d}.png", masks[t])
        write_mask(tmp_path / "res" / "clip" / f"{t:03d}.png", np.roll(masks[t], 1, axis=1))
    ds = open_dataset("folder", gt_root)
    assert ds.sequence_names() == ["clip"] and ds.frame_names("clip")[0] == "000"
    result = vosbench.evaluate(gt_root, tmp_path / "res", dataset="folder", cache=False)
    assert sorted(result.per_frame.frame.unique()) == ["001", "002", "003", "004"]  # DAVIS protocol
    row = result.per_frame.iloc[0]
    g, p = masks[1] == row.object_id, np.roll(masks[1], 1, axis=1) == row.object_id
    assert row.J == jaccard_reference(g, p)
    with pytest.raises(InputError, match="no sub-folder"):
        open_dataset("folder", tmp_path / "res" / "clip")


def test_cli_seen_unseen_breakdown(ytvos, tmp_path, capsys):
    root, results, *_ = ytvos
    (tmp_path / "seen.txt").write_text("person\nzebra\n")
    (tmp_path / "unseen.txt").write_text("dog\ngiraffe\n")
    out = tmp_path / "out"
    status = main(["evaluate", "--gt", str(root), "--results", str(results), "--dataset", "youtubevos",
                   "--split", "valid", "--out", str(out), "--no-cache", "--no-progress",
                   "--seen-categories", str(tmp_path / "seen.txt"), "--unseen-categories", str(tmp_path / "unseen.txt")])
    assert status == 0
    assert "seen / unseen" in capsys.readouterr().out
    written = pd.read_csv(out / "seen-unseen_results-valid.csv")
    ds = open_dataset("youtubevos", root, split="valid")
    result = vosbench.evaluate(root, results, dataset="youtubevos", split="valid", cache=False)
    expected = seen_unseen_breakdown(result, ds, seen={"person", "zebra"}, unseen={"dog", "giraffe"})
    assert written["overall"][0] == pytest.approx(round(expected["overall"][0], 3), abs=1e-9)
    # One list without the other is refused.
    assert main(["evaluate", "--gt", str(root), "--results", str(results), "--dataset", "youtubevos",
                 "--split", "valid", "--out", str(tmp_path / "out2"), "--no-progress",
                 "--seen-categories", str(tmp_path / "seen.txt")]) == 2
    assert not (tmp_path / "out2").exists()
