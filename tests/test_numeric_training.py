"""The issue's acceptance check: the generated optimizer trains a small model to the same
parameters as torch.optim's (float64, 1e-12 relative), through an lr scheduler and a save and
resume. Closed loop: each optimizer trains its own model, as in a real training script; torch's
run is never interrupted, the generated one is checkpointed to disk halfway and rebuilt from it
(model, optimizer and scheduler) in a fresh set of objects.
"""
from __future__ import annotations

import pytest
import torch

from optequiv.numeric import torch_optimizer
from optequiv.numeric.reference import torch_reference

STEPS, RESUME_AT, RTOL = 60, 30, 1e-12
SPECS = ["sgd(lr=0.05, momentum=0.9, nesterov=true, weight_decay=1e-3)",
         "adam(lr=0.01, weight_decay=0.01, amsgrad=true)",
         "adamw(lr=0.01, weight_decay=0.1)"]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="CUDA is not available (torch.cuda.is_available() is False)")




class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(),
                                        torch.nn.Linear(16, 1))
        self.temperature = torch.nn.Parameter(torch.tensor(1.0))  # a 0-dim parameter

    def forward(self, x):
        return self.body(x) / self.temperature


def build(make_optimizer, device):
    torch.manual_seed(0)
    model = Net().double().to(device)
    opt = make_optimizer(model.parameters())
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"] * 3,
                                                total_steps=STEPS)
    return model, opt, sched


def train(make_optimizer, device="cpu", checkpoint=None):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g, dtype=torch.float64).to(device)
    y = torch.sin(x.sum(1, keepdim=True))
    model, opt, sched = build(make_optimizer, device)
    for step in range(STEPS):
        if checkpoint is not None and step == RESUME_AT:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict()}, checkpoint)
            model, opt, sched = build(make_optimizer, device)  # a fresh process, in effect
            saved = torch.load(checkpoint, weights_only=True)
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"])
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu()


def relative(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("spec", SPECS)
def test_generated_optimizer_trains_to_torchs_parameters(spec, device, tmp_path):
    cls, kwargs = torch_reference(spec)
    theirs = train(lambda ps: cls(ps, **kwargs), device)
    ours = train(torch_optimizer(spec), device, checkpoint=tmp_path / "ckpt.pt")
    assert relative(ours, theirs) <= RTOL
    initial = torch.cat([p.detach().reshape(-1) for p in build(torch_optimizer(spec), device)[0]
                         .parameters()]).cpu()
    assert relative(theirs, initial) > 1e-2  # training moved the parameters far


def test_negative_control_adam_l2_does_not_train_like_adamw(tmp_path):
    theirs = train(lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1))
    ours = train(torch_optimizer("adam(lr=0.01, weight_decay=0.1)"), checkpoint=tmp_path / "c")
    assert relative(ours, theirs) > 1e-6
