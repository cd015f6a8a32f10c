"""The fast J/F kernels against slow, obviously-correct references on random masks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vosbench.metrics import decay, f_measure, jaccard, mean, object_frame_scores, recall, seg2bmap
from vosbench.metrics.reference import f_measure_reference, jaccard_reference, seg2bmap_reference
from vosbench.metrics.statistics import decay_bin_edges


@st.composite
def mask_pairs(draw):
    h = draw(st.integers(2, 24))
    w = draw(st.integers(2, 24))
    shape = (h, w)
    gt = draw(arrays(bool, shape))
    pred = draw(arrays(bool, shape))
    void = draw(st.one_of(st.none(), arrays(bool, shape)))
    # Also solid rectangles, which random pixels rarely produce.
    if draw(st.booleans()):
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        gt = np.zeros(shape, bool)
        gt[y0:, x0:] = True
    bound_th = draw(st.sampled_from([0.008, 0.05, 0.2, 1, 2]))
    return gt, pred, void, bound_th


@settings(max_examples=300, deadline=None)
@given(mask_pairs())
def test_fast_equals_reference(case):
    gt, pred, void, bound_th = case
    assert np.array_equal(seg2bmap(gt), seg2bmap_reference(gt))
    assert float(jaccard(gt, pred, void)) == jaccard_reference(gt, pred, void)
    assert f_measure(gt, pred, void, bound_th=bound_th) == f_measure_reference(gt, pred, void, bound_th=bound_th)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_sequence_kernel_equals_per_frame_reference(n_frames, n_objects, seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(3, 30, 2)
    gt = rng.integers(0, n_objects + 1, (n_frames, h, w)).astype(np.uint8)
    pred = rng.integers(0, n_objects + 1, (n_frames, h, w)).astype(np.uint8)
    gt[:, : h // 3] = 0  # some large background so boundaries are not everywhere
    void = rng.random((n_frames, h, w)) < 0.1
    ids = list(range(1, n_objects + 1))
    j, f = object_frame_scores(gt, pred, ids, void=void)
    for k, obj in enumerate(ids):
        for t in range(n_frames):
            assert j[k, t] == jaccard_reference(gt[t] == obj, pred[t] == obj, void[t])
            assert f[k, t] == f_measure_reference(gt[t] == obj, pred[t] == obj, void[t])


def test_empty_masks_score_one_and_one_sided_scores_zero():
    empty = np.zeros((10, 10), bool)
    full = np.zeros((10, 10), bool)
    full[2:5, 2:5] = True
    assert float(jaccard(empty, empty)) == 1.0 and f_measure(empty, empty) == 1.0
    assert float(jaccard(full, empty)) == 0.0 and f_measure(full, empty) == 0.0


def test_image_border_is_never_boundary():
    full = np.ones((6, 7), bool)
    assert not seg2bmap(full).any()


def test_statistics_definitions():
    values = np.array([0.9, 0.4, 0.6, 0.5, np.nan, 0.2])
    assert mean(values) == pytest.approx(np.nanmean(values))
    # NaN frames count in the denominator of Recall, as in the official code.
    assert recall(values) == pytest.approx(2 / 6)
    ids = decay_bin_edges(len(values))
    # round(linspace(1, 6, 5) + 1e-10) - 1: 3.5 rounds up thanks to the 1e-10.
    assert ids.tolist() == [0, 1, 3, 4, 5]
    # Bins share endpoints: [0:2], [1:4], [3:5], [4:6].
    expected = np.nanmean(values[0:2]) - np.nanmean(values[4:6])
    assert decay(values) == pytest.approx(expected)


def test_decay_past_256_frames_is_defined_and_official_bug_reproducible():
    values = np.linspace(1.0, 0.0, 300)
    assert np.isfinite(decay(values))
    # The official uint8 bin edges wrap past 256 frames and misplace the last bin.
    wrapped = decay_bin_edges(300, uint8_ids=True)
    assert wrapped.dtype == np.uint8 and wrapped[-1] != 299
    # ...which turns the official Decay into NaN.
    assert np.isnan(decay(values, uint8_ids=True))
