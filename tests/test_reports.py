"""The report API: tidy frames, pivots, significance, attributes, pictures, interactive tables, HTML."""
from __future__ import annotations

import base64
import html.parser
import io
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import vosbench
from vosbench import reports
from vosbench.io import DAVIS_PALETTE
from vosbench.io.factory import open_dataset
from vosbench.reports import plots
from vosbench.reports.attributes import attribute_names, attribute_table, jf_per_attribute, read_db_info
from vosbench.reports.sessions import InteractiveRun, interaction_table, interactive_tidy
from vosbench.reports.tables import (compare, frame_table, load_run, load_runs, sequence_table,
                                     significance, summary_table, tidy_result)
from tiny_davis import moving_boxes, write_davis, write_sequence

N_FRAMES = 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A DAVIS 2017-layout dataset of 4 sequences with frames, and two methods' result folders."""
    root = tmp_path_factory.mktemp("tiny")
    gt = {f"seq{k}": moving_boxes(N_FRAMES, 48, 64, n_objects=1 + k % 3, seed=k) for k in range(4)}
    write_davis(root / "gt", gt)
    rng = np.random.default_rng(0)
    for name in gt:
        folder = root / "gt" / "JPEGImages" / "480p" / name
        folder.mkdir(parents=True)
        for t in range(N_FRAMES):
            cv2.imwrite(str(folder / f"{t:05d}.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    for method, shift in (("good", 1), ("poor", 4)):
        for name, masks in gt.items():
            # Shifting the ground truth gives a method whose error grows with the shift.
            write_sequence(root / method / name, np.roll(masks, shift, axis=2))
    return root


@pytest.fixture(scope="module")
def results(tiny):
    return {m: vosbench.evaluate(tiny / "gt", tiny / m, dataset="davis2017", cache=False) for m in ("good", "poor")}


@pytest.fixture(scope="module")
def tidy(results):
    return load_runs(results)


def test_tidy_frame_has_one_row_per_object_frame_and_measure(tidy, results):
    assert list(tidy.columns) == reports.TIDY_COLUMNS
    for method, result in results.items():
        n_scored = len(result.per_frame)
        assert (tidy["method"] == method).sum() == 3 * n_scored
        jf = tidy[(tidy["method"] == method) & (tidy["measure"] == "J&F")]["value"].to_numpy()
        np.testing.assert_allclose(np.sort(jf), np.sort(result.per_frame["J&F"].to_numpy()))


def test_summary_from_tidy_equals_the_evaluators_global_table(tidy, results):
    summary = summary_table(tidy)
    for method, result in results.items():
        for column, value in result.summary.items():
            assert summary.loc[method, column] == pytest.approx(value, abs=1e-12), column
    assert list(summary.index) == ["good", "poor"]  # best J&F first


def test_sequence_table_is_the_mean_over_objects_of_the_official_per_object_means(tidy, results):
    table = sequence_table(tidy)
    per_object = results["poor"].per_object
    expected = per_object.groupby("sequence")["J&F-Mean"].mean()
    pd.testing.assert_series_equal(table["poor"].sort_index(), expected.sort_index(), check_names=False)


def test_per_frame_csv_reloads_to_the_same_tidy_frame(tiny, results, tmp_path):
    results["good"].write(tmp_path / "run")
    (tmp_path / "run" / "run.json").write_text(json.dumps({"method": "good"}))
    reloaded = load_run(tmp_path / "run")
    direct = tidy_result(results["good"], "good")
    key = ["sequence", "object", "frame", "measure"]
    a = reloaded.sort_values(key).reset_index(drop=True)
    b = direct.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key + ["method"]], b[key + ["method"]])
    np.testing.assert_allclose(a["value"], b["value"], atol=1e-6)  # the CSV keeps 6 decimals


def test_masks_folder_is_scored_when_ground_truth_is_given(tiny, tidy):
    frame = load_run(tiny / "poor", gt=tiny / "gt", dataset="davis2017", cache=False)
    assert set(frame["method"]) == {"poor"}
    assert summary_table(frame).loc["poor", "J-Mean"] == pytest.approx(summary_table(tidy).loc["poor", "J-Mean"])
    with pytest.raises(vosbench.InputError, match="no ground truth"):
        load_run(tiny / "poor")


def test_frame_table_and_compare(tidy):
    curve = frame_table(tidy, "seq0", "J")
    assert list(curve.columns) == ["good", "poor"] and curve.index.is_monotonic_increasing
    assert len(curve) == N_FRAMES - 2  # first and last frame are not scored
    diff = compare(tidy, "good", "poor")
    np.testing.assert_allclose(diff["difference"], diff["good"] - diff["poor"])
    assert diff["difference"].is_monotonic_decreasing


def test_significance_of_a_constant_gain_and_of_no_difference():
    rows = []
    for k in range(12):
        base = 0.3 + 0.04 * k
        for method, value in (("a", base + 0.05), ("b", base), ("c", base)):
            rows.append({"method": method, "sequence": f"s{k}", "object": 1, "frame": 1, "measure": "J&F",
                         "value": value})
    tidy = pd.DataFrame(rows)
    better = significance(tidy, "a", "b")
    assert better.n_sequences == 12 and better.wins == 12 and better.losses == 0
    assert better.mean_difference == pytest.approx(0.05)
    assert better.wilcoxon_p < 0.01 and better.ci_low == pytest.approx(0.05) == pytest.approx(better.ci_high)
    worse = significance(tidy, "b", "a")
    assert worse.mean_difference == pytest.approx(-0.05) and worse.wilcoxon_p == pytest.approx(better.wilcoxon_p)
    same = significance(tidy, "b", "c")
    assert same.ties == 12 and np.isnan(same.wilcoxon_p)
    assert "12 better" in str(better)


def test_significance_is_reproducible_with_a_seed(tidy):
    a = significance(tidy, "good", "poor", seed=3)
    b = significance(tidy, "good", "poor", seed=3)
    assert a == b


def test_shipped_attribute_table_matches_db_info(davis2016_root):
    shipped = attribute_table("davis2016")
    from_yaml = read_db_info(davis2016_root / "db_info.yml")
    assert len(shipped) == 50 and set(shipped.index) == set(from_yaml.index)
    for code in attribute_names():
        assert (shipped[code] == from_yaml.loc[shipped.index, code].astype(bool)).all(), code
    assert (shipped["eval_t"] == from_yaml.loc[shipped.index, "eval_t"].astype(bool)).all()
    assert (shipped["set"] == from_yaml.loc[shipped.index, "set"]).all()
    assert sorted(shipped.index[shipped["set"] == "val"]) == sorted(
        open_dataset("davis2016", davis2016_root).sequence_names())
    # DAVIS 2017 repeats the DAVIS 2016 attributes for the sequences they share.
    d17 = attribute_table("davis2017")
    assert set(d17.index) == set(shipped.index)
    assert (d17.loc[shipped.index, list(attribute_names())] == shipped[list(attribute_names())]).all().all()


def test_jf_per_attribute_averages_the_sequences_carrying_each_attribute():
    table = attribute_table("davis2016", split="val")
    rng = np.random.default_rng(1)
    values = {seq: float(v) for seq, v in zip(table.index, rng.uniform(0, 1, len(table)))}
    tidy = pd.DataFrame([{"method": "m", "sequence": s, "object": 1, "frame": f, "measure": "J&F",
                          "value": v + (0.1 if f == 2 else -0.1)} for s, v in values.items() for f in (1, 2)])
    result = jf_per_attribute(tidy, "davis2016")
    for code in attribute_names():
        carrying = [s for s in table.index if table.at[s, code]]
        if not carrying:
            assert code not in result.index
            continue
        assert result.at[code, "m"] == pytest.approx(np.mean([values[s] for s in carrying]))
        assert result.at[code, "n_sequences"] == len(carrying)
    assert result.at["all", "m"] == pytest.approx(np.mean(list(values.values())))


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def test_every_picture_is_a_png(tiny, tidy, tmp_path):
    table = pd.DataFrame({"name": ["Occlusion", "all sequences"], "good": [0.8, 0.9], "poor": [0.5, 0.6],
                          "n_sequences": [2, 4]}, index=pd.Index(["OCC", "all"], name="attribute"))
    dataset = open_dataset("davis2017", tiny / "gt")
    figures = {
        "bars": plots.sequence_bars(tidy),
        "curve": plots.frame_curve(tidy, "seq1", "J"),
        "attributes": plots.attribute_bars(table),
        "interactive": plots.interactive_curves({"a": {"time": [0, 10, 60], "J_AND_F": [0, 0.5, 0.6]},
                                                 "b": ([0, 30, 60], [0, 0.7, 0.7])}),
        "overlay": plots.overlay_figure(dataset, "seq2", 3, {m: tiny / m for m in ("good", "poor")}),
    }
    for name, fig in figures.items():
        path = plots.save_png(fig, tmp_path / f"{name}.png")
        width, height = _png_size(path.read_bytes())
        assert width > 200 and height > 150, name
    # A curve of methods the frame does not hold is a clear error.
    with pytest.raises(KeyError, match="nope"):
        plots.frame_curve(tidy, "seq1", methods=["nope"])


def test_overlay_blends_each_object_with_its_palette_colour():
    image = np.full((40, 50, 3), 100, np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    mask[5:20, 5:20] = 1
    mask[22:35, 25:45] = 2
    mask[0:3, 40:50] = 255
    out = plots.overlay(image, mask, alpha=0.5, contour_thickness=2)
    for object_id, (r, c) in ((1, (12, 12)), (2, (28, 35))):
        expected = np.round(100 * 0.5 + DAVIS_PALETTE[object_id] * 0.5)
        np.testing.assert_array_equal(out[r, c], expected)
    np.testing.assert_array_equal(out[1, 45], image[1, 45])     # void is not drawn
    np.testing.assert_array_equal(out[38, 2], image[38, 2])     # background is not drawn
    np.testing.assert_array_equal(out[5, 12], DAVIS_PALETTE[1])  # outline in the object's colour
    with pytest.raises(ValueError):
        plots.overlay(image, mask[:10])


def test_interaction_table_and_last_interaction_scores():
    rows = []
    for interaction, timing in ((1, 2.0), (2, 3.0)):
        for obj in (1, 2):
            for frame in range(4):
                j = 0.4 + 0.2 * interaction + 0.05 * obj
                rows.append({"session_id": "s", "sequence": "seq", "scribble_idx": 1, "interaction": interaction,
                             "object_id": obj, "frame": frame, "jaccard": j, "contour": j - 0.1,
                             "j_and_f": j - 0.05, "timing": timing})
    run = InteractiveRun("m", pd.DataFrame(rows), {"auc": 0.5, "metric_at_threshold": {"J_AND_F": 0.6},
                                                   "curve": {"time": [0, 2, 5], "J_AND_F": [0, 0.7, 0.9]}})
    table = interaction_table(run)
    assert table.loc[1, "mean"] == pytest.approx(np.mean([0.4 + 0.2 + 0.05 * o - 0.05 for o in (1, 2)]))
    assert table.loc[2, "mean cumulative time (s)"] == pytest.approx(5.0)
    last = interactive_tidy(run)
    assert set(last["measure"]) == {"J", "F", "J&F"}
    assert last[last["measure"] == "J"]["value"].max() == pytest.approx(0.4 + 0.4 + 0.1)


class _PageChecker(html.parser.HTMLParser):
    VOID = {"meta", "link", "img", "br", "hr", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.images, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            value = attrs.get(key)
            if value is not None and not value.startswith("data:"):
                self.errors.append(f"external reference {key}={value[:60]}")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def check_page(text: str) -> _PageChecker:
    checker = _PageChecker()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors
    assert not checker.stack, f"unclosed tags {checker.stack}"
    assert "script" not in checker.tags
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        _png_size(base64.b64decode(src.split(",", 1)[1]))
    return checker


def test_html_report_is_one_self_contained_well_formed_page(tidy, tmp_path):
    from vosbench.reports.leaderboard import Source, row_from_summary

    board = pd.DataFrame([row_from_summary("published <x>", {"J-Mean": 0.5, "F-Mean": 0.6}, source=Source.PUBLISHED)])
    path = reports.write_html_report(tidy, tmp_path / "out", leaderboard=board, attributes=None,
                                     interactive={"robot": {"time": [0, 5, 60], "J_AND_F": [0, 0.5, 0.7]}})
    text = path.read_text(encoding="utf-8")
    checker = check_page(text)
    assert len(checker.images) == 3  # per-sequence bars, J over time, interactive curve (no attributes here)
    assert "published &lt;x&gt;" in text and "published figures, quoted" in text
    assert "Paired comparisons" in text and "good" in text and "poor" in text


def test_report_cli_writes_the_page(tiny, results, tmp_path):
    from vosbench.cli import main

    results["good"].write(tmp_path / "good")
    status = main(["report", str(tmp_path / "good"), f"worse={tiny / 'poor'}", "--gt", str(tiny / "gt"),
                   "--dataset", "davis2017", "--html", str(tmp_path / "page")])
    assert status == 0
    text = (tmp_path / "page" / "index.html").read_text()
    check_page(text)
    assert "worse" in text and "good" in text


def test_t_is_averaged_over_the_sequences_asked_for():
    rows = [("m", s, 1, f, "T", v) for s, v in (("kept", 0.2), ("dropped", 0.8)) for f in (2, 3)]
    rows += [("m", s, 1, f, measure, 0.5) for s in ("kept", "dropped") for f in (1, 2, 3) for measure in ("J", "F")]
    tidy = pd.DataFrame(rows, columns=reports.TIDY_COLUMNS)
    assert summary_table(tidy).loc["m", "T-Mean"] == pytest.approx(0.5)
    assert summary_table(tidy, t_sequences=["kept"]).loc["m", "T-Mean"] == pytest.approx(0.2)
    assert summary_table(tidy, t_sequences=["kept"]).loc["m", "J-Mean"] == pytest.approx(0.5)


def test_results_t_per_object_cached_and_recomputed_when_a_mask_changes(tiny, tmp_path, monkeypatch):
    from vosbench.io import read_mask_stack, write_mask
    from vosbench.metrics.temporal import temporal_stability
    from vosbench.reports import temporal_scores

    dataset = open_dataset("davis2017", tiny / "gt")
    results = tmp_path / "poor"
    import shutil

    shutil.copytree(tiny / "poor", results)
    cache = tmp_path / "cache"
    scores = temporal_scores.results_t(dataset, results, sequences=["seq2"], cache=cache)
    (seq,) = scores
    names = dataset.frame_names("seq2")
    masks = read_mask_stack([results / "seq2" / f"{n}.png" for n in names])
    gt0 = dataset.read_annotation("seq2", names[0])
    assert seq.object_ids == [1, 2, 3]
    for k, object_id in enumerate(seq.object_ids):
        expected = temporal_stability(masks == object_id, first_reference=gt0 == object_id)
        np.testing.assert_array_equal(seq.per_frame[k], expected.per_frame)
        assert seq.means[k] == pytest.approx(expected.mean)

    def refuse(job):
        raise AssertionError(f"{job.sequence} recomputed although its masks did not change")

    monkeypatch.setattr(temporal_scores, "_compute", refuse)
    (again,) = temporal_scores.results_t(dataset, results, sequences=["seq2"], cache=cache)
    np.testing.assert_array_equal(again.per_frame, seq.per_frame)
    write_mask(results / "seq2" / f"{names[4]}.png", np.zeros_like(masks[4]))
    with pytest.raises(AssertionError, match="recomputed"):
        temporal_scores.results_t(dataset, results, sequences=["seq2"], cache=cache)


def test_results_t_names_a_missing_mask(tiny, tmp_path):
    import shutil

    from vosbench.reports.temporal_scores import results_t

    shutil.copytree(tiny / "good", tmp_path / "good")
    (tmp_path / "good" / "seq1" / "00005.png").unlink()
    with pytest.raises(vosbench.InputError, match="00005.png"):
        results_t(open_dataset("davis2017", tiny / "gt"), tmp_path / "good", cache=False)
