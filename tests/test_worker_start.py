"""`vosbench evaluate --jobs N` starts its worker processes before it imports what it needs, and the
scoring reuses them; the `vosbench` executable's exit path (`console_main`)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd

import vosbench
from vosbench.cli import _early_scoring_workers
from vosbench.tracks import parallel

from tiny_davis import moving_boxes, write_davis, write_sequence

# A standard module that neither joblib nor vosbench imports: found in a worker only if the warm-up ran there.
WARM_MODULE = "colorsys"


def _has_warm_module(_item) -> tuple[int, bool]:
    return os.getpid(), WARM_MODULE in sys.modules


def test_the_workers_started_early_are_those_that_score():
    with parallel.workers_started_early(2, WARM_MODULE):
        outputs = list(parallel.run_parallel(_has_warm_module, range(6), jobs=2))
    assert parallel._warm_ups == []
    pids = {pid for pid, _ in outputs}
    assert os.getpid() not in pids and len(pids) <= 2
    # The pool that scored is the one warmed up (fresh workers would not have imported the module). Which
    # worker took which warm-up call is loky's choice: one fast worker may have taken both.
    assert any(warm for _, warm in outputs), outputs


def test_leaving_before_any_scoring_waits_quietly(capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. joblib's warning of results never used
        with parallel.workers_started_early(2, WARM_MODULE):
            pass
    assert parallel._warm_ups == []
    assert "Traceback" not in capfd.readouterr().err
    # The pool is intact: the next call runs on it.
    assert len(list(parallel.run_parallel(_has_warm_module, range(2), jobs=2))) == 2


def test_only_evaluate_with_several_jobs_on_the_process_backend_starts_early():
    def starts(*argv):
        context = _early_scoring_workers(argv[0] if argv else None, list(argv))
        return not isinstance(context, contextlib.nullcontext)

    assert starts("evaluate", "--gt", "g", "--jobs", "2")
    assert starts("evaluate", "--jobs=-1", "--results", "r")
    assert starts("evaluate", "--jobs", "3", "--backend", "loky")
    assert not starts("evaluate", "--gt", "g")
    assert not starts("evaluate", "--jobs", "1")
    assert not starts("evaluate", "--jobs", "0")
    assert not starts("evaluate", "--jobs", "two")
    assert not starts("evaluate", "--jobs", "2", "--backend", "dask")
    assert not starts("evaluate", "--jobs", "2", "--backend=threading")
    assert not starts("evaluate", "--jobs", "2", "--help")
    assert not starts("run", "--jobs", "2")


def test_the_executable_scores_with_early_workers_as_in_process(tmp_path):
    gt = {f"seq{i}": moving_boxes(8, 40, 50, 1 + i % 3, seed=i) for i in range(4)}
    root = write_davis(tmp_path / "gt", gt)
    for name, masks in gt.items():
        write_sequence(tmp_path / "res" / name, np.roll(masks, 3, axis=2))
    done = subprocess.run([sys.executable, "-m", "vosbench", "-q", "evaluate", "--gt", str(root), "--results",
                           str(tmp_path / "res"), "--jobs", "2", "--no-cache", "--no-progress", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    written = pd.read_csv(tmp_path / "out" / "per-sequence_results-val.csv")
    expected = vosbench.evaluate(root, tmp_path / "res", cache=False, jobs=1).per_sequence
    np.testing.assert_allclose(written[["J-Mean", "F-Mean"]].to_numpy(),
                               expected[["J-Mean", "F-Mean"]].to_numpy(), atol=5e-4)
