"""The helpers framework scripts import, in their vosbench homes, against the framework's own answers.

``fixtures/interactive/helpers_official.npz``: davisinteractive 1.0.4's ``scribbles2mask``,
``scribbles2points``, ``annotated_frames_object``, ``bresenham``, ``batched_jaccard`` and
``batched_f_measure`` on the challenges' stack (made by make_helpers_fixture.py), on the real
scribble files of ../shared and on generated inputs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vosbench.interactive import (annotated_frames_object, batched_f_measure, batched_jaccard, bresenham,
                                  scribbles2mask, scribbles2points, utils)

FIXTURE = Path(__file__).parent / "fixtures" / "interactive" / "helpers_official.npz"


@pytest.fixture(scope="module")
def official():
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.shared
def test_scribbles2mask_points_and_frames_on_real_scribbles(official, davis_interactive_root):
    for k, name in enumerate(official["names"]):
        data = json.loads((davis_interactive_root / "Scribbles" / str(name)).read_text())
        for size_name, size in (("full", (480, 854)), ("small", (37, 53))):
            for variant, kwargs in (("lines", {}), ("points", {"bresenham": False}),
                                    ("bezier", {"bezier_curve_sampling": True, "nb_points": 50})):
                got = scribbles2mask(data, size, **kwargs)
                np.testing.assert_array_equal(got, official[f"mask_{k}_{size_name}_{variant}"],
                                              err_msg=f"{name} {size_name} {variant}")
        points, ids = scribbles2points(data, output_resolution=(480, 854))
        np.testing.assert_array_equal(points, official[f"points_{k}"])
        np.testing.assert_array_equal(ids, official[f"point_ids_{k}"])
        assert annotated_frames_object(data, 1) == official[f"frames_obj1_{k}"].tolist()


def test_bresenham(official):
    for k in range(30):
        np.testing.assert_array_equal(bresenham(official[f"bres_in_{k}"]), official[f"bres_out_{k}"])
    assert utils.operations.bresenham is bresenham


def test_batched_metrics(official):
    gt, pred = official["metric_gt"], official["metric_pred"]
    np.testing.assert_allclose(batched_jaccard(gt, pred, average_over_objects=False, nb_objects=3),
                               official["jaccard"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(batched_jaccard(gt, pred), official["jaccard_mean"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(batched_f_measure(gt, pred, average_over_objects=False, nb_objects=3),
                               official["f_measure"], rtol=0, atol=1e-15)
    with pytest.raises(ValueError):
        batched_jaccard(gt, pred[:2])
