"""MaskTrack: RGB + previous mask through a zero-initialised stem, deformed-mask training, propagation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vosbench.io.datasets import DavisDataset
from vosbench.methods.base import Video
from vosbench.methods.registry import get_method
from vosbench_baselines.masktrack import MaskTrack, MaskTrackNet, deform_mask, dilate_by_size, flow_magnitude_image
from vosbench_baselines.single_frame import SegNet, SingleFrameTask, default_weights, load_trained

from test_osvos import mean_j, tiny_root, tiny_video  # noqa: F401  (fixture re-used)


def test_registered():
    assert get_method("masktrack") is MaskTrack


def test_packaged_weights_load_strictly():
    path = default_weights("masktrack")
    assert path.is_file(), "the trained network ships with the package"
    net = MaskTrackNet()
    meta = load_trained(net, path)
    assert meta["steps"] > 0
    assert net.mask_stem.weight.abs().sum() > 0, "training moved the mask stem away from zero"


def test_zero_initialised_mask_stem_starts_as_the_rgb_network():
    torch.manual_seed(0)
    rgb = SegNet().eval()
    with_mask = MaskTrackNet().eval()
    with_mask.load_state_dict({**with_mask.state_dict(), **rgb.state_dict()})
    assert torch.count_nonzero(with_mask.mask_stem.weight) == 0
    x = torch.rand(1, 3, 64, 80) * 255
    prior = (torch.rand(1, 1, 64, 80) > 0.5).float()
    with torch.no_grad():
        assert torch.allclose(with_mask(x, prior), rgb(x), atol=1e-5)
        # Once the stem is non-zero the mask changes the output.
        with_mask.mask_stem.weight.add_(0.1)
        assert not torch.allclose(with_mask(x, prior), rgb(x), atol=1e-3)


def _blob(h=96, w=128):
    mask = np.zeros((h, w), np.uint8)
    mask[30:70, 40:90] = 1
    return mask


def test_deformed_mask_is_a_plausible_previous_prediction():
    mask = _blob()
    rng = np.random.default_rng(0)
    ious = []
    for _ in range(30):
        out = deform_mask(mask, rng, drop=0.0)
        assert out.dtype == np.uint8 and out.shape == mask.shape and set(np.unique(out)) <= {0, 1}
        union = np.logical_or(out, mask).sum()
        ious.append(np.logical_and(out, mask).sum() / union)
    ious = np.array(ious)
    assert (ious < 0.999).all(), "every sample is deformed"
    assert ious.mean() > 0.5, "but still overlaps the object"


def test_deformation_is_seeded():
    mask = _blob()
    a = deform_mask(mask, np.random.default_rng(4))
    b = deform_mask(mask, np.random.default_rng(4))
    assert np.array_equal(a, b)
    assert not deform_mask(np.zeros_like(mask), np.random.default_rng(0)).any()


def test_propagates_on_the_embedded_dataset(tiny_root):  # noqa: F811
    video, gt = tiny_video(tiny_root)
    outputs = list(MaskTrack(device="cpu", finetune_steps=10).segment(video))
    assert len(outputs) == len(gt)
    assert np.array_equal(outputs[0], gt[0])
    assert all(o.shape == gt[0].shape and o.dtype == np.uint8 for o in outputs)
    assert set(np.unique(np.concatenate(outputs))) <= set(np.unique(gt[0]))
    # Frame 1 follows the given mask of frame 0.
    assert mean_j(outputs[:2], gt[:2]) > 0.3


def test_the_previous_mask_steers_the_output(tiny_root):  # noqa: F811
    """With the mask channel blanked from frame 1 on, the output changes: the network uses it."""
    video, _ = tiny_video(tiny_root)
    method = MaskTrack(device="cpu")
    net = method.parent()
    frame = torch.from_numpy(np.asarray(video.frames[1])).permute(2, 0, 1)[None].float()
    prior = torch.from_numpy((video.given_masks[0] > 0).astype(np.float32))[None, None]
    with torch.no_grad():
        with_prior = net(frame, prior)
        without = net(frame, torch.zeros_like(prior))
    assert not torch.allclose(with_prior, without, atol=1e-2)


def _moving_square_video(shift: int = 6) -> tuple[Video, np.ndarray]:
    """A textured square moving right by `shift` px per frame over a textured background."""
    rng = np.random.default_rng(0)
    background = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    texture = (rng.random((30, 30, 3)) * 255).astype(np.uint8)
    frames, masks = [], []
    for t in range(3):
        frame, mask = background.copy(), np.zeros((96, 128), np.uint8)
        frame[30:60, 20 + shift * t:50 + shift * t] = texture
        mask[30:60, 20 + shift * t:50 + shift * t] = 1
        frames.append(frame)
        masks.append(mask)
    names = [f"{t:05d}" for t in range(3)]
    return Video("square", frames, names, {0: masks[0]}, [1]), np.stack(masks)


@pytest.mark.parametrize("warp", [False, True])
def test_flow_warp_moves_the_prior_with_the_object(warp):
    """With warp_prior the mask fed with frame 1 follows the square to where it now is; without it,
    it is the first mask as it was."""
    video, masks = _moving_square_video()
    method = MaskTrack(device="cpu", finetune_steps=0, warp_prior=warp)
    assert method.options["warp_prior"] is warp
    method.parent()   # sets up the device
    priors = []

    class Recorder(torch.nn.Module):
        def forward(self, x, prior):
            priors.append(prior[0, 0].numpy().astype(np.uint8))
            return torch.zeros(1, 1, *x.shape[-2:])

    method.finetuned_networks = lambda video: [(1, Recorder())]
    list(method.segment(video))

    # Share of the square's new position the prior covers (backward warping may also leave the
    # uncovered background behind it labelled: MaskTrack's refinement is what removes that).
    covered = (priors[0] & masks[1]).sum() / masks[1].sum()
    if warp:
        assert covered > 0.9   # 0.8 without warping: the square moved 6 of its 30 px
    else:
        np.testing.assert_array_equal(priors[0], masks[0])
        assert covered < 0.85


def test_flow_stream_feeds_the_motion_of_the_moving_square_and_averages_the_streams():
    video, masks = _moving_square_video()
    method = MaskTrack(device="cpu", finetune_steps=0, flow_stream=True)
    assert method.options["flow_stream"] is True
    method.parent()
    inputs = []

    class Recorder(torch.nn.Module):
        """Logit +4 on RGB input, -4 on the flow stream's grey input: the average is probability 0.5."""
        def forward(self, x, prior):
            inputs.append(x[0].numpy())
            grey = bool((x[0, 0] == x[0, 1]).all() and (x[0, 1] == x[0, 2]).all())
            return torch.full((1, 1, *x.shape[-2:]), -4.0 if grey else 4.0)

    tuned_on = []

    def finetuned_networks(video, image=None):
        tuned_on.append(image)
        method.last_finetune_seconds = 0.0
        return [(1, Recorder())]

    method.finetuned_networks = finetuned_networks
    outputs = list(method.segment(video))
    # The RGB stream's copy learns from frame 0, the flow stream's from frame 0's flow magnitude.
    assert tuned_on[0] is None and tuned_on[1].shape == (96, 128, 3)
    assert tuned_on[1][masks[0] > 0].mean() > 4 * tuned_on[1][(masks[0] == 0) & (masks[1] == 0)].mean()
    assert len(inputs) == 4                 # two streams on each of frames 1 and 2
    motion = inputs[1][0]                   # frame 1's flow stream, one channel
    # The moving square is brighter than the still background in the flow's magnitude.
    assert motion[masks[1] > 0].mean() > 4 * motion[(masks[0] == 0) & (masks[1] == 0)].mean()
    assert not outputs[1].any()             # logit(0.5) = 0: not above 0.5, so background


def test_flow_magnitude_image_is_grey_and_spans_the_range():
    flow = np.zeros((4, 5, 2), np.float32)
    flow[1, 2] = (3.0, 4.0)
    flow[0, 0] = (0.0, 2.5)
    image = flow_magnitude_image(flow)
    assert image.shape == (4, 5, 3) and image.dtype == np.uint8
    assert image[1, 2].tolist() == [255] * 3 and image[0, 0].tolist() == [127] * 3 and image[3, 4].max() == 0
    assert not flow_magnitude_image(np.zeros((2, 2, 2), np.float32)).any()


def test_prior_dilation_grows_the_mask_by_a_share_of_its_size():
    mask = np.zeros((100, 100), np.uint8)
    mask[40:60, 30:70] = 1                                   # box 20 x 40: size sqrt(800) = 28.3
    grown = dilate_by_size(mask, 0.1)                        # radius round(2.83) = 3
    assert grown[37, 50] and not grown[36, 50] and grown[50, 27] and not grown[50, 26]
    assert (grown >= mask).all()
    np.testing.assert_array_equal(dilate_by_size(mask, 0.0), mask)
    assert not dilate_by_size(np.zeros_like(mask), 0.5).any()


def test_training_feeds_a_deformed_mask(tiny_root):  # noqa: F811
    dataset = DavisDataset(tiny_root, year=2017, split="train")
    task = SingleFrameTask("masktrack", dataset, batch_size=2, seed=0, options={"crop": 48})
    before = task.net.mask_stem.weight.detach().clone()
    losses = task.step()
    assert np.isfinite(losses["loss"])
    assert not torch.equal(task.net.mask_stem.weight, before), "the mask stem learns"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(tiny_root):  # noqa: F811
    video, gt = tiny_video(tiny_root)
    outputs = list(MaskTrack(device="cuda").segment(video))
    assert len(outputs) == len(gt)
