"""vosbench's interactive summary against the DAVIS interactive framework's code (davisinteractive 1.0.4).

Given the same report (timing log and scores), the summary (curve, J&F@60s, AUC) equals
the framework's ``summarize_report`` to 1e-6, run here from its sources on the current
stack (see test_interactive_oracle_fixture.py for the shims).

The robot and whole sessions are compared with the framework on the stack the DAVIS
interactive challenges ran (Python 3.7, scikit-image 0.18, scikit-learn 0.20, networkx
2.4): a current scikit-learn or networkx breaks the robot's ties differently, so this
shimmed copy is no oracle for them. See test_robot_official.py and
test_interactive_parity.py, whose fixtures that stack recorded.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from test_interactive_oracle_fixture import oracle  # noqa: F401 - the fixture
from vosbench.tracks.interactive.report import REPORT_COLUMNS, SampleInfo, summarize

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- summary ----

def _random_report(rng: np.random.Generator, max_i: int, complete: bool):
    """A report as a session writes it, some samples stopping early (time budget), and the sample list."""
    rows, samples, meta = [], [], {}
    for s in range(4):
        seq = f"seq{s}"
        nb_objects, nb_frames, nb_scribbles = int(rng.integers(1, 4)), int(rng.integers(3, 6)), int(rng.integers(1, 3))
        meta[seq] = {"num_objects": nb_objects, "num_frames": nb_frames, "num_scribbles": nb_scribbles}
        for idx in range(1, nb_scribbles + 1):
            samples.append(SampleInfo(seq, idx, nb_objects))
            done = max_i if complete else int(rng.integers(0, max_i + 1))
            for i in range(1, done + 1):
                timing = float(rng.uniform(0.1, 12.0))
                for frame in range(nb_frames):
                    for obj in range(1, nb_objects + 1):
                        j, f = rng.uniform(0, 1, 2)
                        rows.append(["sess", seq, idx, i, obj, frame, j, f, 0.5 * j + 0.5 * f, timing])
    return pd.DataFrame(rows, columns=REPORT_COLUMNS), samples, meta


def _official_summary(oracle, monkeypatch, report, meta, max_i, max_t):
    import sys

    service_module = sys.modules["davisinteractive.evaluation.service"]
    monkeypatch.setattr(service_module.Davis, "dataset", meta)
    service = object.__new__(service_module.EvaluationService)
    service.sequences = list(meta)
    service.max_i, service.max_t = max_i, max_t
    service.metric_to_optimize = "J_AND_F"
    service.time_threshold = 60
    service.avg_nb_objects = sum(m["num_objects"] for m in meta.values()) / len(meta)
    # The framework drops session_id right after its groupby-mean; current pandas refuses to
    # average a text column, so it is dropped first (same numbers). With pandas' copy-on-write,
    # DataFrame.values is read-only, and the framework writes into it when it fills in
    # missing interactions: for this call it returns a copy, as older pandas did.
    monkeypatch.setattr(pd.DataFrame, "values", property(lambda frame: frame.to_numpy(copy=True)))
    summary = service.summarize_report(report.drop(columns="session_id"))
    monkeypatch.undo()
    return summary


@pytest.mark.parametrize("max_t, complete, seed", [(240, True, 0), (240, False, 1), (60, False, 2),
                                                   (None, False, 4)])
def test_summary_equals_the_framework(oracle, monkeypatch, max_t, complete, seed):
    max_i = 8 if max_t else 5
    rng = np.random.default_rng(seed)
    report, samples, meta = _random_report(rng, max_i, complete)
    expected = _official_summary(oracle, monkeypatch, report, meta, max_i, max_t)
    got, curve = summarize(report, samples, max_i, max_t)
    assert got["auc"] == pytest.approx(expected["auc"], abs=1e-6)
    assert got["metric_at_threshold"]["J_AND_F"] == pytest.approx(expected["metric_at_threshold"]["J_AND_F"],
                                                                  abs=1e-6)
    np.testing.assert_allclose(got["curve"]["time"], expected["curve"]["time"], atol=1e-6)
    np.testing.assert_allclose(got["curve"]["J_AND_F"], expected["curve"]["J_AND_F"], atol=1e-6)
    assert curve.at(60) == pytest.approx(expected["metric_at_threshold"]["J_AND_F"], abs=1e-6)
