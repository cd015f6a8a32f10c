"""The Dask backend on a real distributed.LocalCluster gives the very numbers of a local run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import vosbench
from vosbench.cli import main

from tiny_davis import moving_boxes, write_davis, write_frames, write_sequence

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local


@pytest.fixture
def data(tmp_path):
    gt = {f"seq{i}": moving_boxes(6, 30, 40, 1 + i % 3, seed=i) for i in range(5)}
    root = write_davis(tmp_path / "gt", gt)
    for name, masks in gt.items():
        write_sequence(tmp_path / "res" / name, np.roll(masks, 2, axis=1))
    return root, tmp_path / "res"


@pytest.mark.parametrize("track", ["semi", "unsupervised"])
def test_dask_cluster_gives_identical_numbers(cluster, data, track):
    root, results = data
    local = vosbench.evaluate(root, results, track=track, cache=False)
    with distributed.Client(cluster.scheduler_address) as client, distributed.get_task_stream(client) as stream:
        remote = vosbench.evaluate(root, results, track=track, cache=False, jobs=2, backend="dask",
                                   scheduler=cluster.scheduler_address)
    assert len(local.per_frame) > 0
    pd.testing.assert_frame_equal(local.per_frame, remote.per_frame, check_exact=True)
    pd.testing.assert_frame_equal(local.per_object, remote.per_object, check_exact=True)
    # The sequences really were scored by the cluster's worker processes.
    workers = {task["worker"] for task in stream.data}
    assert len(stream.data) >= 1 and workers <= set(cluster.scheduler_info["workers"])


def test_t_runs_on_the_dask_cluster_with_j_and_f_and_alone(cluster, data):
    """T is a metric of the shared runner: measured with J and F, or alone for the leaderboard, on the cluster."""
    from vosbench.io.factory import open_dataset
    from vosbench.reports.temporal_scores import results_t

    root, results = data
    local = vosbench.evaluate(root, results, cache=False, metrics="J,F,T")
    dataset = open_dataset("davis2017", root)
    t_local = results_t(dataset, results, cache=False)
    with distributed.Client(cluster.scheduler_address) as client, distributed.get_task_stream(client) as stream:
        remote = vosbench.evaluate(root, results, cache=False, metrics="J,F,T", jobs=2, backend="dask",
                                   scheduler=cluster.scheduler_address)
        t_remote = results_t(dataset, results, cache=False, jobs=2, backend="dask", scheduler=cluster.scheduler_address)
    assert local.per_frame["T"].notna().any()
    pd.testing.assert_frame_equal(local.per_frame, remote.per_frame, check_exact=True)
    pd.testing.assert_frame_equal(local.per_object, remote.per_object, check_exact=True)
    for ours, theirs in zip(t_local, t_remote):
        np.testing.assert_array_equal(ours.per_frame, theirs.per_frame)
    # 5 sequences with J, F and T, then 5 with T alone, all on the cluster's workers.
    assert len(stream.data) >= 10 and {t["worker"] for t in stream.data} <= set(cluster.scheduler_info["workers"])


def test_cli_dask_backend(cluster, data, tmp_path, capsys):
    root, results = data
    out = tmp_path / "out"
    status = main(["evaluate", "--gt", str(root), "--results", str(results), "--backend", "dask",
                   "--scheduler", cluster.scheduler_address, "--jobs", "2", "--no-cache", "--no-progress",
                   "--out", str(out)])
    assert status == 0
    local = vosbench.evaluate(root, results, cache=False)
    written = pd.read_csv(out / "per-object_results-val.csv")
    np.testing.assert_allclose(written["J-Mean"], local.per_object["J-Mean"], rtol=0, atol=5e-7)


def test_cli_run_segments_on_the_dask_cluster(cluster, tmp_path, monkeypatch):
    """`vosbench run --backend dask`: the cluster's worker processes segment the sequences (each
    builds the method once) and score them; the masks are those of a local run."""
    gt = {f"seq{i}": moving_boxes(6, 30, 40, 1 + i % 2, seed=i) for i in range(4)}
    root = write_frames(write_davis(tmp_path / "gt", gt), gt)
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--method", "flow-warp", "--track", "semi", "--gt", str(root), "--dataset", "davis2017",
            "--leaderboard-dir", str(tmp_path / "boards"), "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "local")]) == 0
    with distributed.Client(cluster.scheduler_address) as client, distributed.get_task_stream(client) as stream:
        assert main(argv + ["--out", str(tmp_path / "remote"), "--backend", "dask", "--scheduler",
                            cluster.scheduler_address, "--jobs", "2"]) == 0
    masks = {p.relative_to(tmp_path / "local"): p.read_bytes() for p in (tmp_path / "local").rglob("*.png")}
    assert masks and masks == {p.relative_to(tmp_path / "remote"): p.read_bytes()
                               for p in (tmp_path / "remote").rglob("*.png")}
    assert {task["worker"] for task in stream.data} <= set(cluster.scheduler_info["workers"])
    assert any("_segment_task" in task["key"] for task in stream.data if isinstance(task["key"], str))


def test_unreachable_scheduler_is_an_error(data):
    import dask

    root, results = data
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(OSError):
        vosbench.evaluate(root, results, cache=False, backend="dask", scheduler="tcp://127.0.0.1:9", jobs=2)


@pytest.mark.parametrize("backend", ["loky", "multiprocessing", "threading"])
def test_every_joblib_backend_gives_identical_numbers(data, backend):
    root, results = data
    local = vosbench.evaluate(root, results, cache=False)
    other = vosbench.evaluate(root, results, cache=False, jobs=2, backend=backend)
    pd.testing.assert_frame_equal(local.per_frame, other.per_frame, check_exact=True)
