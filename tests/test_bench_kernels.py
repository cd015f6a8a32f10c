"""Per-frame kernels at 480p under pytest-benchmark.

Disabled by default (addopts has --benchmark-disable: each runs once, as a test of
its result). Time them with:

    pytest tests/test_bench_kernels.py --benchmark-enable --benchmark-only
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from vosbench.io import read_mask, write_mask
from vosbench.metrics import f_measure, object_frame_scores, seg2bmap
from vosbench.metrics.boundary import _disk_kernel, boundary_radius, dilate_disk
from vosbench.metrics.frames import pairwise_frame_scores

H, W = 480, 854


def _frame(seed: int, n_objects: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.zeros((H, W), np.uint8)
    for k in range(1, n_objects + 1):
        centre = (int(rng.integers(80, W - 80)), int(rng.integers(60, H - 60)))
        axes = (int(rng.integers(20, 90)), int(rng.integers(15, 70)))
        cv2.ellipse(frame, centre, axes, float(rng.uniform(0, 180)), 0, 360, k, -1)
    return frame


@pytest.fixture(scope="module")
def frames():
    gt = _frame(0, 5)
    # The prediction: the ground truth shifted a little, one object missed, some speckle.
    pred = np.roll(gt, (3, -4), axis=(0, 1))
    pred[pred == 4] = 0
    pred[100:104, 200:206] = 2
    return gt, pred


def test_read_palette_mask(benchmark, frames, tmp_path):
    gt, _ = frames
    path = tmp_path / "00000.png"
    write_mask(path, gt)
    ids = benchmark(read_mask, path)
    np.testing.assert_array_equal(ids, gt)


def test_seg2bmap(benchmark, frames):
    gt, _ = frames
    bmap = benchmark(seg2bmap, gt == 1)
    assert bmap.any() and not bmap[-1, -1]


def test_dilate_disk_480p(benchmark, frames):
    gt, _ = frames
    boundary = seg2bmap(gt == 2).view(np.uint8)
    radius = boundary_radius(H, W)
    grown = benchmark(dilate_disk, boundary, radius)
    expected = cv2.dilate(boundary, _disk_kernel(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    np.testing.assert_array_equal(grown, expected)


def test_f_measure_one_object(benchmark, frames):
    gt, _ = frames
    g = gt == 1
    p = np.roll(g, 12, axis=1)  # further than the 8-pixel tolerance: part of the boundary misses
    value = benchmark(f_measure, g, p)
    # The same number on the full frame with OpenCV's generic disk dilation.
    kernel = _disk_kernel(boundary_radius(H, W))
    gb, pb = seg2bmap(g), seg2bmap(p)
    gd = cv2.dilate(gb.view(np.uint8), kernel).view(bool)
    pd = cv2.dilate(pb.view(np.uint8), kernel).view(bool)
    precision, recall = (pb & gd).sum() / pb.sum(), (gb & pd).sum() / gb.sum()
    assert 0.0 < value < 1.0
    assert value == 2 * precision * recall / (precision + recall)


def test_object_frame_scores_one_frame_five_objects(benchmark, frames):
    gt, pred = frames
    j, f = benchmark(object_frame_scores, gt[None], pred[None], [1, 2, 3, 4, 5])
    assert j.shape == (5, 1) and j[3, 0] == 0.0 and f[3, 0] == 0.0  # object 4 was missed
    assert (j[[0, 1, 2, 4], 0] > 0.5).all()


def test_object_frame_scores_with_void(benchmark, frames):
    gt, pred = frames
    gt = gt.copy()
    gt[cv2.dilate((gt > 0).view(np.uint8), np.ones((5, 5), np.uint8)).view(bool) & (gt == 0)] = 255
    void = (gt == 255)[None]
    j, f = benchmark(object_frame_scores, gt[None], pred[None], [1, 2, 3, 4, 5], void)
    assert np.isfinite(j).all() and np.isfinite(f).all()


def test_pairwise_twenty_proposals(benchmark, frames):
    gt, _ = frames
    proposals = _frame(1, 20)
    j, f = benchmark(pairwise_frame_scores, gt[None], proposals[None], [1, 2, 3, 4, 5], list(range(1, 21)))
    assert j.shape == (20, 5, 1)
    single_j, single_f = object_frame_scores(gt[None], proposals[None], [1, 2, 3, 4, 5], pred_ids=[7] * 5)
    np.testing.assert_array_equal(j[6], single_j)
    np.testing.assert_array_equal(f[6], single_f)


def test_mosev2_boundary_pair_480p(benchmark, frames):
    from vosbench.metrics.mosev2 import boundary_pair

    gt, pred = frames
    f_plain, f_new = benchmark(boundary_pair, gt == 1, pred == 1)
    assert 0 < f_new <= 1 and 0 < f_plain <= 1


def test_lvos_f_measure_480p(benchmark, frames):
    from vosbench.metrics.lvos import f_measure as lvos_f

    gt, pred = frames
    value = benchmark(lvos_f, gt == 1, pred == 1)
    assert value == pytest.approx(f_measure(gt == 1, pred == 1), abs=1e-12)  # the pure-Python path is DAVIS's


@pytest.fixture(scope="module")
def real_pairs(davis2016_root):
    """The first 40 frames of two real DAVIS 2016 val sequences and a published method's masks for them."""
    pairs = []
    for sequence in ("bmx-trees", "kite-surf"):
        for gt_path in sorted((davis2016_root / "Annotations" / "480p" / sequence).glob("*.png"))[:40]:
            pred_path = davis2016_root / "results" / "osvos" / sequence / gt_path.name
            pairs.append((read_mask(gt_path, binary=True), read_mask(pred_path, binary=True)))
    return pairs


def _f_of_pairs(pairs, native: bool) -> list[float]:
    from vosbench.metrics.frames import FrameRegions, pair_f

    radius = boundary_radius(H, W)
    out = []
    for g, p in pairs:  # regions made afresh each time: nothing carried over between rounds
        out.append(pair_f(FrameRegions(g, None, radius, g.shape).get(1), FrameRegions(p, None, radius, p.shape).get(1),
                          radius, native=native))
    return out


@pytest.mark.shared
@pytest.mark.parametrize("native", [True, False], ids=["compiled-kernel", "opencv-numpy"])
def test_f_real_davis_frames(benchmark, real_pairs, native):
    """F of 80 real DAVIS frames, the compiled kernel beside the OpenCV/numpy path (run both in one session)."""
    from vosbench.metrics.frames import native_kernel_available

    if native and not native_kernel_available():
        pytest.skip("the compiled kernel is not built")
    values = benchmark(_f_of_pairs, real_pairs, native)
    assert values == _f_of_pairs(real_pairs, not native or not native_kernel_available())


@pytest.mark.shared
@pytest.mark.parametrize("native", [True, False], ids=["compiled-kernel", "numpy-opencv"])
def test_label_boxes_real_davis_masks(benchmark, real_pairs, native):
    """Ids, pixel counts and boxes of the 160 real DAVIS masks of `real_pairs` (each region's box comes
    from here), the one-pass compiled kernel beside numpy's count and OpenCV's box per id."""
    from vosbench.metrics.frames import label_boxes, native_kernel_available

    if native and not native_kernel_available():
        pytest.skip("the compiled kernel is not built")
    masks = [mask for pair in real_pairs for mask in pair]
    found = benchmark(lambda: [label_boxes(mask, native=native) for mask in masks])
    assert found == [label_boxes(mask, native=not native) for mask in masks]
