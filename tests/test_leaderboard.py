"""Leaderboard files: rows upserted by `vosbench run`, published masks rebuilt into the official table."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from vosbench.errors import InputError
from vosbench.reports.leaderboard import (COLUMNS, Source, leaderboard_paths, read_leaderboard, record_run,
                                          update_leaderboard)
from vosbench.tracks import EvalParams, Result, SequenceScores


def make_result(j_values: list[list[float]], seed: int = 0) -> Result:
    """A Result of one object per sequence with the given per-frame J (F = J - 0.1)."""
    sequences = []
    for k, values in enumerate(j_values):
        j = np.asarray([values], dtype=float)
        sequences.append(SequenceScores(sequence=f"seq{k}", frames=[f"{t:05d}" for t in range(j.shape[1])],
                                        object_ids=[1], j=j, f=j - 0.1))
    return Result(sequences, EvalParams(), dataset="synthetic", split="val")


@dataclass
class FakeRecord:
    method: str = "flow-warp"
    track: str = "semi"
    dataset: str = "synthetic"
    split: str = "val"
    resolution: str = "480p"
    device: str = "cpu"
    n_sequences: int = 2
    n_frames: int = 8
    n_objects: int = 2
    seconds: float = 4.0
    seconds_per_frame: float = 0.5
    masks_dir: str = "runs/x/masks"
    started: str = "2026-01-01T00:00:00+00:00"
    vosbench_version: str = "0.1.0"
    options: dict = field(default_factory=dict)
    dataset_identity: dict = field(default_factory=dict)


def test_record_run_writes_three_files_with_the_measured_figures(tmp_path):
    result = make_result([[0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5]])
    md = record_run(FakeRecord(), result, tmp_path)
    paths = leaderboard_paths(tmp_path, "synthetic", "val", "semi")
    assert md == paths["md"]
    assert all(p.is_file() for p in paths.values())
    table = read_leaderboard(paths["json"])
    assert len(table) == 1
    row = table.iloc[0]
    assert row["source"] == Source.THIS_RUN.value
    assert row["method"] == "flow-warp"
    for column in ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]:
        assert row[column] == pytest.approx(result.summary[column])
    assert row["seconds_per_frame"] == 0.5 and row["device"] == "cpu"
    csv = pd.read_csv(paths["csv"])
    assert list(csv.columns) == COLUMNS
    assert csv.loc[0, "J-Mean"] == pytest.approx(result.summary["J-Mean"], abs=1e-5)
    text = md.read_text()
    assert "flow-warp" in text and "this run" in text and f"{result.summary['J&F-Mean']:.3f}" in text


def test_record_run_upserts_by_method_and_options(tmp_path):
    record_run(FakeRecord(), make_result([[0.2, 0.2, 0.2]]), tmp_path)
    record_run(FakeRecord(options={"size": 64}), make_result([[0.4, 0.4, 0.4]]), tmp_path)
    record_run({**FakeRecord().__dict__, "method": "other"}, make_result([[0.3, 0.3, 0.3]]), tmp_path)
    # The same method and options again: replaces its row.
    record_run(FakeRecord(seconds_per_frame=0.25), make_result([[0.9, 0.9, 0.9]]), tmp_path)
    table = read_leaderboard(leaderboard_paths(tmp_path, "synthetic", "val", "semi")["json"])
    assert len(table) == 3
    assert list(table["method"]) == ["flow-warp", "flow-warp", "other"]  # best J&F first
    assert table.loc[0, "J-Mean"] == pytest.approx(0.9) and table.loc[0, "seconds_per_frame"] == 0.25
    assert json.loads(table.loc[1, "options"]) == {"size": 64}


def test_concurrent_runs_keep_every_row(tmp_path):
    def one(k: int):
        record_run(FakeRecord(method=f"m{k}"), make_result([[0.1 * k] * 3]), tmp_path)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    table = read_leaderboard(leaderboard_paths(tmp_path, "synthetic", "val", "semi")["json"])
    assert sorted(table["method"]) == [f"m{k}" for k in range(6)]


def test_record_without_dataset_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="dataset"):
        record_run({**FakeRecord().__dict__, "dataset": ""}, make_result([[0.5] * 3]), tmp_path)
    assert not any(tmp_path.iterdir())


def test_corrupt_leaderboard_names_the_file(tmp_path):
    paths = leaderboard_paths(tmp_path, "synthetic", "val", "semi")
    paths["json"].write_text("{not json")
    with pytest.raises(InputError, match="synthetic-val-semi.json"):
        update_leaderboard([], tmp_path, dataset="synthetic", split="val", track="semi")


# -- the DAVIS 2016 leaderboard, rebuilt from the published masks ------------------------------------------

import os
from pathlib import Path

from vosbench.cli import main
from vosbench.reports.collect import OFFICIAL_KEYS, build_leaderboard, official_figures
from vosbench.reports.leaderboard import read_sequences, sequences_path

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = ["andiff", "fseg", "onavos", "osvos", "premvos", "ranet", "stm"]
# AnDiff (Yang et al., ICCV 2019) and FSEG (Jain et al., CVPR 2017) are unsupervised methods.
UNSUPERVISED_PUBLISHED = ["andiff", "fseg"]
J_F_COLUMNS = [c for c in OFFICIAL_KEYS.values() if c != "T-Mean"]
FULL_T = os.environ.get("VOSBENCH_FULL_T") == "1"
# AnDiff's published T was made by the DAVIS toolkit's eval_result, which does not compare the first
# evaluated frame with the ground truth (see tests/test_temporal.py); the committed table says so.
T_WITHOUT_FIRST_REFERENCE = ["andiff"]


def official(davis2016_root):
    return json.loads((davis2016_root / "results" / "official_global_val.json").read_text())


def assert_matches_official(table: pd.DataFrame, davis2016_root, with_t: bool,
                            methods: list[str] = PUBLISHED) -> None:
    """The table holds exactly `methods` computed and quoted, quoted as published, computed within rounding."""
    figures = official(davis2016_root)
    assert sorted(figures) == PUBLISHED
    computed = table[table["source"] == Source.RECOMPUTED.value].set_index("method")
    quoted = table[table["source"] == Source.PUBLISHED.value].set_index("method")
    assert sorted(computed.index) == methods and sorted(quoted.index) == methods
    for method, row in ((m, figures[m]) for m in methods):
        for key, column in OFFICIAL_KEYS.items():
            assert quoted.at[method, column] == row[key]  # quoted as published
            if column == "T-Mean":
                if with_t:
                    assert abs(computed.at[method, column] - row[key]) <= 0.01, (method, computed.at[method, column])
            else:
                assert abs(computed.at[method, column] - row[key]) <= 0.001 + 1e-9, (method, column)


@pytest.mark.shared
def test_published_masks_rebuild_the_official_j_and_f_columns(davis2016_root, tmp_path):
    status = main(["leaderboard", "--gt", str(davis2016_root), "--dataset", "davis2016", "--published",
                   str(davis2016_root / "results"), "--measures", "J,F", "--out", str(tmp_path), "--jobs", "2",
                   "--no-progress"])
    assert status == 0
    paths = leaderboard_paths(tmp_path, "davis2016", "val", "semi")
    table = read_leaderboard(paths["json"])
    assert_matches_official(table, davis2016_root, with_t=False)
    text = paths["md"].read_text()
    assert "published masks, computed here" in text and "published figures, quoted" in text
    assert "Reproduction of the published figures" in text
    per_sequence = read_sequences(sequences_path(tmp_path, "davis2016", "val", "semi"))
    assert len(per_sequence) == 7 * 20


@pytest.mark.shared
def test_unsupervised_leaderboard_ranks_the_unsupervised_published_methods_only(davis2016_root, tmp_path):
    status = main(["leaderboard", "--gt", str(davis2016_root), "--dataset", "davis2016", "--track", "unsupervised",
                   "--published", str(davis2016_root / "results"), "--measures", "J,F", "--out", str(tmp_path),
                   "--jobs", "2", "--no-progress"])
    assert status == 0
    paths = leaderboard_paths(tmp_path, "davis2016", "val", "unsupervised")
    table = read_leaderboard(paths["json"])
    assert_matches_official(table, davis2016_root, with_t=False, methods=UNSUPERVISED_PUBLISHED)
    text = paths["md"].read_text()
    assert "Reproduction of the published figures" in text and "first and last frame excluded" in text
    assert "stm (semi)" in text  # the note names what was left out and why
    per_sequence = read_sequences(sequences_path(tmp_path, "davis2016", "val", "unsupervised"))
    assert sorted(set(per_sequence["method"])) == UNSUPERVISED_PUBLISHED and len(per_sequence) == 2 * 20


COMMITTED = {"semi": (PUBLISHED, ["osvos", "stm"]), "unsupervised": (UNSUPERVISED_PUBLISHED, ["fseg"])}


@pytest.mark.shared
@pytest.mark.parametrize("track", sorted(COMMITTED))
def test_committed_davis2016_leaderboard_matches_official_and_this_code(davis2016_root, track):
    """The committed table of a track equals the official one, and its T is what this code computes.

    T of all 7 methods takes minutes; here one short sequence of one or two methods is recomputed and must
    equal the committed per-sequence value, and the committed dataset T must be the mean of the committed
    per-sequence values over the eval_t sequences. VOSBENCH_FULL_T=1 rebuilds everything instead
    (test_full_rebuild_with_t).
    """
    from vosbench.io.factory import open_dataset
    from vosbench.reports.attributes import eval_t_sequences
    from vosbench.reports.temporal_scores import results_t

    methods, t_checked = COMMITTED[track]
    paths = leaderboard_paths(REPO / "leaderboards", "davis2016", "val", track)
    table = read_leaderboard(paths["json"])
    assert_matches_official(table, davis2016_root, with_t=True, methods=methods)
    assert json.loads(paths["json"].read_text())["protocol"] == EvalParams.official(track, "davis2016").describe()
    computed_rows = table[table["source"] == Source.RECOMPUTED.value].set_index("method")
    for method in methods:
        options = json.loads(computed_rows.at[method, "options"] or "{}")
        assert options.get("t_first_reference", True) == (method not in T_WITHOUT_FIRST_REFERENCE)
    per_sequence = read_sequences(sequences_path(REPO / "leaderboards", "davis2016", "val", track))
    computed = per_sequence[per_sequence["source"] == Source.RECOMPUTED.value]
    counted = set(eval_t_sequences("davis2016"))
    dataset = open_dataset("davis2016", davis2016_root)
    for method in methods:
        rows = computed[computed["method"] == method].set_index("sequence")
        assert len(rows) == 20
        t_values = rows.loc[[s for s in rows.index if s in counted], "T-Mean"]
        committed_t = table[(table["method"] == method) & (table["source"] == Source.RECOMPUTED.value)]["T-Mean"]
        assert float(committed_t.iloc[0]) == pytest.approx(t_values.mean(), abs=1e-6)
        if method not in t_checked:
            continue
        (scores,) = results_t(dataset, davis2016_root / "results" / method, sequences=["car-shadow"], cache=False)
        assert scores.means[0] == pytest.approx(rows.at["car-shadow", "T-Mean"], abs=1e-6), method


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.skipif(not FULL_T, reason="T of 7 methods takes minutes; set VOSBENCH_FULL_T=1")
def test_full_rebuild_with_t(davis2016_root, tmp_path):
    build = build_leaderboard(davis2016_root, dataset="davis2016", published=davis2016_root / "results",
                              measures=["J", "F", "T"], leaderboard_dir=tmp_path, jobs=2,
                              t_without_first_reference=T_WITHOUT_FIRST_REFERENCE)
    assert_matches_official(build.table, davis2016_root, with_t=True)
    committed = read_leaderboard(REPO / "leaderboards" / "davis2016-val-semi.json")
    for source in (Source.RECOMPUTED.value, Source.PUBLISHED.value):
        ours = build.table[build.table["source"] == source].set_index("method")
        theirs = committed[committed["source"] == source].set_index("method")
        for column in OFFICIAL_KEYS.values():
            np.testing.assert_allclose(ours.loc[PUBLISHED, column], theirs.loc[PUBLISHED, column], atol=1e-6)


def test_official_figures_file_is_read_with_its_columns(tmp_path):
    path = tmp_path / "official.json"
    path.write_text(json.dumps({"m": {"Jmean": 0.5, "Fmean": 0.7, "T": 0.2, "Jrecall": 0.9}}))
    figures = official_figures(path)
    assert figures["m"]["J-Mean"] == 0.5 and figures["m"]["T-Mean"] == 0.2
    assert figures["m"]["J&F-Mean"] == pytest.approx(0.6)
    path.write_text("{}")
    with pytest.raises(InputError, match="no leaderboard rows"):
        official_figures(path)


def test_leaderboard_command_needs_something_to_rank(tmp_path):
    from vosbench.reports.collect import parse_measures

    with pytest.raises(InputError, match="nothing to put"):
        build_leaderboard(tmp_path, dataset="davis2016", leaderboard_dir=tmp_path)
    with pytest.raises(InputError, match="measure"):
        parse_measures("J,Q")
    assert parse_measures("T") == parse_measures("J,F,T")


def test_run_folders_join_the_leaderboard_beside_recorded_runs(tmp_path):
    import vosbench
    from tiny_davis import moving_boxes, write_davis, write_sequence

    gt = {f"s{k}": moving_boxes(8, 32, 40, n_objects=2, seed=k) for k in range(3)}
    write_davis(tmp_path / "gt", gt)
    run = tmp_path / "runs" / "shifted"
    for name, masks in gt.items():
        write_sequence(run / "masks" / name, np.roll(masks, 2, axis=1))
    (run / "run.json").write_text(json.dumps({"method": "shifted", "device": "cpu", "seconds_per_frame": 0.02,
                                              "options": {"shift": 2}, "masks_dir": str(run / "masks"),
                                              "dataset": "davis2017", "split": "val"}))
    board = tmp_path / "boards"
    record_run(FakeRecord(dataset="davis2017"), make_result([[0.5] * 4]), board)
    build = build_leaderboard(tmp_path / "gt", dataset="davis2017", runs=[run], measures=["J", "F"],
                              leaderboard_dir=board)
    table = build.table.set_index("method")
    expected = vosbench.evaluate(tmp_path / "gt", run / "masks", dataset="davis2017", cache=False).summary
    for column, value in expected.items():
        assert table.at["shifted", column] == pytest.approx(value)
    assert table.at["shifted", "source"] == Source.THIS_RUN.value and table.at["shifted", "device"] == "cpu"
    assert json.loads(table.at["shifted", "options"]) == {"shift": 2}
    assert "flow-warp" in table.index  # the row recorded by `vosbench run` is kept


def test_notes_and_dropped_rows_survive_later_run_records(tmp_path):
    from vosbench.reports.leaderboard import row_from_summary, short_path

    old = row_from_summary("pub", {"J-Mean": 0.1, "F-Mean": 0.1}, source=Source.RECOMPUTED)
    # Dropping rows from a leaderboard that does not exist yet is no error (a first build).
    update_leaderboard([old], tmp_path, dataset="synthetic", split="val", track="semi", notes=["an older note"],
                       drop=[("pub", Source.RECOMPUTED.value)])
    new = row_from_summary("pub", {"J-Mean": 0.5, "F-Mean": 0.5}, source=Source.RECOMPUTED,
                           options={"t_first_reference": False})
    update_leaderboard([new], tmp_path, dataset="synthetic", split="val", track="semi", notes=["- a note"],
                       drop=[("pub", Source.RECOMPUTED.value)])
    record_run(FakeRecord(), make_result([[0.3] * 3]), tmp_path)
    paths = leaderboard_paths(tmp_path, "synthetic", "val", "semi")
    table = read_leaderboard(paths["json"])
    assert sorted(table["method"]) == ["flow-warp", "pub"]  # the old "pub" row went with the rebuild
    assert "- a note" in paths["md"].read_text() and "an older note" not in paths["md"].read_text()
    assert short_path(tmp_path / "a" / "b" / "masks", tmp_path) == "a/b/masks"
    assert short_path("/elsewhere/runs/x/masks", tmp_path) == "x/masks"


def test_dropping_a_methods_rows_alone_also_drops_its_per_sequence_rows(tmp_path):
    from vosbench.reports.leaderboard import read_sequences, sequences_path

    record_run(FakeRecord(), make_result([[0.3] * 3]), tmp_path)
    seq_path = sequences_path(tmp_path, "synthetic", "val", "semi")
    assert (read_sequences(seq_path)["method"] == "flow-warp").any()
    # No new rows, only a drop: what a maintainer does before re-running a method with new weights.
    update_leaderboard([], tmp_path, dataset="synthetic", split="val", track="semi",
                       drop=[("flow-warp", Source.THIS_RUN.value)])
    assert not (read_leaderboard(leaderboard_paths(tmp_path, "synthetic", "val", "semi")["json"])["method"]
                == "flow-warp").any()
    assert not (read_sequences(seq_path)["method"] == "flow-warp").any()


# -- which published methods a track's leaderboard holds; run folders of the unsupervised track ---------------


def test_shipped_table_admits_unsupervised_methods_on_both_tracks_and_semi_ones_on_semi_only():
    from vosbench.reports.collect import published_method_tracks, select_methods

    tracks = published_method_tracks()
    assert sorted(tracks) == PUBLISHED
    assert sorted(m for m, t in tracks.items() if t.value == "unsupervised") == UNSUPERVISED_PUBLISHED
    assert select_methods(PUBLISHED, "unsupervised") == UNSUPERVISED_PUBLISHED
    assert select_methods(PUBLISHED, "semi") == PUBLISHED
    assert select_methods(PUBLISHED, "unsupervised", ["fseg"]) == ["fseg"]
    with pytest.raises(InputError, match=r"osvos \(semi\)"):
        select_methods(PUBLISHED, "unsupervised", ["fseg", "osvos"])


def _tiny_davis2016(root: Path, n_sequences: int = 2, n_frames: int = 6) -> dict[str, np.ndarray]:
    from tiny_davis import moving_boxes, write_davis, write_frames

    gt = {f"s{k}": moving_boxes(n_frames, 32, 40, n_objects=1, seed=k) for k in range(n_sequences)}
    write_davis(root, gt, year=2016)
    write_frames(root, gt)
    return gt


def _published(folder: Path, gt: dict[str, np.ndarray], methods: list[str]) -> Path:
    from tiny_davis import write_sequence

    for shift, method in enumerate(methods, start=1):
        for name, masks in gt.items():
            write_sequence(folder / method / name, np.roll(masks, shift, axis=2))
    return folder


def test_published_methods_are_chosen_by_track(tmp_path):
    gt = _tiny_davis2016(tmp_path / "gt")
    published = _published(tmp_path / "published", gt, ["fseg", "osvos", "mystery"])
    board = tmp_path / "boards"

    def build(track, methods=None):
        return build_leaderboard(tmp_path / "gt", dataset="davis2016", track=track, published=published,
                                 measures=["J", "F"], leaderboard_dir=board, methods=methods, cache=False)

    semi = build("semi")
    assert sorted(semi.table["method"]) == ["fseg", "mystery", "osvos"]
    # A method whose track is not known cannot be put on the unsupervised leaderboard unasked ...
    with pytest.raises(InputError, match="mystery"):
        build("unsupervised")
    # ... nor a semi-supervised one even when asked.
    with pytest.raises(InputError, match="osvos"):
        build("unsupervised", ["fseg", "osvos"])
    with pytest.raises(InputError, match="absent"):
        build("unsupervised", ["fseg", "absent"])
    both = build("unsupervised", ["fseg", "mystery"])
    assert sorted(both.table["method"]) == ["fseg", "mystery"]
    only = build("unsupervised", ["fseg"])
    assert list(only.table["method"]) == ["fseg"]  # a rebuild that leaves mystery out takes its rows away
    sequences = read_sequences(sequences_path(board, "davis2016", "val", "unsupervised"))
    assert set(sequences["method"]) == {"fseg"}
    assert "mystery" in only.paths["md"].read_text()  # the note says what was left out
    # The fseg row is scored under the DAVIS 2016 unsupervised protocol.
    import vosbench

    expected = vosbench.evaluate(tmp_path / "gt", published / "fseg", dataset="davis2016", track="unsupervised",
                                 cache=False).summary
    row = only.table.set_index("method").loc["fseg"]
    assert all(row[c] == pytest.approx(v) for c, v in expected.items())


def test_unsupervised_run_folder_joins_the_davis2016_unsupervised_leaderboard(tmp_path):
    """`vosbench run --method unsupervised --track unsupervised --dataset davis2016` makes a folder --runs takes."""
    import vosbench

    _tiny_davis2016(tmp_path / "gt")
    run = tmp_path / "runs" / "unsupervised"
    assert main(["run", "--method", "unsupervised", "--track", "unsupervised", "--dataset", "davis2016", "--gt",
                 str(tmp_path / "gt"), "--split", "val", "--out", str(run), "--device", "cpu", "--threads", "1",
                 "--leaderboard-dir", str(tmp_path / "recorded"), "--no-progress"]) == 0
    board = tmp_path / "boards"
    assert main(["leaderboard", "--gt", str(tmp_path / "gt"), "--dataset", "davis2016", "--track", "unsupervised",
                 "--runs", str(run), "--out", str(board), "--no-progress"]) == 0
    table = read_leaderboard(leaderboard_paths(board, "davis2016", "val", "unsupervised")["json"])
    row = table.set_index("method").loc["unsupervised"]
    assert row["source"] == Source.THIS_RUN.value and row["device"] == "cpu"
    expected = vosbench.evaluate(tmp_path / "gt", run / "masks", dataset="davis2016", track="unsupervised",
                                 cache=False).summary
    assert all(row[c] == pytest.approx(v) for c, v in expected.items())
    recorded = read_leaderboard(leaderboard_paths(tmp_path / "recorded", "davis2016", "val", "unsupervised")["json"])
    assert recorded.set_index("method").loc["unsupervised", "J&F-Mean"] == pytest.approx(row["J&F-Mean"])
    # The run's per-sequence figures join the per-sequence table too (J, F and T).
    from vosbench.reports.leaderboard import read_sequences, sequences_path

    per_sequence = read_sequences(sequences_path(board, "davis2016", "val", "unsupervised"))
    mine = per_sequence[per_sequence["method"] == "unsupervised"].set_index("sequence")
    per_object = pd.read_csv(run / "per-object_results-val.csv").set_index("sequence")
    assert sorted(mine.index) == sorted(per_object.index)
    assert mine["J-Mean"].to_numpy() == pytest.approx(per_object.loc[mine.index, "J-Mean"].to_numpy(), abs=1e-6)
    # T per sequence is measured where the row's T is (NaN alike where the masks are empty).
    t_values = mine["T-Mean"].to_numpy(dtype=float)
    assert np.isnan(t_values).all() if np.isnan(row["T-Mean"]) else np.isfinite(t_values).any()

    # Scores stored under another protocol (e.g. before DAVIS 2016 unsupervised dropped its first and last
    # frame) are not reused: the masks are scored again.
    stored = json.loads((run / "results-val.json").read_text())
    stored["protocol"] = EvalParams.official("unsupervised", "davis2017").to_dict()
    stored["global"] = {k: 0.123 for k in stored["global"]}
    (run / "results-val.json").write_text(json.dumps(stored))
    build = build_leaderboard(tmp_path / "gt", dataset="davis2016", track="unsupervised", runs=[run],
                              measures=["J", "F"], leaderboard_dir=tmp_path / "again")
    again = build.table.set_index("method").loc["unsupervised"]
    assert all(again[c] == pytest.approx(v) for c, v in expected.items())

    # A run of the other track is refused by name.
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(record, track="semi")))
    with pytest.raises(InputError, match="semi track"):
        build_leaderboard(tmp_path / "gt", dataset="davis2016", track="unsupervised", runs=[run],
                          measures=["J", "F"], leaderboard_dir=tmp_path / "refused")


# -------------------------------------------------------------- identity and byte-for-byte rewrites ---

@pytest.mark.parametrize("track", ["semi", "unsupervised"])
def test_committed_leaderboard_is_rewritten_byte_for_byte(track, tmp_path):
    """Reading a committed leaderboard and writing it again, with nothing changed, gives the same bytes
    (no 1376 -> 1376.0, no paths made relative to another folder)."""
    import shutil

    from vosbench.reports.leaderboard import write_leaderboard

    stem = f"davis2016-val-{track}"
    committed = {p.name: p.read_bytes() for p in (REPO / "leaderboards").glob(f"{stem}.*")}
    assert len(committed) == 4
    for name in committed:
        shutil.copy(REPO / "leaderboards" / name, tmp_path / name)
    # Through the upsert path `vosbench leaderboard` and `vosbench run` take, with no new row ...
    update_leaderboard([], tmp_path, dataset="davis2016", split="val", track=track)
    assert {p.name: p.read_bytes() for p in tmp_path.glob(f"{stem}.*")} == committed
    # ... and read into a DataFrame, then written from it.
    meta = json.loads(committed[f"{stem}.json"])
    table = read_leaderboard(tmp_path / f"{stem}.json")
    out = tmp_path / "again"
    paths = write_leaderboard(table, out, dataset=meta["dataset"], split=meta["split"], track=meta["track"],
                              protocol=meta["protocol"], notes=meta["notes"], identity=meta["dataset_identity"])
    for key, path in paths.items():
        assert path.read_bytes() == committed[path.name], path.name


def test_a_rewritten_board_keeps_integer_counts(tmp_path):
    record_run(FakeRecord(n_frames=1376, n_sequences=20, n_objects=20), make_result([[0.5] * 4]), tmp_path)
    first = {p.name: p.read_bytes() for p in tmp_path.glob("synthetic-val-semi*")}
    assert b"1376.0" not in first["synthetic-val-semi.json"] and b"1376.0" not in first["synthetic-val-semi.csv"]
    update_leaderboard([], tmp_path, dataset="synthetic", split="val", track="semi")
    assert {p.name: p.read_bytes() for p in tmp_path.glob("synthetic-val-semi*")} == first


@pytest.mark.shared
@pytest.mark.parametrize("track", ["semi", "unsupervised"])
def test_committed_leaderboard_belongs_to_davis2016_val(track, davis2016_root):
    """The committed boards name the real DAVIS 2016 val ground truth, and every row names its dataset;
    a row that records a fingerprint records that one, and a "this run" row with a commit says whether
    the checkout was dirty."""
    from vosbench.io.factory import open_dataset
    from vosbench.io.identity import dataset_identity

    path = leaderboard_paths(REPO / "leaderboards", "davis2016", "val", track)["json"]
    meta = json.loads(path.read_text())
    expected = dataset_identity(open_dataset(None, davis2016_root, split="val")).to_dict()
    assert meta["dataset_identity"] == expected and expected["n_sequences"] == 20
    table = read_leaderboard(path)
    assert set(table["dataset"]) == {"davis2016"}
    assert set(table["gt_fingerprint"].dropna()) <= {"", expected["fingerprint"]}
    made = table[(table["source"] == Source.THIS_RUN.value) & (table["commit"].fillna("") != "")]
    assert all(len(c) == 40 for c in made["commit"]) and made["dirty"].isin([True, False]).all()
