"""Online fine-tuning's loop (shared by OSVOS, MaskTrack and STM): iterate averaging against the
plain mean of the iterates, written out step by step."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vosbench_baselines.training import finetune_online


def _net_and_loss(seed: int):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    net[0].bias.requires_grad_(False)           # a frozen parameter must stay as it was
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    seen: list[list[torch.Tensor]] = []
    calls = [0]

    def loss_of_step():
        calls[0] += 1
        seen.append([p.detach().clone() for p in net.parameters()])
        if calls[0] == 3:
            return None                          # a skipped step (e.g. every object warped away)
        return ((net(x) - y) ** 2).mean()

    return net, loss_of_step, seen


@pytest.mark.parametrize("average_last", [1, 4, 7])
def test_average_of_the_last_iterates(average_last):
    steps = 8
    plain, plain_loss, seen = _net_and_loss(0)
    finetune_online(plain, steps, 1e-2, plain_loss)
    # Iterate i (the weights after step i) is what step i + 1's loss saw; the last is the result.
    iterates = seen[1:] + [[p.detach().clone() for p in plain.parameters()]]
    # Step 2 (0-based) was skipped, so it made no iterate of its own.
    taken = [i for i in range(steps) if i != 2]
    window = [iterates[i] for i in taken if i >= steps - average_last]
    expected = [torch.stack(ps).mean(0) for ps in zip(*window)]

    averaged, averaged_loss, _ = _net_and_loss(0)
    frozen_before = averaged[0].bias.detach().clone()
    finetune_online(averaged, steps, 1e-2, averaged_loss, average_last=average_last)
    for got, want in zip(averaged.parameters(), expected):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert torch.equal(averaged[0].bias, frozen_before)
    if average_last > 1:
        assert not torch.allclose(averaged[2].weight, plain[2].weight)
    else:
        assert all(torch.equal(a, b) for a, b in zip(averaged.parameters(), plain.parameters()))
