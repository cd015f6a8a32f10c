"""The metric interface: registry, J/F/T as Metric classes through one runner, plug-in metrics in every table,
results folders holding other splits, and streaming (memory does not grow with the video)."""
from __future__ import annotations

import json
import shutil
import tracemalloc

import numpy as np
import pandas as pd
import pytest

import vosbench
from vosbench.errors import ValidationError, VosbenchError
from vosbench.io.factory import open_dataset
from vosbench.metrics.base import PerFrameMetric, SequenceInfo
from vosbench.metrics.registry import BUILTIN, get_metric, make_metrics, metric_names
from vosbench.tracks.evaluator import job_key
from vosbench.tracks.jobs import SequenceJob, score_sequence
from vosbench.tracks.params import EvalParams

from tiny_davis import moving_boxes, write_davis, write_sequence


@pytest.fixture
def tiny(tmp_path):
    gt = {"alpha": moving_boxes(8, 40, 48, 2, seed=0), "beta": moving_boxes(7, 40, 48, 3, seed=1)}
    root = write_davis(tmp_path / "gt", gt)
    results = tmp_path / "res"
    for name, masks in gt.items():
        pred = np.roll(masks, 2, axis=2)
        pred[3] = np.roll(pred[3], 3, axis=1)  # a jitter, so that T is not constant
        write_sequence(results / name, pred)
    return root, results


class ForegroundArea(PerFrameMetric):
    """A toy plug-in: the predicted area of each pair's id, per frame; per object its mean (lower is better)."""

    name = "area"
    fields = ("A",)
    columns = ("A-Mean",)
    lower_is_better = frozenset({"A-Mean"})

    def frame_values(self, info: SequenceInfo, frame):
        return {"A": np.array([frame.region("pred", p).n for _, p in info.pairs], dtype=np.float64)}

    def accumulate(self, values):
        return {"A-Mean": np.array([np.nanmean(row) for row in values["A"]])}

    def summarize(self, per_object, sequences):
        out = super().summarize(per_object, sequences)
        out["A-Total"] = float(np.sum(per_object["A-Mean"]))  # a global-only figure
        return out


def test_registry_lists_the_builtins_and_refuses_unknown_or_repeated_names():
    assert list(BUILTIN) == ["J", "F", "T", "mosev2", "lvos", "sav", "vost"]
    assert metric_names()[:7] == list(BUILTIN)
    assert get_metric("T").columns == ("T-Mean",)
    with pytest.raises(VosbenchError, match="unknown metric 'Q'"):
        get_metric("Q")
    with pytest.raises(VosbenchError, match="twice"):
        make_metrics("J,F,J")
    j, f = make_metrics("J,F", {"F": {"bound_th": 3}})
    assert f.options["bound_th"] == 3.0 and j.token()["options"] == {}  # the Decay rule is a summary option


def test_jf_t_in_one_pass_equal_jf_alone_and_t_of_the_leaderboard(tiny, tmp_path):
    from vosbench.reports.temporal_scores import results_t

    root, results = tiny
    alone = vosbench.evaluate(root, results, cache=False)
    both = vosbench.evaluate(root, results, cache=False, metrics="J,F,T")
    assert both.measures == ["J", "F", "T"] and alone.measures == ["J", "F"]
    pd.testing.assert_frame_equal(alone.per_object, both.per_object.drop(columns=["T-Mean"]))
    assert list(both.global_table.columns) == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall",
                                               "F-Decay", "T-Mean"]
    t_scores = results_t(open_dataset("davis2017", root), results, cache=False)
    for seq in t_scores:
        ours = both.per_object[both.per_object.sequence == seq.sequence]
        np.testing.assert_allclose(ours["T-Mean"].to_numpy(), seq.means, rtol=0, atol=1e-12)
        frames = next(s for s in both.sequences if s.sequence == seq.sequence)
        np.testing.assert_array_equal(frames.values["T"], seq.per_frame)
    from vosbench.reports.temporal_scores import t_mean

    assert both.summary["T-Mean"] == pytest.approx(t_mean(t_scores), abs=1e-12)
    paths = both.write(tmp_path / "out")
    assert "T-Mean" in paths["global"].read_text().splitlines()[0]
    assert list(pd.read_csv(paths["per_frame"]).columns) == ["sequence", "object_id", "frame", "J", "F", "T", "J&F"]


def test_t_counted_sequences_decide_the_global_t_only(tiny):
    root, results = tiny
    result = vosbench.evaluate(root, results, cache=False, metrics="J,F,T",
                               metric_options={"T": {"counted_sequences": ["beta"]}})
    per_object = result.per_object
    assert result.summary["T-Mean"] == pytest.approx(per_object[per_object.sequence == "beta"]["T-Mean"].mean())


def test_a_plugin_metric_reaches_every_table_and_the_cache(tiny, tmp_path):
    root, results = tiny
    cache = tmp_path / "cache"
    result = vosbench.evaluate(root, results, metrics=["J", "F", ForegroundArea()], cache=cache)
    per_object = result.per_object
    assert list(per_object.columns)[4:] == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall",
                                            "F-Decay", "A-Mean"]
    # The predicted area of alpha's object 1 in the scored frames (first and last left out).
    pred = np.stack([vosbench.io.read_mask(results / "alpha" / f"{t:05d}.png") for t in range(1, 7)])
    assert per_object.loc[0, "A-Mean"] == pytest.approx(np.mean((pred == 1).sum(axis=(1, 2))))
    assert result.summary["A-Total"] == pytest.approx(per_object["A-Mean"].sum())
    assert "A-Mean" in result.per_sequence.columns
    assert json.loads(json.dumps(result.to_dict()))["measures"] == ["J", "F", "area"]
    from vosbench.reports.leaderboard import display_table, row_from_result

    row = row_from_result("toy", result, source="this run")
    assert row["A-Mean"] == pytest.approx(result.summary["A-Mean"]) and row["J-Mean"] == result.summary["J-Mean"]
    shown = display_table(pd.DataFrame([row]))
    assert shown.loc[0, "A-Mean"] == f"{result.summary['A-Mean']:.3f}" and "A-Total" in shown.columns
    # Scored again from the cache: nothing recomputed, the same numbers.
    again = vosbench.evaluate(root, results, metrics=["J", "F", ForegroundArea()], cache=cache)
    pd.testing.assert_frame_equal(again.per_object, per_object)
    assert len(list(cache.glob("*.npz"))) == 2


def test_without_a_cache_no_mask_is_hashed(tiny, monkeypatch):
    from vosbench.tracks import evaluator

    def refuse(*args, **kwargs):
        raise AssertionError("a job key was computed although no cache is used")

    monkeypatch.setattr(evaluator, "job_key", refuse)
    root, results = tiny
    vosbench.evaluate(root, results, cache=False)


def test_cache_key_changes_with_the_metrics_and_their_options(tiny):
    root, results = tiny
    ds = open_dataset("davis2017", root)
    from vosbench.tracks.validate import build_jobs

    job = build_jobs(ds, results, EvalParams()).jobs[0]
    keys = {job_key(job, make_metrics("J,F")), job_key(job, make_metrics("J,F,T")),
            job_key(job, make_metrics("J,F", {"F": {"bound_th": 2}}))}
    assert len(keys) == 3
    assert job_key(job, make_metrics("J,F")) == job_key(job, make_metrics("J,F", {"J": {"decay_uint8_ids": True}}))


def test_two_metrics_with_one_column_are_refused(tiny):
    class Clash(ForegroundArea):
        name = "clash"
        fields = ("J",)

    root, results = tiny
    with pytest.raises(VosbenchError, match="field"):
        vosbench.evaluate(root, results, metrics=["J", "F", Clash()], cache=False)


def test_unsupervised_without_j_and_f_is_refused(tiny):
    root, results = tiny
    with pytest.raises(VosbenchError, match="J and F"):
        vosbench.evaluate(root, results, track="unsupervised", metrics=["J"], cache=False)


@pytest.mark.shared
def test_other_splits_are_ignored_with_a_note_and_unknown_names_refused(davis2016_root, tmp_path):
    results = tmp_path / "osvos"
    shutil.copytree(davis2016_root / "results" / "osvos", results)
    # A train sequence, as a published result of the whole dataset ships it (its ground truth stands in).
    shutil.copytree(davis2016_root / "Annotations" / "480p" / "bear", results / "bear")
    shutil.copytree(davis2016_root / "Annotations" / "480p" / "bmx-bumps", results / "bmx-bumps")
    result = vosbench.evaluate(davis2016_root, results, dataset="davis2016", cache=False)
    plain = vosbench.evaluate(davis2016_root, davis2016_root / "results" / "osvos", dataset="davis2016", cache=False)
    pd.testing.assert_frame_equal(result.global_table, plain.global_table)
    assert len(result.notes) == 1 and "train: bear, bmx-bumps" in result.notes[0]
    assert "bear" in result.format_table() and not result.skipped
    (results / "not-a-davis-sequence").mkdir()
    with pytest.raises(ValidationError, match="not-a-davis-sequence"):
        vosbench.evaluate(davis2016_root, results, dataset="davis2016", cache=False)


def _long_job(tmp_path, n_frames: int) -> SequenceJob:
    masks = moving_boxes(n_frames, 120, 160, 3, seed=2)
    gt_dir, pred_dir = tmp_path / f"gt{n_frames}", tmp_path / f"pred{n_frames}"
    write_sequence(gt_dir, masks)
    write_sequence(pred_dir, np.roll(masks, 1, axis=1))
    frames = tuple(f"{t:05d}" for t in range(n_frames))
    return SequenceJob("long", frames, tuple(gt_dir / f"{f}.png" for f in frames),
                       tuple(pred_dir / f"{f}.png" for f in frames), binary=False, params=EvalParams())


def test_scoring_streams_frames_memory_does_not_grow_with_the_video(tmp_path):
    """A video 8 times longer does not hold 8 times the masks: the peak is a few frames plus the scores."""
    peaks = {}
    for n_frames in (40, 320):
        job = _long_job(tmp_path, n_frames)
        score_sequence(job)  # warm-up: imports, caches
        tracemalloc.start()
        scores = score_sequence(job)
        peaks[n_frames] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert scores.j.shape == (3, n_frames)
    frame_bytes = 120 * 160
    # Whole-video stacks of gt and prediction would add 2 * 280 frames between the two runs.
    assert peaks[320] - peaks[40] < 20 * frame_bytes, peaks


def test_cli_metrics_option(tiny, tmp_path, caplog):
    from vosbench.cli import main

    root, results = tiny
    out = tmp_path / "out"
    assert main(["evaluate", "--gt", str(root), "--results", str(results), "--metrics", "J,F,T", "--no-cache",
                 "--no-progress", "--out", str(out)]) == 0
    table = pd.read_csv(out / "global_results-val.csv")
    assert list(table.columns) == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay",
                                   "T-Mean"]
    status = main(["evaluate", "--gt", str(root), "--results", str(results), "--metrics", "J,Q", "--no-cache",
                   "--no-progress", "--out", str(tmp_path / "out2")])
    assert status != 0 and "unknown metric 'Q'" in caplog.text
    assert not (tmp_path / "out2").exists()


def test_unsupervised_t_is_the_matched_proposals_t(tiny):
    from vosbench.io.masks import read_mask
    from vosbench.metrics.temporal import temporal_stability

    root, results = tiny
    result = vosbench.evaluate(root, results, track="unsupervised", metrics="J,F,T", cache=False)
    assert not result.params.skip_first_last  # DAVIS 2017 unsupervised: every frame
    for row in result.per_object.itertuples():
        names = sorted(p.stem for p in (results / row.sequence).glob("*.png"))
        pred = np.stack([read_mask(results / row.sequence / f"{n}.png") for n in names])
        gt0 = read_mask(root / "Annotations" / "480p" / row.sequence / f"{names[0]}.png")
        expected = temporal_stability(pred == row.proposal_id, first_reference=gt0 == row.object_id,
                                      exclude_ends=False)
        assert result.per_object.loc[row.Index, "T-Mean"] == pytest.approx(expected.mean, abs=1e-12, nan_ok=True)


def test_a_sequence_without_objects_scores_nothing_in_either_track(tmp_path):
    gt = {"empty": np.zeros((5, 20, 24), np.uint8), "full": moving_boxes(5, 20, 24, 1, seed=3)}
    root = write_davis(tmp_path / "gt", gt)
    for name, masks in gt.items():
        write_sequence(tmp_path / "res" / name, masks)
    for track in ("semi", "unsupervised"):
        result = vosbench.evaluate(root, tmp_path / "res", track=track, metrics="J,F,T", cache=False)
        assert list(result.per_object.sequence) == ["full"]
        assert result.summary["J-Mean"] == 1.0 and result.per_object.loc[0, "n_frames"] == (3 if track == "semi" else 5)


def test_tidy_tables_carry_every_measure_of_the_run(tiny, tmp_path):
    from vosbench.reports.tables import tidy_per_frame_table, tidy_result
    from vosbench.reports.temporal_scores import results_t, tidy_t

    root, results = tiny
    jf = vosbench.evaluate(root, results, cache=False)
    jft = vosbench.evaluate(root, results, cache=False, metrics="J,F,T")
    tidy = tidy_result(jft, "m")
    pd.testing.assert_frame_equal(tidy[tidy.measure != "T"].reset_index(drop=True), tidy_result(jf, "m"))
    expected_t = tidy_t(results_t(open_dataset("davis2017", root), results, cache=False), "m")
    got_t = tidy[tidy.measure == "T"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got_t[["sequence", "object", "frame", "value"]].astype({"object": "int64"}),
                                  expected_t[["sequence", "object", "frame", "value"]].astype({"object": "int64"}),
                                  check_dtype=False)
    paths = jft.write(tmp_path / "out")
    from_csv = tidy_per_frame_table(pd.read_csv(paths["per_frame"], dtype={"frame": str}), "m")
    assert set(from_csv.measure) == {"J", "F", "J&F", "T"}
    assert len(from_csv[from_csv.measure == "T"]) == len(got_t)
