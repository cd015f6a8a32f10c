"""Time per robot interaction of vosbench's robot, on frames where the official robot's time was recorded.

Run with ``pytest tests/test_robot_benchmark.py --benchmark-enable``. The official robot's
time on the same frames, measured when the fixture was recorded (davisinteractive 1.0.4 on
the challenges' stack, see fixtures/interactive/make_robot_fixture.py), is in the
benchmark's extra_info. ``benchmarks/compare_robot.py`` times both robots back to back on
one machine, which is the comparison to quote. By default (benchmarks disabled) the round
runs once and the test checks the scribbles against the fixture.
"""
from __future__ import annotations

import pytest

from test_robot_official import OfficialScribbles, difference
from vosbench.tracks.interactive.robot import ScribbleRobot

N_CASES = 12


@pytest.fixture(scope="module")
def cases(davis2016_root):
    official = OfficialScribbles()
    picks = [k for k, c in enumerate(official.cases) if c["kind"] == "davis2016" and c["label"] != "empty"]
    picks = picks[:: max(1, len(picks) // N_CASES)][:N_CASES]
    return official, [(k, *official.inputs(k, davis2016_root)) for k in picks]


def _run(robot, inputs):
    return [robot.interact("case", pred[None], gt[None], nb_objects=n, frame=0) for _, gt, pred, n in inputs]


@pytest.mark.shared
def test_time_per_robot_interaction(benchmark, cases):
    official, inputs = cases
    robot = ScribbleRobot()
    benchmark.group = f"robot: {len(inputs)} interactions on DAVIS 2016 val frames"
    benchmark.extra_info["interactions_per_round"] = len(inputs)
    benchmark.extra_info["official_seconds_per_round_when_recorded"] = float(
        sum(official.official_seconds[k] for k, *_ in inputs))
    benchmark.pedantic(_run, args=(robot, inputs), rounds=3, iterations=1, warmup_rounds=1)
    for k, gt, pred, n in inputs:
        assert difference(robot, gt, pred, n, official.scribbles[k], official.n_samples) is None
    assert sum(len(s) for k, *_ in inputs for s in [official.scribbles[k]]) >= len(inputs)
