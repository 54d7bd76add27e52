"""AMP: torch.amp.GradScaler around the generated optimizer, bfloat16 autocast on the CPU, against
torch.optim's own class in the same loop. One step's loss is made to overflow: the scaler must
skip that step for both (no parameter change, no state, no step count) and lower its scale."""
from __future__ import annotations

import pytest
import torch

from dropin import SPECS, compare, optimizers, spec_id, tensors

STEPS, OVERFLOW_AT = 20, 7
RTOL = 8 * torch.finfo(torch.float32).eps


def train(make):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    opt = make(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    g = torch.Generator().manual_seed(1)
    scales, skipped = [], []
    for k in range(STEPS):
        x = torch.randn(8, 4, generator=g)
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(model(x).float(), torch.sin(x.sum(1, keepdim=True)))
        if k == OVERFLOW_AT:
            loss = loss * float("inf")  # an overflowing step: inf gradients
        before = [p.detach().clone() for p in model.parameters()]
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        skipped.append(all(torch.equal(a, p) for a, p in zip(before, model.parameters())))
    return tensors(list(model.parameters()), opt), scales, skipped


def _run(spec, plant=False):
    cls, kwargs, generated = optimizers(spec, plant=plant)
    theirs = train(lambda ps: cls(ps, **kwargs))
    ours = train(lambda ps: generated(ps, **kwargs))
    return ours, theirs


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_grad_scaler_with_bf16_autocast_matches_torch(spec):
    (ours, scales, skipped), (theirs, their_scales, their_skipped) = _run(spec)
    assert compare(ours, theirs, torch.float32)["rel"] <= RTOL
    assert scales == their_scales and skipped == their_skipped
    assert skipped[OVERFLOW_AT] and scales[OVERFLOW_AT] < scales[OVERFLOW_AT - 1]
    assert sum(skipped) == 1  # every other step moved the parameters


def test_negative_control_planted_bug_is_caught_under_grad_scaler():
    (ours, _, _), (theirs, _, _) = _run(SPECS[-1], plant=True)
    assert compare(ours, theirs, torch.float32)["rel"] > 30 * RTOL
