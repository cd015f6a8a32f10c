"""osvos-official computes what the authors' OSVOS-PyTorch code computes (golden.npz, from make_golden.py):
the input, the five side outputs, the online augmentation and one online fine-tuning update."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import seeded
from vosbench_baselines.official import (OSVOS_ONLINE, OSVOS_THRESHOLD, OSVOSOfficialNet, official_key_spec,
                                         osvos_augment, osvos_draw, osvos_mean_subtracted, osvos_official_input,
                                         osvos_optimizer, osvos_step)
from vosbench_baselines.single_frame import labels_from_logits

GOLDEN = Path(__file__).with_name("golden.npz")
STEP_PARAMS = ["stages.0.0.weight", "stages.0.0.bias", "stages.4.5.bias", "side_prep.3.bias",
               "side_prep.0.bias", "fuse.weight", "fuse.bias"]


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


def seeded_net() -> OSVOSOfficialNet:
    torch.set_num_threads(1)
    net = OSVOSOfficialNet()
    net.load_state_dict(seeded.osvos_state(official_key_spec("osvos")), strict=True)
    return net


def assert_relative(actual, expected, tol=1e-4):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    worst = np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12)
    assert worst <= tol, f"largest difference {worst:.2e} of the largest value"


def test_input_is_the_authors(golden):
    frame, _ = seeded.osvos_pair(seeded.OSVOS_STEP_SIZE, seed=500)
    np.testing.assert_array_equal(osvos_mean_subtracted(frame), golden["osvos_image_input"])


@pytest.mark.parametrize("size", seeded.OSVOS_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_side_outputs_match_the_authors(golden, size):
    frame, _ = seeded.osvos_pair(size, seed=400 + seeded.OSVOS_SIZES.index(size))
    with torch.no_grad():
        outputs = seeded_net()(osvos_official_input(frame))
    assert len(outputs) == 5
    for j, side in enumerate(outputs):
        assert side.shape[-2:] == size
        assert_relative(side[0, 0].numpy(), golden[f"osvos_{size[0]}x{size[1]}_side{j}"])


def test_augmentation_is_the_authors(golden):
    image, gt = golden["osvos_image_input"], golden["osvos_gt_input"]
    draws = golden["osvos_aug_draws"]
    assert {bool(d[0]) for d in draws} == {True, False}, "the recorded draws flip some copies, not others"
    for i, (flip, angle, scale) in enumerate(draws):
        out_image, out_gt = osvos_augment(image, gt, bool(flip), float(angle), float(scale))
        np.testing.assert_allclose(out_image.transpose(2, 0, 1), golden[f"osvos_aug{i}_image"], rtol=0, atol=1e-3)
        np.testing.assert_array_equal(out_gt[None], golden[f"osvos_aug{i}_gt"])


def test_augmentation_draws_cover_the_authors_ranges():
    rng = np.random.default_rng(0)
    draws = np.array([osvos_draw(rng) for _ in range(4000)], np.float64)
    assert 0.45 < draws[:, 0].mean() < 0.55
    assert draws[:, 1].min() >= -30 and draws[:, 1].max() <= 30 and draws[:, 1].max() > 29.5
    assert draws[:, 2].min() >= 0.75 and draws[:, 2].max() <= 1.25
    # Uniform in the scale itself (the authors'), not in its logarithm: half the draws above 1.
    assert 0.47 < (draws[:, 2] > 1.0).mean() < 0.53


def test_one_online_update_is_the_authors(golden):
    lr, wd, accumulate = golden["osvos_step_settings"]
    assert (OSVOS_ONLINE["lr"], OSVOS_ONLINE["weight_decay"], OSVOS_ONLINE["accumulate"]) == (lr, wd, accumulate)
    net = seeded_net()
    params = dict(net.named_parameters())
    before = {k: params[k].detach().clone() for k in STEP_PARAMS}
    optimizer = osvos_optimizer(net)
    samples = [(golden[f"osvos_aug{i}_image"].transpose(1, 2, 0), golden[f"osvos_aug{i}_gt"][0])
               for i in range(int(accumulate))]
    net.train()
    losses = osvos_step(net, optimizer, samples, "cpu")
    assert_relative(losses, golden["osvos_step_losses"])
    for key in STEP_PARAMS:
        buffer = optimizer.state[params[key]]["momentum_buffer"]
        assert_relative(buffer.numpy(), golden[f"osvos_step_buffer.{key}"])
        delta = params[key].detach().double() - before[key].double()
        # The change is a few float32 steps of the parameter at lr 1e-8: equal within one step.
        ulp = np.spacing(np.abs(before[key].numpy())).astype(np.float64)
        np.testing.assert_array_less(np.abs(delta.numpy() - golden[f"osvos_step_delta.{key}"]), 1.01 * ulp + 1e-30)
    assert not torch.equal(params["fuse.weight"], before["fuse.weight"]), "the update changed the network"


def test_threshold_is_a_probability():
    scores = torch.tensor([[[0.0, 0.5, 0.6]]])       # logits: probabilities 0.5, 0.62, 0.65
    assert OSVOS_THRESHOLD == pytest.approx(0.6353, abs=1e-4)
    np.testing.assert_array_equal(labels_from_logits(scores, [3], threshold=OSVOS_THRESHOLD), [[0, 0, 3]])
    np.testing.assert_array_equal(labels_from_logits(scores, [3]), [[0, 3, 3]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_side_outputs_on_cuda_match_the_authors(golden):
    torch.backends.cudnn.allow_tf32 = False
    size = seeded.OSVOS_SIZES[0]
    frame, _ = seeded.osvos_pair(size, seed=400)
    with torch.no_grad():
        outputs = seeded_net().to("cuda")(osvos_official_input(frame).to("cuda"))
    for j, side in enumerate(outputs):
        assert_relative(side[0, 0].cpu().numpy(), golden[f"osvos_{size[0]}x{size[1]}_side{j}"], tol=1e-3)


def test_the_method_cuts_the_fused_output_at_the_threshold(tmp_path):
    from vosbench.methods.base import Video
    from vosbench_baselines.official import OSVOSOfficial

    net = seeded_net().eval()
    path = tmp_path / "parent_epoch-239.pth"
    torch.save(net.state_dict(), path)
    frames = seeded.smooth_frames(2, (37, 51), seed=7)
    first = seeded.two_objects((37, 51))
    video = Video("cut", list(frames), ["00000", "00001"], {0: first}, [1, 2])
    with torch.no_grad():
        prob = torch.sigmoid(net(osvos_official_input(frames[1]))[-1][0, 0]).numpy()
    assert 0.05 < (prob > OSVOS_THRESHOLD).mean() < 0.95 and ((prob > 0.5) != (prob > OSVOS_THRESHOLD)).any()
    for threshold in (OSVOS_THRESHOLD, 0.5):
        masks = list(OSVOSOfficial(device="cpu", weights=str(path), finetune_steps=0, threshold=threshold).segment(video))
        # Without fine-tuning both objects' networks are the parent: ties go to the first object.
        np.testing.assert_array_equal(masks[1], np.where(prob > threshold, 1, 0))
