"""STM: memory read, soft aggregation, training (seeded, resumable), the committed weights,
segmenting the generated dataset end to end, and CUDA when present.

The 480p speed benchmark runs only when asked:

    VOSBENCH_BENCHMARK_BASELINES=1 OMP_NUM_THREADS=2 pytest tests/test_stm.py -k speed --benchmark-enable
"""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vosbench.errors import InputError, VosbenchError
from vosbench.io.datasets import DavisDataset
from vosbench.methods.base import LazyFrames, Video
from vosbench.methods.registry import get_method
from vosbench_baselines.stm import (DEFAULT_WEIGHTS, PROCESSING_SIZE, STM, STMNet, _label_of_highest, aggregate, load_stm,
                                    stm_trained_keys)
from vosbench_baselines.training import TrainConfig, load_exported

BENCHMARK = os.environ.get("VOSBENCH_BENCHMARK_BASELINES") == "1"


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from vosbench.io.synthetic import SyntheticParams, generate_dataset

    params = SyntheticParams(n_sequences=3, n_frames=8, height=160, width=224, max_objects=2, leave_fraction=0.0,
                             void_fraction=0.0)
    return generate_dataset(tmp_path_factory.mktemp("tiny") / "synthetic", seed=5, params=params)


def _video(dataset, sequence: str) -> tuple[Video, np.ndarray]:
    names = dataset.frame_names(sequence)
    gt = dataset.read_annotations(sequence)
    ids = sorted(int(i) for i in np.unique(gt[0]) if i not in (0, 255))
    frames = LazyFrames(lambda n: dataset.read_frame(sequence, n), names)
    return Video(sequence, frames, names, {0: gt[0]}, ids), gt


def _config(root: Path, out: Path, steps: int, resume: bool = False) -> TrainConfig:
    return TrainConfig(data=root, out=out, split="train", dataset="synthetic", steps=steps, seed=7, resume=resume,
                       batch_size=2, checkpoint_every=1, device="cpu", threads=1, progress=False,
                       options={"crop": 64, "warmup": 1})


def test_entry_point_is_registered():
    assert get_method("stm") is STM


def test_memory_read_is_a_softmax_over_memory_positions():
    torch.manual_seed(0)
    keys = torch.randn(1, 8, 5)
    values = torch.randn(1, 2, 3, 5)
    query = torch.randn(1, 8, 2, 2)
    out = STMNet.read(keys, values, query)
    q = query.flatten(2)[0]
    dist = ((keys[0][:, :, None] - q[:, None, :]) ** 2).sum(0)          # (N, M) squared L2
    weights = torch.softmax(-dist / np.sqrt(8), dim=0)
    want = torch.einsum("kvn,nm->kvm", values[0], weights).view(2, 3, 2, 2)
    torch.testing.assert_close(out[0], want, rtol=1e-4, atol=1e-5)

    # Top-k read: the softmax over each query position's k nearest memory positions only.
    nearest = torch.topk(-dist, 2, dim=0).indices                         # (2, M)
    kept = torch.full_like(dist, float("inf")).scatter(0, nearest, dist.gather(0, nearest))
    weights_k = torch.softmax(-kept / np.sqrt(8), dim=0)
    want_k = torch.einsum("kvn,nm->kvm", values[0], weights_k).view(2, 3, 2, 2)
    torch.testing.assert_close(STMNet.read(keys, values, query, top_k=2)[0], want_k, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(STMNet.read(keys, values, query, top_k=5), out)


def test_label_of_highest_is_argmax_with_first_index_on_ties():
    torch.manual_seed(0)
    for planes in (1, 2, 3, 6):
        prob = torch.rand(planes, 17, 23)
        prob[:, :4, :4] = 0.5                  # a tie across every plane: the first wins
        prob[-1, 5:8, 5:8] = prob[0, 5:8, 5:8]  # a tie between the first and the last plane
        torch.testing.assert_close(_label_of_highest(prob), prob.argmax(0))


def test_soft_aggregation_ignores_absent_objects_and_sums_to_one():
    logits = torch.tensor([[[[4.0]], [[-4.0]], [[9.0]]]])               # (1, 3 objects, 1, 1)
    valid = torch.tensor([[1.0, 1.0, 0.0]])
    prob = torch.softmax(aggregate(logits, valid), dim=1)
    assert torch.allclose(prob.sum(1), torch.ones(1, 1, 1))
    assert prob[0, 3].item() < 1e-6                                     # the invalid object gets nothing
    assert prob[0, 1].item() > 0.9                                      # the confident object wins


def test_training_resumes_exactly_and_exports_small_weights(tiny_root, tmp_path):
    straight = STM.train(_config(tiny_root, tmp_path / "straight", steps=2))
    assert straight.steps == 2 and straight.stopped_by == "steps"
    STM.train(_config(tiny_root, tmp_path / "split", steps=1))
    with pytest.raises(InputError):   # a finished run is not overwritten without --resume
        STM.train(_config(tiny_root, tmp_path / "split", steps=2))
    resumed = STM.train(_config(tiny_root, tmp_path / "split", steps=2, resume=True))
    assert resumed.steps == 2

    def rows(run):
        with (run / "losses.csv").open() as handle:
            return [(r["step"], r["loss"]) for r in csv.DictReader(handle)]

    assert rows(tmp_path / "straight") == rows(tmp_path / "split")
    assert len(rows(tmp_path / "split")) == 2
    a, _ = load_exported(straight.weights)
    b, meta = load_exported(resumed.weights)
    assert meta["steps"] == 2
    assert set(a) == set(b) == set(stm_trained_keys(STMNet(pretrained_encoder=False)))
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # Frozen ImageNet blocks are not in the file; the trained tensors are fp16.
    assert not any(k.startswith("encoder._blocks.0.") or k.startswith("encoder._fc") for k in a)
    assert all(v.dtype == torch.float16 for v in a.values() if v.is_floating_point())
    # The exported file loads into a method that segments.
    dataset = DavisDataset(tiny_root, year=2017, split="val")
    video, gt = _video(dataset, dataset.sequence_names()[0])
    masks = list(STM(device="cpu", weights=straight.weights, threads=1).segment(video))
    assert len(masks) == len(gt)


def test_training_warm_starts_from_exported_weights(tiny_root, tmp_path):
    parent = STM.train(_config(tiny_root, tmp_path / "parent", steps=1))
    config = _config(tiny_root, tmp_path / "warm", steps=1)
    config.learning_rate = 0.0          # no update: the export must be the initial weights
    config.options["init"] = str(parent.weights)
    warm = STM.train(config)
    a, _ = load_exported(parent.weights)
    b, meta = load_exported(warm.weights)
    assert set(a) == set(b)
    for key in a:
        if a[key].is_floating_point() and "running_" not in key:   # BN statistics still move
            assert torch.equal(a[key], b[key]), key
    # The record names the file and its digest, not the machine path.
    assert meta["options"]["init"]["file"] == "final.pt"
    assert str(tmp_path) not in json.dumps(meta)
    # A run that ignored the warm start would export its fresh layers, which differ from the parent's.
    cold = _config(tiny_root, tmp_path / "cold", steps=1)
    cold.learning_rate = 0.0
    c, _ = load_exported(STM.train(cold).weights)
    assert not torch.equal(a["key.weight"], c["key.weight"])


def test_training_more_of_the_encoder_exports_and_loads_those_blocks(tiny_root, tmp_path):
    config = _config(tiny_root, tmp_path / "deeper", steps=1)
    config.options["frozen_blocks"] = 3
    state, meta = load_exported(STM.train(config).weights)
    assert meta["options"]["frozen_blocks"] == 3
    assert any(k.startswith("encoder._blocks.3.") for k in state)
    assert not any(k.startswith("encoder._blocks.2.") or k.startswith("encoder._conv_stem") for k in state)
    imagenet = STMNet(pretrained_encoder=True).state_dict()
    weight = "encoder._blocks.3._depthwise_conv.weight"
    assert not torch.equal(state[weight].float(), imagenet[weight].half().float())   # block 3 trained
    # Loading the file, as the method does, gives block 3 the trained weights, not the ImageNet ones.
    loaded = load_stm(tmp_path / "deeper" / "final.pt")
    assert torch.equal(loaded.state_dict()[weight], state[weight].float())
    for bad in (-1, 6, "3", True):
        config = _config(tiny_root, tmp_path / f"bad{bad}", steps=1)
        config.options["frozen_blocks"] = bad
        with pytest.raises(VosbenchError, match="frozen_blocks"):
            STM.train(config)
        assert not (tmp_path / f"bad{bad}" / "final.pt").exists()


def test_unknown_training_option_is_refused_before_training(tiny_root, tmp_path):
    config = _config(tiny_root, tmp_path / "typo", steps=1)
    config.options["clip_lenght"] = 5
    with pytest.raises(VosbenchError, match="clip_lenght"):
        STM.train(config)
    assert not (tmp_path / "typo" / "final.pt").exists()


def test_committed_weights_load_and_are_small():
    assert DEFAULT_WEIGHTS.is_file(), "weights/stm.pt must ship with the package"
    assert DEFAULT_WEIGHTS.stat().st_size < 15 * 2**20
    state, meta = load_exported(DEFAULT_WEIGHTS)
    assert meta.get("method") == "stm" and int(meta.get("steps", 0)) > 0
    net = load_stm(DEFAULT_WEIGHTS)
    for key, value in state.items():
        assert torch.equal(net.state_dict()[key], value.to(net.state_dict()[key].dtype)), key
    assert (DEFAULT_WEIGHTS.parent / "MODEL_CARD_stm.md").is_file()


def test_bad_weights_file_names_the_file(tmp_path):
    bad = tmp_path / "stm.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="stm.pt"):
        STM(device="cpu", weights=bad)
    partial = tmp_path / "partial.pt"
    torch.save({"state_dict": {"key.weight": torch.zeros(64, 112, 3, 3)}, "metadata": {}}, partial)
    with pytest.raises(InputError, match="lacks trained parameters"):
        STM(device="cpu", weights=partial)


def _mean_j(masks: list[np.ndarray], gt: np.ndarray, ids: list[int]) -> list[float]:
    scores = []
    for t in range(1, len(gt)):
        for k in ids:
            union = ((masks[t] == k) | (gt[t] == k)).sum()
            scores.append(((masks[t] == k) & (gt[t] == k)).sum() / union if union else 1.0)
    return scores


def _check_segmentation(method: STM, tiny_root) -> tuple[float, float]:
    """Mean J of `method` and of repeating the first mask (objects move, so copying it is a floor)."""
    dataset = DavisDataset(tiny_root, year=2017, split="val")
    scores, still = [], []
    for sequence in dataset.sequence_names():
        video, gt = _video(dataset, sequence)
        masks = list(method.segment(video))
        assert len(masks) == len(gt)
        assert all(m.shape == gt.shape[1:] and m.dtype == np.uint8 for m in masks)
        np.testing.assert_array_equal(masks[0], gt[0])               # the given frame is returned as given
        assert set(np.unique(np.stack(masks))) <= {0, *video.object_ids}
        scores += _mean_j(masks, gt, video.object_ids)
        still += _mean_j([gt[0]] * len(gt), gt, video.object_ids)
    return float(np.mean(scores)), float(np.mean(still))


def test_committed_stm_tracks_objects_of_the_generated_dataset(tiny_root):
    """Trained on real video only, STM follows the generated textured objects better than standing still
    (the committed network itself: no online fine-tuning, which the next test covers)."""
    mean_j, first_frame_j = _check_segmentation(STM(device="cpu", threads=1, finetune_steps=0), tiny_root)
    assert mean_j > first_frame_j


def test_finetuning_adapts_a_copy_to_the_first_frame(tiny_root):
    """Fine-tuning lowers the loss on the first frame's warps, leaves the trained network as it was,
    records its settings, and repeats exactly under the same seed."""
    from vosbench_baselines.stm import finetune_on_first_frame

    dataset = DavisDataset(tiny_root, year=2017, split="val")
    video, gt = _video(dataset, dataset.sequence_names()[0])
    image, mask = np.asarray(video.frames[0]), gt[0].astype(np.uint8)
    for dreams in (0, 4):   # clips of the frame itself, and of scenes with its objects moved
        runs = []
        for _ in range(2):
            net = load_stm(DEFAULT_WEIGHTS)
            runs.append(finetune_on_first_frame(net, image, mask, steps=12, lr=3e-4, seed=1, device="cpu", crop=96,
                                                dreams=dreams))
        assert runs[0] == runs[1]
        assert np.mean(runs[0][-4:]) < np.mean(runs[0][:4])

    method = STM(device="cpu", threads=1, finetune_steps=3)
    assert method.options["finetune_steps"] == 3 and method.options["finetune_lr"] == STM.FINETUNE_LR
    before = {k: v.clone() for k, v in method.net.state_dict().items()}
    finetuned = method.finetuned_network(video, gt.shape[1:])
    assert finetuned is not method.net
    assert all(torch.equal(before[k], v) for k, v in method.net.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in finetuned.state_dict().items())
    assert STM(device="cpu", threads=1, finetune_steps=0).finetuned_network(video, gt.shape[1:]) is not None


def test_finetuned_stm_segments_the_generated_dataset(tiny_root):
    mean_j, first_frame_j = _check_segmentation(STM(device="cpu", threads=1, finetune_steps=4), tiny_root)
    assert mean_j > first_frame_j


def test_run_command_end_to_end(tmp_path, monkeypatch):
    from vosbench.cli import main

    monkeypatch.setenv("VOSBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    status = main(["run", "--method", "stm", "--track", "semi", "--no-progress", "--threads", "1"])
    assert status == 0
    # Everything under $VOSBENCH_HOME (nothing in the working folder), on the synthetic dataset's board.
    runs = list((tmp_path / "home" / "runs").glob("stm-synthetic-*"))
    assert runs and (runs[0] / "run.json").is_file()
    assert list((tmp_path / "home" / "leaderboards").glob("synthetic-*.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(tiny_root):
    cpu, _ = _check_segmentation(STM(device="cpu", threads=1), tiny_root)
    gpu, _ = _check_segmentation(STM(device="cuda"), tiny_root)
    assert abs(cpu - gpu) < 0.02


def _noise_video_480p(n_frames: int) -> Video:
    """`n_frames` 480p frames of noise with one object given on the first (what STM costs does not
    depend on what the frames show)."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (480, 854, 3), dtype=np.uint8) for _ in range(n_frames)]
    given = np.zeros((480, 854), np.uint8)
    given[150:350, 300:600] = 1
    return Video("bench", frames, [f"{i:05d}" for i in range(n_frames)], {0: given}, [1])


@pytest.mark.skipif(not BENCHMARK, reason="set VOSBENCH_BENCHMARK_BASELINES=1 to time STM at 480p")
def test_speed_stm_480p_per_frame_and_object(benchmark):
    """One 480p frame of a video whose memory holds the first, every 5th and the previous frame."""
    n_frames = 20
    video = _noise_video_480p(n_frames)
    # Frame-by-frame cost only: the online fine-tuning is a per-video cost, timed below.
    method = STM(device="cpu", finetune_steps=0)

    cpu_seconds = []

    def segment_all():
        start = time.process_time()
        masks = list(method.segment(video))
        cpu_seconds.append(time.process_time() - start)
        return masks

    masks = benchmark.pedantic(segment_all, rounds=3, iterations=1, warmup_rounds=0)
    assert len(masks) == n_frames
    # CPU seconds (all threads) per frame and object: what the work costs, whatever else
    # shares the machine; the wall-clock figure is pytest-benchmark's own.
    benchmark.extra_info["cpu_seconds_per_frame_per_object"] = min(cpu_seconds) / n_frames
    if benchmark.stats:
        benchmark.extra_info["wall_seconds_per_frame_per_object"] = benchmark.stats.stats.min / n_frames


@pytest.mark.slow
@pytest.mark.skipif(not BENCHMARK, reason="set VOSBENCH_BENCHMARK_BASELINES=1 to time STM's default run at 480p")
def test_benchmark_default_video_480p_all_in(benchmark):
    """The default STM (online fine-tuning included) on a 480p video of DAVIS 2016's mean length.

    The budget of 0.5 s per frame and object is read for a whole default run: the fine-tuning's
    per-video cost spread over the 69 frames of DAVIS 2016's mean video, plus the per-frame cost
    with the memory growing as it does over such a video.
    """
    n_frames = 69
    video = _noise_video_480p(n_frames)
    method = STM(device="cpu")
    assert method.finetune_steps > 0
    masks = benchmark.pedantic(lambda: list(method.segment(video)), rounds=1, iterations=1)
    assert len(masks) == n_frames
    if benchmark.stats:
        benchmark.extra_info["finetune_seconds"] = method.last_finetune_seconds
        benchmark.extra_info["wall_seconds_per_frame_per_object"] = benchmark.stats.stats.min / n_frames


@pytest.mark.slow
@pytest.mark.skipif(not BENCHMARK, reason="set VOSBENCH_BENCHMARK_BASELINES=1 to time online fine-tuning at 480p")
def test_benchmark_online_finetuning_480p(benchmark, davis2016_root):
    """STM's online fine-tuning (the default steps) on the first frame of a DAVIS 2016 val video at 480p."""
    from test_osvos import first_frame_video

    video = first_frame_video(davis2016_root)
    method = STM(device="cpu")
    assert method.finetune_steps > 0
    height, width = video.size
    factor = PROCESSING_SIZE / min(height, width)
    proc = (round(height * factor), round(width * factor))
    net = benchmark.pedantic(method.finetuned_network, args=(video, proc), rounds=1, iterations=1)
    assert net is not method.net
