"""Time per robot interaction, vosbench's robot against the framework's, on the same real inputs.

Run with ``pytest tests/test_robot_benchmark.py --benchmark-enable``; by default (benchmarks
disabled) each side runs once and the test checks that both drew the same scribbles.
"""
from __future__ import annotations

import pytest

import test_interactive_oracle_fixture as interactive_oracle
from test_interactive_oracle import _same as same
from test_interactive_oracle import davis2016_cases
from test_interactive_oracle_fixture import oracle  # noqa: F401 - the fixture
from vosbench.tracks.interactive.robot import ScribbleRobot

N_CASES = 6


@pytest.fixture(scope="module")
def cases(davis2016_root):
    # DAVIS 2016 val frames (854x480) with osvos / fseg masks as the predictions
    return davis2016_cases(davis2016_root, large=False)[:N_CASES]


def _run(robot, cases):
    return [robot.interact(name, pred, gt, nb_objects=n, frame=frame) for name, gt, pred, n, frame in cases]


@pytest.mark.shared
@pytest.mark.parametrize("implementation", ["vosbench", "davisinteractive"])
def test_time_per_robot_interaction(benchmark, oracle, cases, implementation):
    robot = ScribbleRobot(seed=0) if implementation == "vosbench" else interactive_oracle.robot(0)
    benchmark.group = f"robot: {N_CASES} interactions on DAVIS 2016 val frames"
    benchmark.extra_info["interactions_per_round"] = len(cases)
    # With benchmarks disabled (the default) pedantic runs the rounds' function once, untimed.
    out = benchmark.pedantic(_run, args=(robot, cases), rounds=3, iterations=1, warmup_rounds=1)
    reference = _run(ScribbleRobot(seed=0), cases)
    assert all(same(a, b) for a, b in zip(out, reference))
    assert sum(len(f) for s in out for f in s["scribbles"]) >= len(cases)
