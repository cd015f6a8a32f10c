"""The benchmark layouts' kernels, readers, generator and commands (parity with the official
evaluators is in test_benchmark_parity.py)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest

import vosbench
from vosbench.errors import ValidationError, VosbenchError
from vosbench.io.layouts import generate_layout
from vosbench.metrics import lvos as lvos_metrics
from vosbench.metrics import mosev2, sav
from vosbench.metrics.boundary import seg2bmap


def _blobs(rng, shape, n=3):
    mask = np.zeros(shape, dtype=bool)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    for _ in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        ay, ax = rng.uniform(2, shape[0] / 4), rng.uniform(2, shape[1] / 4)
        mask |= ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1
    return mask


def _full_frame_f(gt, pred, footprint, bmap=seg2bmap):
    """Boundary F over the whole frame, no crop: the definition the cropped kernels must equal."""
    gt_b, pred_b = bmap(gt), bmap(pred)
    n_gt, n_pred = gt_b.sum(), pred_b.sum()
    if n_gt == 0 and n_pred == 0:
        return 1.0
    if n_gt == 0 or n_pred == 0:
        return 0.0
    gt_d = cv2.dilate(gt_b.astype(np.uint8), footprint).astype(bool)
    pred_d = cv2.dilate(pred_b.astype(np.uint8), footprint).astype(bool)
    p, r = (pred_b & gt_d).sum() / n_pred, (gt_b & pred_d).sum() / n_gt
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


# ----------------------------------------------------------------------------- MOSEv2
@pytest.mark.parametrize("radius", [0, 1, 2, 3, 7, 8, 2.94, 3.92, 7.837, 0.64])
def test_disk_footprint_is_skimage_disk(radius):
    from skimage.morphology import disk

    assert np.array_equal(mosev2.disk_footprint(float(radius)), disk(radius).astype(np.uint8))


def test_fractional_disk_is_neither_neighbouring_disk():
    from skimage.morphology import disk

    for radius in (2.94, 3.92, 7.837):
        footprint = mosev2.disk_footprint(radius)
        for whole in (math.floor(radius), math.ceil(radius)):
            assert footprint.sum() != disk(whole).sum()
    # At 480p (radius 7.837) it is not even symmetric about its anchor.
    footprint = mosev2.disk_footprint(7.837)
    assert not np.array_equal(footprint, footprint[::-1, ::-1])


def test_jaccard_plus_one_on_empty_ground_truth():
    gt = np.zeros((1, 6, 6), bool)
    pred = np.zeros_like(gt)
    assert mosev2.jaccard_plus_one(gt, pred)[0] == 1.0
    pred[0, :2, :2] = True
    assert mosev2.jaccard_plus_one(gt, pred)[0] == pytest.approx(1 / 5)


def test_mosev2_boundary_equals_the_full_frame_definition():
    rng = np.random.default_rng(5)
    shape = (240, 427)
    cap = 0.008 * float(np.linalg.norm(shape))
    both_branches = set()
    for trial in range(40):
        gt = _blobs(rng, shape, n=1) if trial % 7 else np.zeros(shape, bool)
        if trial % 3 == 0:
            gt &= _blobs(rng, shape, n=2)  # small objects: adaptive width below the cap
        pred = np.roll(gt, rng.integers(-4, 5, 2), axis=(0, 1)) | (_blobs(rng, shape, n=1) & (trial % 5 == 0))
        f_plain, f_new = mosev2.boundary_pair(gt, pred)
        radius = mosev2.adaptive_radius(gt)
        if radius < cap:
            both_branches.add("adaptive")
            assert f_plain == pytest.approx(_full_frame_f(gt, pred, mosev2.disk_footprint(float(math.ceil(cap)))), abs=1e-12)
            assert f_new == pytest.approx(_full_frame_f(gt, pred, mosev2.disk_footprint(radius)), abs=1e-12)
        else:
            both_branches.add("cap")
            expected = _full_frame_f(gt, pred, mosev2.disk_footprint(cap))
            assert f_plain == pytest.approx(expected, abs=1e-12) and f_new == f_plain
    assert both_branches == {"adaptive", "cap"}


def test_appearance_segments():
    # scored frames:      0  1  2  3  4  5  6  7  8
    empty = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0], bool)
    gone, back = mosev2.appearance_segments(empty)
    assert gone == [(3, 5), (6, 7)]          # the one starting on frame 0 is dropped
    assert back == [(1, 3), (5, 6), (7, 9)]


def test_mosev2_object_without_frames_scores_zero():
    summary = mosev2.summarize_object(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, bool))
    assert (summary.j, summary.f_new, summary.f, summary.disappear_j) == (0.0, 0.0, 0.0, None)


# ----------------------------------------------------------------------------- LVOS
def test_lvos_steps():
    frames, positions, length = lvos_metrics.scored_steps(10, 31, 5)
    assert frames == [15, 20, 25] and positions == [0, 1, 2] and length == 3
    # An end that is the last annotated frame itself gives the same frames.
    assert lvos_metrics.scored_steps(10, 30, 5)[0] == [15, 20, 25]


def test_lvos_compiled_boundary_is_its_definition_and_differs():
    rng = np.random.default_rng(3)
    seg = _blobs(rng, (40, 50))
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    expected = seg ^ (e | s | se)
    expected[-1, :] = seg[-1, :] ^ e[-1, :]
    expected[:, -1] = seg[:, -1] ^ s[:, -1]
    expected[-1, -1] = False
    assert np.array_equal(lvos_metrics.compiled_seg2bmap(seg), expected)
    assert not np.array_equal(expected, seg2bmap(seg))


@pytest.mark.parametrize("compiled", [False, True])
def test_lvos_f_equals_the_full_frame_definition(compiled):
    from skimage.morphology import disk

    rng = np.random.default_rng(11)
    shape = (120, 200)
    radius = math.ceil(0.008 * float(np.linalg.norm(shape)))
    bmap = lvos_metrics.compiled_seg2bmap if compiled else seg2bmap
    for _ in range(15):
        gt = _blobs(rng, shape)
        pred = np.roll(gt, rng.integers(-5, 6, 2), axis=(0, 1)) ^ _blobs(rng, shape, 1)
        assert lvos_metrics.f_measure(gt, pred, compiled=compiled) == pytest.approx(
            _full_frame_f(gt, pred, disk(radius).astype(np.uint8), bmap), abs=1e-12)


def test_lvos_variance_is_rounded_before_the_root():
    j = np.array([1.0, 0.0, 0.5])
    f = np.array([1.0, 0.0, 0.4])
    jf = (j + f) / 2
    var = np.sum((jf.mean() - jf) ** 2) / 3
    assert lvos_metrics.variance(j, f) == math.sqrt(round(var, 4))
    assert lvos_metrics.variance(j, f) != math.sqrt(var)


def test_lvos_global_is_nan_without_unseen_videos():
    out = lvos_metrics.combine([0.5, 0.7], [0.4, 0.6], [0.1, 0.2], [False, False])
    assert math.isnan(out["J&F-Mean"]) and out["J-seen-Mean"] == pytest.approx(0.6)


# ----------------------------------------------------------------------------- SA-V
def test_sav_counts_frames_from_the_first_sighting():
    gt = np.zeros((5, 8, 8), bool)
    pred = np.zeros_like(gt)
    gt[2:, 2:5, 2:5] = True
    pred[3:, 2:5, 2:5] = True
    j, f, in_gt = sav.object_frame_scores(gt, pred)
    assert in_gt and len(j) == 3 and list(j) == [0.0, 1.0, 1.0]
    # A false positive before the object appears starts the count earlier.
    pred[1, 0, 0] = True
    j, _, _ = sav.object_frame_scores(gt, pred)
    assert len(j) == 4 and j[0] == 0.0


# ----------------------------------------------------------------------------- data and commands
@pytest.fixture(scope="module")
def lvos_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lvos")
    gt = generate_layout("lvos", folder / "data", seed=3, long_frames=40, results=folder / "results", images=False)
    return gt, folder / "results"


def test_generator_is_seeded(tmp_path):
    a = generate_layout("sav", tmp_path / "a", seed=4, long_frames=12, results=tmp_path / "ra", images=False)
    b = generate_layout("sav", tmp_path / "b", seed=4, long_frames=12, results=tmp_path / "rb", images=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    c = generate_layout("sav", tmp_path / "c", seed=5, long_frames=12, images=False)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)
    # Overlapping objects: a part inside its whole.
    part = cv2.imread(str(a / "Annotations_6fps" / "objects" / "004" / "00000.png"), cv2.IMREAD_GRAYSCALE) > 0
    whole = cv2.imread(str(a / "Annotations_6fps" / "objects" / "001" / "00000.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert part.any() and (part & whole).sum() == part.sum()


def test_lvos_cache_reuses_and_notices_a_changed_mask(lvos_set, tmp_path):
    gt, results = lvos_set
    first = vosbench.evaluate(gt, results, dataset="lvos", cache=False).summary
    work = tmp_path / "results"
    import shutil

    shutil.copytree(results, work)
    cached_a = vosbench.evaluate(gt, work, dataset="lvos").summary
    cached_b = vosbench.evaluate(gt, work, dataset="lvos").summary
    assert cached_a == cached_b == first
    mask = work / "objects" / "00000010.png"
    from vosbench.io import read_mask, write_mask

    write_mask(mask, np.zeros_like(read_mask(mask)))
    assert vosbench.evaluate(gt, work, dataset="lvos").summary != first


def test_missing_mask_is_named_and_nothing_is_written(lvos_set, tmp_path):
    gt, results = lvos_set
    import shutil

    work = tmp_path / "results"
    shutil.copytree(results, work)
    (work / "objects" / "00000010.png").unlink()
    with pytest.raises(ValidationError, match="00000010.png"):
        vosbench.evaluate(gt, work, dataset="lvos", cache=False)
    proc = subprocess.run([sys.executable, "-m", "vosbench", "evaluate", "--dataset", "lvos", "--gt", str(gt),
                           "--results", str(work), "--no-cache", "--no-progress"], capture_output=True, text=True)
    assert proc.returncode != 0 and "00000010.png" in proc.stderr + proc.stdout
    assert not list(work.glob("*.csv"))
    proc = subprocess.run([sys.executable, "-m", "vosbench", "validate", "--dataset", "lvos", "--gt", str(gt),
                           "--results", str(work)], capture_output=True, text=True)
    assert proc.returncode == 2 and "00000010.png" in proc.stdout


def test_lvos_meta_whose_range_leaves_slots_empty_is_refused(lvos_set, tmp_path):
    gt, results = lvos_set
    import shutil

    data = tmp_path / "valid"
    shutil.copytree(gt, data)
    meta = json.loads((data / "valid_meta.json").read_text())
    meta["videos"]["objects"]["objects"]["1"]["frame_range"]["frame_nums"] += 2
    (data / "valid_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValidationError, match="frame_nums"):
        vosbench.evaluate(data, results, dataset="lvos", cache=False)


def test_cli_generate_and_evaluate_each_layout(tmp_path):
    for layout in ("mose", "vost", "sav", "mosev2"):
        out = tmp_path / layout
        proc = subprocess.run([sys.executable, "-m", "vosbench", "generate", "--layout", layout, "--out", str(out),
                               "--results", str(out / "res"), "--long-frames", "30"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        gt = proc.stdout.split(":")[0]
        proc = subprocess.run([sys.executable, "-m", "vosbench", "evaluate", "--dataset", layout, "--gt", gt,
                               "--results", str(out / "res"), "--no-cache", "--no-progress", "--out",
                               str(out / "scores")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        table = (out / "scores" / "global_results-val.csv").read_text().splitlines()
        assert len(table) == 2
        headline = {"mose": "J&F-Mean", "vost": "J_tr-Mean", "sav": "J&F-Mean", "mosev2": "J&F_new"}[layout]
        assert headline in table[0].split(",")
        assert "Protocol:" in proc.stdout


def test_unknown_metric_for_a_layout_is_refused(lvos_set):
    gt, results = lvos_set
    with pytest.raises(VosbenchError, match="unknown metric"):
        vosbench.evaluate(gt, results, dataset="lvos", metrics="nope", cache=False)


# ----------------------------------------------------------------------------- DAVIS 2017 test-dev
def _test_dev_tree(root, n_frames=5, shape=(24, 32)):
    from vosbench.io import write_mask

    for t in range(n_frames):
        frames = root / "JPEGImages" / "480p" / "walk"
        frames.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(frames / f"{t:05d}.jpg"), np.zeros(shape + (3,), np.uint8))
    first = np.zeros(shape, np.uint8)
    first[2:8, 2:8], first[10:20, 10:20] = 1, 2
    write_mask(root / "Annotations" / "480p" / "walk" / "00000.png", first)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "test-dev.txt").write_text("walk\n")
    return first


def _validate(gt, results, split="test-dev"):
    return subprocess.run([sys.executable, "-m", "vosbench", "validate", "--dataset", "davis2017", "--gt", str(gt),
                           "--results", str(results), "--split", split], capture_output=True, text=True)


def test_test_dev_results_are_checked_against_the_first_frames(tmp_path):
    from vosbench.io import write_mask

    gt = tmp_path / "DAVIS"
    first = _test_dev_tree(gt)
    results = tmp_path / "results"
    for t in range(1, 4):  # the first and last frame may be absent
        write_mask(results / "walk" / f"{t:05d}.png", first)
    proc = _validate(gt, results)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = first.copy()
    bad[0, 0] = 3
    write_mask(results / "walk" / "00001.png", bad)                       # an id the first frame lacks
    (results / "walk" / "00002.png").unlink()                             # a scored frame missing
    write_mask(results / "walk" / "00003.png", np.zeros((10, 10), np.uint8))  # wrong size
    write_mask(results / "walk" / "00009.png", first)                     # names no frame
    (results / "stroll").mkdir()                                          # not a sequence of the split
    proc = _validate(gt, results)
    assert proc.returncode == 2
    for text in ("00001.png", "object id 3", "00002.png", "00003.png", "00009.png", "stroll"):
        assert text in proc.stdout
    with pytest.raises(VosbenchError, match="not public"):
        vosbench.evaluate(gt, results, dataset="davis2017", split="test-dev")


def test_metric_options_from_the_command_line():
    from vosbench.cli.evaluate import parse_metric_options

    assert parse_metric_options(["lvos.compiled_boundary=true", "lvos.unseen=[\"a\"]", "x.name=plain"]) == {
        "lvos": {"compiled_boundary": True, "unseen": ["a"]}, "x": {"name": "plain"}}
    with pytest.raises(VosbenchError, match="METRIC.KEY=VALUE"):
        parse_metric_options(["compiled_boundary=true"])


def test_official_object_names(tmp_path):
    gt = generate_layout("sav", tmp_path / "d", seed=2, long_frames=30, results=tmp_path / "r", images=False)
    labels = list(vosbench.evaluate(gt, tmp_path / "r", dataset="sav", cache=False).per_object["label"])
    assert "objects_004" in labels and "long_000" in labels


def test_other_tracks_of_the_layouts_are_refused(lvos_set):
    gt, results = lvos_set
    with pytest.raises(VosbenchError, match="semi-supervised evaluator only"):
        vosbench.evaluate(gt, results, dataset="lvos", track="unsupervised", cache=False)


def test_lenient_skips_a_video_with_missing_masks_and_lists_it(lvos_set, tmp_path):
    gt, results = lvos_set
    import shutil

    work = tmp_path / "results"
    shutil.copytree(results, work)
    shutil.rmtree(work / "empty")
    result = vosbench.evaluate(gt, work, dataset="lvos", cache=False, lenient=True)
    assert set(result.per_object["sequence"]) == {"objects", "small", "long"}
    assert any("empty" in s for s in result.skipped)


def test_benchmark_runner_gives_the_same_numbers_on_another_joblib_backend(lvos_set):
    gt, results = lvos_set
    one = vosbench.evaluate(gt, results, dataset="lvos", cache=False).per_object
    two = vosbench.evaluate(gt, results, dataset="lvos", cache=False, jobs=2, backend="threading").per_object
    assert one.equals(two)


def test_mose_download_without_ground_truth_is_validated_against_first_frames(tmp_path):
    from vosbench.io import write_mask

    root = tmp_path / "MOSE" / "valid"
    first = np.zeros((16, 20), np.uint8)
    first[2:6, 2:6] = 1
    for t in range(4):
        (root / "JPEGImages" / "v1").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "JPEGImages" / "v1" / f"{t:05d}.jpg"), np.zeros((16, 20, 3), np.uint8))
    write_mask(root / "Annotations" / "v1" / "00000.png", first)
    results = tmp_path / "results"
    for t in range(4):
        write_mask(results / "v1" / f"{t:05d}.png", first)
    proc = subprocess.run([sys.executable, "-m", "vosbench", "validate", "--dataset", "mose", "--gt",
                           str(tmp_path / "MOSE"), "--results", str(results)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (results / "v1" / "00002.png").unlink()
    proc = subprocess.run([sys.executable, "-m", "vosbench", "validate", "--dataset", "mose", "--gt",
                           str(tmp_path / "MOSE"), "--results", str(results)], capture_output=True, text=True)
    assert proc.returncode == 2 and "00002.png" in proc.stdout
    with pytest.raises(VosbenchError, match="not public"):
        vosbench.evaluate(tmp_path / "MOSE", results, dataset="mose")


def test_folders_of_no_video_are_ignored_with_a_note(lvos_set, tmp_path):
    gt, results = lvos_set
    import shutil

    work = tmp_path / "results"
    shutil.copytree(results, work)
    shutil.copytree(work / "empty", work / "not-a-video")
    result = vosbench.evaluate(gt, work, dataset="lvos", cache=False)
    assert "not-a-video" not in set(result.per_object["sequence"])
    assert any("not-a-video" in note for note in result.notes)
