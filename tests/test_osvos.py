"""OSVOS: parent network, online fine-tuning on frame 0, frames segmented independently, weights files."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from vosbench.errors import InputError
from vosbench.io.datasets import DavisDataset
from vosbench.methods.base import Video
from vosbench.methods.registry import get_method
from vosbench_baselines.osvos import OSVOS
from vosbench_baselines.single_frame import SegNet, default_weights, load_trained, save_trained

BENCHMARK = os.environ.get("VOSBENCH_BENCHMARK_BASELINES") == "1"


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from vosbench.io.synthetic import SyntheticParams, generate_dataset

    # Objects stay in view and carry no void band, so that J on every frame measures the method.
    params = SyntheticParams(n_sequences=3, n_frames=5, height=96, width=128, max_objects=2, leave_fraction=0.0,
                             void_fraction=0.0)
    return generate_dataset(tmp_path_factory.mktemp("tiny") / "synthetic", seed=3, params=params)


def tiny_video(root, index: int = 0) -> tuple[Video, np.ndarray]:
    dataset = DavisDataset(root, year=2017, split="val")
    name = dataset.sequence_names()[index]
    names = dataset.frame_names(name)
    frames = [dataset.read_frame(name, n) for n in names]
    gt = dataset.read_annotations(name)
    gt[gt == 255] = 0
    ids = [int(i) for i in np.unique(gt[0]) if i]
    return Video(name, frames, names, {0: gt[0]}, ids), gt


def first_frame_video(davis2016_root) -> Video:
    """The first frame and mask of the first DAVIS 2016 val sequence at 480p: what online fine-tuning sees."""
    dataset = DavisDataset(davis2016_root, year=2016, split="val")
    name = dataset.sequence_names()[0]
    names = dataset.frame_names(name)
    return Video(name, [dataset.read_frame(name, names[0])], names[:1], {0: dataset.read_annotation(name, names[0])},
                 [1])


def mean_j(outputs, gt) -> float:
    scores = []
    for out, truth in zip(outputs[1:], gt[1:]):
        for k in np.unique(gt[0]):
            if k == 0:
                continue
            union = np.logical_or(out == k, truth == k).sum()
            scores.append(np.logical_and(out == k, truth == k).sum() / union if union else 1.0)
    return float(np.mean(scores))


def test_registered():
    assert get_method("osvos") is OSVOS


def test_packaged_weights_load_strictly():
    path = default_weights("osvos")
    assert path.is_file(), "the trained parent network ships with the package"
    meta = load_trained(SegNet(), path)
    assert meta["steps"] > 0


def test_online_finetuning_learns_the_first_frame_objects(tiny_root):
    video, gt = tiny_video(tiny_root)
    parent_only = list(OSVOS(device="cpu", finetune_steps=0).segment(video))
    # 40 steps (the default is longer) keep the test short and are enough to learn the tiny objects.
    finetuned_method = OSVOS(device="cpu", finetune_steps=40)
    finetuned = list(finetuned_method.segment(video))
    assert np.array_equal(finetuned[0], gt[0])
    assert all(m.shape == gt[0].shape and m.dtype == np.uint8 for m in finetuned)
    assert mean_j(finetuned, gt) > mean_j(parent_only, gt) + 0.1
    assert finetuned_method.last_finetune_seconds is not None


def test_frames_are_segmented_independently_and_deterministically(tiny_root):
    video, _ = tiny_video(tiny_root, 1)
    forward = list(OSVOS(device="cpu", finetune_steps=3, seed=5).segment(video))
    order = [0] + list(range(len(video.frames) - 1, 0, -1))   # frame 0 first, the rest reversed
    shuffled = Video(video.name, [video.frames[i] for i in order], [video.frame_names[i] for i in order],
                     video.given_masks, video.object_ids)
    backward = list(OSVOS(device="cpu", finetune_steps=3, seed=5).segment(shuffled))
    for position, index in enumerate(order):
        assert np.array_equal(backward[position], forward[index])


def test_finetuning_leaves_the_parent_unchanged(tiny_root):
    video, _ = tiny_video(tiny_root)
    method = OSVOS(device="cpu", finetune_steps=2)
    before = {k: v.clone() for k, v in method.parent().state_dict().items()}
    list(method.segment(video))
    after = method.parent().state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weights_file_holds_only_what_the_encoder_package_does_not(tmp_path):
    torch.manual_seed(0)
    net = SegNet().eval()
    with torch.no_grad():
        for p in net.decoder.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "osvos.pt"
    save_trained(net, path, {"steps": 1})
    blob = torch.load(path, weights_only=True)
    keys = set(blob["state_dict"])
    assert keys == set(net.trained_keys())
    assert not any(k.startswith(("encoder._conv_stem", "encoder._blocks.0.", "encoder._blocks.2.", "encoder._fc",
                                 "encoder._blocks.12.")) for k in keys)
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values() if v.is_floating_point())
    fresh = SegNet().eval()
    load_trained(fresh, path)
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        assert torch.allclose(fresh(x), net(x), atol=5e-2)


def test_a_weights_file_of_another_network_is_refused(tmp_path):
    from vosbench_baselines.masktrack import MaskTrackNet

    path = tmp_path / "masktrack.pt"
    save_trained(MaskTrackNet(), path, {})
    with pytest.raises(InputError, match="MaskTrackNet"):
        load_trained(SegNet(), path)
    with pytest.raises(InputError, match="does not exist"):
        load_trained(SegNet(), tmp_path / "absent.pt")


def _train_config(root, out, steps, resume=False):
    from vosbench_baselines.training import TrainConfig

    return TrainConfig(data=root, out=out, dataset="synthetic", split="train", steps=steps, seed=1, resume=resume,
                       batch_size=2, learning_rate=3e-4, checkpoint_every=1, device="cpu", threads=1,
                       progress=False, options={"crop": 48})


def test_training_resumes_the_exact_sample_and_update_stream(tiny_root, tmp_path):
    straight = OSVOS.train(_train_config(tiny_root, tmp_path / "straight", steps=3))
    OSVOS.train(_train_config(tiny_root, tmp_path / "interrupted", steps=2))
    resumed = OSVOS.train(_train_config(tiny_root, tmp_path / "interrupted", steps=3, resume=True))
    assert straight.steps == resumed.steps == 3
    assert resumed.final_losses["loss"] == pytest.approx(straight.final_losses["loss"], rel=1e-4)
    a, b = SegNet(), SegNet()
    meta = load_trained(a, straight.weights)
    load_trained(b, resumed.weights)
    assert meta["steps"] == 3 and meta["method"] == "osvos"
    for key in a.trained_keys():
        assert torch.equal(a.state_dict()[key], b.state_dict()[key]), key


def test_decay_from_keeps_the_rate_then_anneals_it(tiny_root, tmp_path):
    import csv

    from vosbench_baselines.training import constant_then_cosine_lr, load_exported

    assert constant_then_cosine_lr(3, 10, 1e-3, None) == 1e-3
    assert constant_then_cosine_lr(4, 10, 1e-3, 5) == 1e-3
    assert constant_then_cosine_lr(5, 10, 1e-3, 5) == pytest.approx(1e-3)
    assert constant_then_cosine_lr(10, 10, 1e-3, 5) == pytest.approx(5e-5)
    config = _train_config(tiny_root, tmp_path / "decay", steps=4)
    config.options["decay_from"] = 2
    summary = OSVOS.train(config)
    with (tmp_path / "decay" / "losses.csv").open() as handle:
        rates = [float(row["lr"]) for row in csv.DictReader(handle)]
    assert rates[:3] == pytest.approx([3e-4, 3e-4, 3e-4])
    assert 1.5e-5 < rates[3] < 3e-4
    _, meta = load_exported(summary.weights)
    assert meta["decay_from"] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(tiny_root):
    video, gt = tiny_video(tiny_root)
    outputs = list(OSVOS(device="cuda", finetune_steps=2).segment(video))
    assert len(outputs) == len(gt) and outputs[1].shape == gt[0].shape


@pytest.mark.slow
@pytest.mark.skipif(not BENCHMARK, reason="set VOSBENCH_BENCHMARK_BASELINES=1 to time online fine-tuning at 480p")
def test_benchmark_online_finetuning_480p(benchmark, davis2016_root):
    """Online fine-tuning of one DAVIS 2016 val video at 480p (the budget is 60 s on 2 cores)."""
    video = first_frame_video(davis2016_root)
    method = OSVOS(device="cpu")
    method.parent()
    networks = benchmark.pedantic(method.finetuned_networks, args=(video,), rounds=1, iterations=1)
    assert len(networks) == 1


def test_finetune_settings_are_options_and_recorded():
    method = OSVOS(device="cpu", finetune_steps=120, finetune_lr=2e-4)
    assert (method.finetune.steps, method.finetune.lr) == (120, 2e-4)
    assert method.options["finetune_steps"] == 120 and method.options["finetune_lr"] == 2e-4
    default = OSVOS(device="cpu")
    assert default.finetune == OSVOS.default_finetune and default.finetune is not OSVOS.default_finetune
    # What is recorded is the setting in force, so that changing a default never reuses old masks.
    assert (default.options["finetune_steps"], default.options["finetune_lr"]) == (OSVOS.default_finetune.steps,
                                                                                  OSVOS.default_finetune.lr)
    assert OSVOS(device="cpu", finetune_steps=7).finetune.steps == 7 and OSVOS.default_finetune.steps != 7


def test_finetuning_on_dreamed_scenes_is_an_option_and_learns_the_objects(tiny_root):  # noqa: F811
    video, gt = tiny_video(tiny_root)
    method = OSVOS(device="cpu", finetune_steps=40, finetune_dreams=6)
    assert method.finetune.dreams == 6 and method.options["finetune_dreams"] == 6
    assert OSVOS(device="cpu").options["finetune_dreams"] == OSVOS.default_finetune.dreams
    parent_only = list(OSVOS(device="cpu", finetune_steps=0).segment(video))
    first = list(method.segment(video))
    again = list(OSVOS(device="cpu", finetune_steps=40, finetune_dreams=6).segment(video))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))          # seeded
    assert mean_j(first, gt) > mean_j(parent_only, gt) + 0.1
    with pytest.raises(ValueError, match="finetune_dreams"):
        OSVOS(device="cpu", finetune_dreams=-1)
