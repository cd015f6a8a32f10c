"""The compiled boundary kernel (`vosbench.metrics._native`) against the OpenCV/numpy path it replaces.

The kernel is an optional extension: without it these tests skip, unless VOSBENCH_REQUIRE_NATIVE=1
(set by `.ci/run`), where a missing build fails instead. Both paths are compared on the counts
themselves (boundary pixels and matches of each side), not only on F.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vosbench.metrics import frames
from vosbench.metrics.boundary import dilate_disk, seg2bmap
from vosbench.metrics.reference import f_measure_reference


@pytest.fixture(scope="module")
def native():
    if frames._native_boundary_matches is None:
        if os.environ.get("VOSBENCH_REQUIRE_NATIVE") == "1":
            pytest.fail("vosbench.metrics._native is not built but VOSBENCH_REQUIRE_NATIVE=1 requires it "
                        "(reinstall with a C compiler: pip install -e .)")
        pytest.skip("the native kernel is not built")
    return frames._native_boundary_matches


def _python_counts(a: np.ndarray, a_at, b: np.ndarray, b_at, radius: int, shape):
    """(n_a, n_b, a_matched, b_matched) the slow way: both crops pasted into one frame, seg2bmap of each
    crop, dilation by the disk over the whole frame, counts."""
    def paste(crop, at):
        bmap = np.zeros(shape, dtype=bool)
        bmap[at[0]:at[0] + crop.shape[0], at[1]:at[1] + crop.shape[1]] = seg2bmap(crop != 0)
        return bmap

    a_b, b_b = paste(a, a_at), paste(b, b_at)
    a_dil = dilate_disk(a_b.view(np.uint8), radius).view(bool)
    b_dil = dilate_disk(b_b.view(np.uint8), radius).view(bool)
    return (int(a_b.sum()), int(b_b.sum()), int((a_b & b_dil).sum()), int((b_b & a_dil).sum()))


masks = st.tuples(st.integers(1, 24), st.integers(1, 24), st.floats(0, 1), st.integers(0, 2**32 - 1))


def _mask(spec) -> np.ndarray:
    h, w, density, seed = spec
    rng = np.random.default_rng(seed)
    # Blobs rather than salt: smooth shapes with long boundaries, plus some isolated pixels.
    base = rng.random((h, w)) < density
    return base | (np.roll(base, 1, axis=0) & (rng.random((h, w)) < 0.5))


@settings(max_examples=300, deadline=None)
@given(masks, masks, st.integers(0, 16), st.integers(0, 20), st.integers(0, 20), st.integers(0, 20),
       st.integers(0, 20), st.sampled_from(["bool", "uint8", "uint8-255", "strided"]))
def test_counts_equal_the_dilation_path(native, a_spec, b_spec, radius, ay, ax, by, bx, kind):
    a, b = _mask(a_spec), _mask(b_spec)
    shape = (max(ay + a.shape[0], by + b.shape[0]) + 3, max(ax + a.shape[1], bx + b.shape[1]) + 3)
    expected = _python_counts(a, (ay, ax), b, (by, bx), radius, shape)

    def as_kind(m):
        if kind == "uint8":
            return m.astype(np.uint8)
        if kind == "uint8-255":
            return m.astype(np.uint8) * 255
        if kind == "strided":  # every other column of a wider array: a non-contiguous view
            wide = np.zeros((m.shape[0], 2 * m.shape[1]), dtype=bool)
            wide[:, ::2] = m
            return wide[:, ::2]
        return m

    assert native(as_kind(a), ay, ax, as_kind(b), by, bx, radius) == expected


def test_transposed_and_empty_crops(native):
    rng = np.random.default_rng(3)
    a = rng.random((30, 17)) < 0.4
    b = rng.random((17, 30)) < 0.4
    shape = (60, 60)
    assert native(a.T, 5, 9, b, 7, 2, 6) == _python_counts(a.T, (5, 9), b, (7, 2), 6, shape)
    empty = np.zeros((0, 4), dtype=bool)
    assert native(empty, 0, 0, b, 0, 0, 3)[0] == 0
    with pytest.raises(ValueError, match="radius"):
        native(a, 0, 0, b, 0, 0, 255)
    with pytest.raises(ValueError, match="2-D"):
        native(np.zeros((2, 2, 2), bool), 0, 0, b, 0, 0, 3)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 4, 8, 13]))
def test_pair_f_native_equals_python_and_the_reference(native, seed, radius):
    """Through the regions the metrics use: frames touching the border, one side empty, and the slow reference."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(8, 50, size=2)
    g = np.zeros((h, w), np.uint8)
    p = np.zeros((h, w), np.uint8)
    for labels in (g, p):
        for _ in range(int(rng.integers(0, 4))):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            labels[y0:y0 + rng.integers(1, h), x0:x0 + rng.integers(1, w)] = 1
    regions = [frames.FrameRegions(x, None, radius, (h, w)).get(1) for x in (g, p)]
    fast = frames.pair_f(*regions, radius, native=True)
    regions = [frames.FrameRegions(x, None, radius, (h, w)).get(1) for x in (g, p)]
    slow = frames.pair_f(*regions, radius, native=False)
    assert fast == slow
    # bound_th >= 1 is a radius in pixels; 0 is the fraction 0 of the diagonal, radius 0 as well.
    assert fast == pytest.approx(f_measure_reference(g == 1, p == 1, bound_th=radius))


def test_large_radius_takes_the_python_path(native):
    """Radii beyond the kernel's bytes (a frame of over 31,000 pixels' diagonal) still score."""
    g = np.zeros((40, 40), np.uint8)
    p = np.zeros((40, 40), np.uint8)
    g[5:20, 5:20] = 1
    p[10:30, 8:25] = 1
    regions = [frames.FrameRegions(x, None, 300, (40, 40)).get(1) for x in (g, p)]
    assert frames.pair_f(*regions, 300) == 1.0


@pytest.mark.shared
def test_real_davis_masks_equal(native, davis2016_root):
    """Every frame of three real DAVIS 2016 val sequences against a published method's masks."""
    from vosbench.io.masks import read_mask

    compared = 0
    for sequence in ("bmx-trees", "dance-twirl", "kite-surf"):
        for gt_path in sorted((davis2016_root / "Annotations" / "480p" / sequence).glob("*.png")):
            pred_path = davis2016_root / "results" / "osvos" / sequence / gt_path.name
            g, p = read_mask(gt_path, binary=True), read_mask(pred_path, binary=True)
            radius = 8
            fast = frames.pair_f(*[frames.FrameRegions(x, None, radius, g.shape).get(1) for x in (g, p)], radius)
            slow = frames.pair_f(*[frames.FrameRegions(x, None, radius, g.shape).get(1) for x in (g, p)], radius,
                                 native=False)
            assert fast == slow, gt_path
            compared += 1
    assert compared > 150


def _boxes_by_definition(labels: np.ndarray) -> frames.LabelBoxes:
    """`label_boxes` from its definition: every pixel of every id, through np.nonzero."""
    boxes = {}
    for object_id in range(1, 256):
        ys, xs = np.nonzero(labels == object_id)
        if ys.size:
            boxes[object_id] = (int(ys.size), int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
    return frames.LabelBoxes(max(boxes, default=0), boxes)


def _label_map(seed: int, h: int, w: int) -> np.ndarray:
    """Rectangles of random ids (1..255) over background, some overwriting others, plus stray pixels:
    runs that start and end anywhere in the kernel's 8- and 64-byte steps."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(0, 6))):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        labels[y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = rng.choice([1, 2, 3, 200, 255])
    stray = rng.random((h, w)) < rng.choice([0.0, 0.001, 0.05])
    labels[stray] = rng.integers(1, 256, size=int(stray.sum()))
    return labels


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 300),
       st.sampled_from(["contiguous", "png-rows", "every-other-column"]))
def test_label_boxes_equal_their_definition(native, seed, h, w, kind):
    """Native and numpy/OpenCV `label_boxes` against counting every pixel: contiguous maps, the row-strided
    views decoded PNGs give (rows after a filter byte), and column-strided views."""
    labels = _label_map(seed, h, w)
    if kind == "png-rows":
        rows = np.zeros((h, w + 1), np.uint8)
        rows[:, 1:] = labels
        labels = rows[:, 1:]
    elif kind == "every-other-column":
        wide = np.zeros((h, 2 * w), np.uint8)
        wide[:, ::2] = labels
        labels = wide[:, ::2]
    expected = _boxes_by_definition(labels)
    assert frames.label_boxes(labels, native=True) == expected
    assert frames.label_boxes(labels, native=False) == expected


def test_label_boxes_of_empty_and_wrong_maps(native):
    for empty in (np.zeros((0, 7), np.uint8), np.zeros((5, 0), np.uint8), np.zeros((480, 854), np.uint8)):
        assert frames.label_boxes(empty) == frames.LabelBoxes(0, {})
        assert frames.label_boxes(empty, native=False) == frames.LabelBoxes(0, {})
    for wrong in (np.zeros((4, 4), bool), np.zeros((4, 4), np.int32), np.zeros((2, 2, 2), np.uint8)):
        for native_path in (True, False):
            with pytest.raises(ValueError):
                frames.label_boxes(wrong, native=native_path)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 120), st.booleans())
def test_frame_regions_from_boxes_equal_regions_of_whole_masks(native, seed, h, w, with_void):
    """The regions FrameRegions makes from `label_boxes` (box, pixel count, cropped pixels) equal those of
    each id's whole-frame mask, with and without void pixels."""
    labels = _label_map(seed, h, w)
    void = (np.random.default_rng(seed + 1).random((h, w)) < 0.2) if with_void else None
    regions = frames.FrameRegions(labels, void, 3, (h, w))
    for object_id in (0, 1, 2, 3, 200, 255, 256, -1):
        got = regions.get(object_id)
        whole = labels == object_id if 0 <= object_id <= 255 else np.zeros((h, w), bool)
        if void is not None:
            whole &= ~void
        expected = frames._Region(whole, 3)
        assert got.empty == expected.empty, object_id
        if not expected.empty:
            assert (got.box, got.n) == (expected.box, expected.n), object_id
            np.testing.assert_array_equal(got.mask, expected.mask)
