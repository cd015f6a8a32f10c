"""The evaluator: API tables, the cache that lets a run resume, lenient mode and the unsupervised matching."""
from __future__ import annotations

import itertools
import json
import logging

import numpy as np
import pandas as pd
import pytest

import vosbench
from vosbench.errors import ValidationError
from vosbench.metrics.reference import f_measure_reference, jaccard_reference

from tiny_davis import moving_boxes, write_davis, write_sequence


@pytest.fixture
def tiny(tmp_path):
    gt = {"alpha": moving_boxes(6, 24, 32, 2, seed=0), "beta": moving_boxes(5, 24, 32, 3, seed=1)}
    gt["beta"][:, 0, :] = 255  # a void row
    root = write_davis(tmp_path / "gt", gt)
    results = tmp_path / "res"
    preds = {}
    for name, masks in gt.items():
        pred = np.where(masks == 255, 0, masks)
        pred = np.roll(pred, 1, axis=2)  # a slightly wrong prediction
        preds[name] = pred
        write_sequence(results / name, pred)
    return root, results, gt, preds


def test_semi_tables_follow_the_definitions(tiny):
    root, results, gt, preds = tiny
    result = vosbench.evaluate(root, results, dataset="davis2017", cache=False)
    frame = result.per_frame
    assert list(frame.columns) == ["sequence", "object_id", "frame", "J", "F", "J&F"]
    # Semi-supervised: first and last frames are not scored.
    assert sorted(frame[frame.sequence == "alpha"].frame.unique()) == ["00001", "00002", "00003", "00004"]
    for row in frame.itertuples():
        t = int(row.frame)
        g, p = gt[row.sequence][t] == row.object_id, preds[row.sequence][t] == row.object_id
        assert row.J == jaccard_reference(g, p)  # void is not applied in the semi-supervised track
        assert row.F == f_measure_reference(g, p)
    per_object = result.per_object
    assert len(per_object) == 5 and list(result.per_sequence.Sequence)[:2] == ["alpha_1", "alpha_2"]
    glob = result.global_table
    assert glob["J-Mean"][0] == pytest.approx(per_object["J-Mean"].mean())
    assert glob["J&F-Mean"][0] == pytest.approx((glob["J-Mean"][0] + glob["F-Mean"][0]) / 2)


def test_write_outputs_and_json(tiny, tmp_path):
    root, results, *_ = tiny
    result = vosbench.evaluate(root, results, cache=False)
    paths = result.write(tmp_path / "out")
    assert {p.name for p in paths.values()} == {
        "global_results-val.csv", "per-sequence_results-val.csv", "per-object_results-val.csv",
        "per-frame_results-val.csv", "results-val.json"}
    data = json.loads(paths["json"].read_text())
    assert data["global"]["J-Mean"] == pytest.approx(result.summary["J-Mean"])
    assert "first and last frame excluded" in data["protocol_text"]
    assert pd.read_csv(paths["global"]).shape == (1, 7)


def test_cache_resumes_and_notices_changed_masks(tiny, caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("VOSBENCH_HOME", str(tmp_path / "home"))
    root, results, gt, preds = tiny
    first = vosbench.evaluate(root, results)
    assert any((tmp_path / "home" / "scores").iterdir())
    # The results folder itself is never written to.
    assert sorted(p.name for p in results.iterdir()) == ["alpha", "beta"]
    with caplog.at_level(logging.INFO, logger="vosbench"):
        again = vosbench.evaluate(root, results)
    assert "2 of 2 sequences reused" in caplog.text
    pd.testing.assert_frame_equal(first.per_frame, again.per_frame)
    # Change one mask: that sequence must be re-scored, never served stale from the cache.
    changed = preds["alpha"][2].copy()
    changed[:] = 0
    write_sequence(results / "alpha_tmp", changed[None])
    (results / "alpha_tmp" / "00000.png").replace(results / "alpha" / "00002.png")
    (results / "alpha_tmp").rmdir()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vosbench"):
        third = vosbench.evaluate(root, results)
    assert "1 of 2 sequences reused" in caplog.text
    row = third.per_frame.query("sequence == 'alpha' and frame == '00002'")
    assert (row.J == 0).all()


def test_lenient_mode_scores_what_it_can(tiny):
    root, results, *_ = tiny
    (results / "beta" / "00002.png").unlink()
    with pytest.raises(ValidationError, match="00002.png"):
        vosbench.evaluate(root, results, cache=False)
    result = vosbench.evaluate(root, results, cache=False, lenient=True)
    assert list(result.per_object.sequence.unique()) == ["alpha"]
    assert any("00002.png" in s for s in result.skipped)


def _brute_force_unsupervised(gt, pred, void, n_props):
    """All assignments of proposals to objects, best by summed mean J&F (tiny cases only)."""
    ids = range(1, int(gt[0][gt[0] != 255].max()) + 1)
    def score(p, o):
        js = [jaccard_reference(g == o, q == p, v) for g, q, v in zip(gt, pred, void)]
        fs = [f_measure_reference(g == o, q == p, v) for g, q, v in zip(gt, pred, void)]
        return (np.mean(js) + np.mean(fs)) / 2, js
    best = None
    for perm in itertools.permutations(range(1, n_props + 1), len(ids)):
        total = sum(score(p, o)[0] for p, o in zip(perm, ids))
        if best is None or total > best[0] + 1e-12:
            best = (total, perm)
    return {o: p for o, p in zip(ids, best[1])}


def test_unsupervised_matching_is_the_best_assignment(tmp_path):
    gt = moving_boxes(4, 20, 28, 2, seed=3)
    gt[:, -1, :] = 255
    root = write_davis(tmp_path / "gt", {"seq": gt})
    # Proposals with shuffled ids and one spurious proposal.
    pred = np.zeros_like(gt)
    pred[gt == 1] = 3
    pred[gt == 2] = 1
    pred[:, :3, :3] = 2
    write_sequence(tmp_path / "res" / "seq", pred)
    result = vosbench.evaluate(root, tmp_path / "res", track="unsupervised", cache=False)
    expected = _brute_force_unsupervised(gt, pred, gt == 255, n_props=3)
    obj = result.per_object
    assert dict(zip(obj.object_id, obj.proposal_id)) == expected
    # Rows follow proposal order, as the official toolkit writes them.
    assert list(obj.proposal_id) == sorted(obj.proposal_id)
    # All frames are scored, with void applied.
    assert result.per_frame.frame.nunique() == 4
    assert obj["J-Mean"].min() == pytest.approx(1.0)


def test_too_many_proposals_is_an_error(tmp_path):
    gt = moving_boxes(3, 20, 28, 1, seed=4)
    root = write_davis(tmp_path / "gt", {"seq": gt})
    pred = gt.copy()
    pred[:, 0, 0] = 21
    write_sequence(tmp_path / "res" / "seq", pred)
    with pytest.raises(vosbench.InputError, match="21"):
        vosbench.evaluate(root, tmp_path / "res", track="unsupervised", cache=False)
