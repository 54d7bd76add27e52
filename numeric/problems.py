"""The deterministic problem the cross-checks run on: a small MLP with a 0-dim parameter, and an
ill-conditioned quadratic, in one model.

Parameters (name: shape):
    mlp.w1 (6, 3)   mlp.b1 (6,)   mlp.w2 (1, 6)   mlp.b2 (1,)   mlp.scale ()   the MLP
    quad (12,)      0.5 * sum(a * (quad - c)**2), curvatures a from 0.1 to 10
    late (4,)       a quadratic term that joins the loss late (grad None before)

`gradients(params, step)` sets `quad`'s gradient to None on some steps and `late`'s until it
joins, the two cases torch's machinery treats specially (no state, no step count, no decay).
Everything is drawn from a seeded generator in float64 on the CPU, then cast, so every copy of
the problem starts from the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

NAMES = ("mlp.w1", "mlp.b1", "mlp.w2", "mlp.b2", "mlp.scale", "quad", "late")
GROUPS = (NAMES[:5], NAMES[5:])  # the MLP, then the quadratic parts
LATE = "late"  # the parameter whose first gradient comes at late_from


@dataclass
class Problem:
    seed: int = 0
    skip_every: int = 4  # quad's grad is None on steps with step % skip_every == 2
    late_from: int = 5  # late's first gradient comes at this step

    def __post_init__(self):
        g = torch.Generator().manual_seed(self.seed)

        def draw(*shape, scale=1.0):
            return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

        self.init = {"mlp.w1": draw(6, 3, scale=0.7), "mlp.b1": draw(6, scale=0.1),
                     "mlp.w2": draw(1, 6, scale=0.5), "mlp.b2": draw(1, scale=0.1),
                     "mlp.scale": torch.tensor(1.3, dtype=torch.float64),
                     "quad": draw(12), "late": draw(4)}
        self.x = draw(16, 3)
        self.y = torch.sin(self.x.sum(1, keepdim=True))
        self.a = torch.logspace(-1, 1, 12, dtype=torch.float64)
        self.c = draw(12, scale=0.5)

    def params(self, dtype=torch.float64, device="cpu") -> dict:
        """A fresh copy of the initial parameters, name -> torch.nn.Parameter."""
        return {n: torch.nn.Parameter(v.to(device=device, dtype=dtype).clone())
                for n, v in self.init.items()}

    def loss(self, p: dict, step: int) -> torch.Tensor:
        dev, dt = p["quad"].device, p["quad"].dtype
        x, y = self.x.to(dev, dt), self.y.to(dev, dt)
        hidden = torch.tanh(x @ p["mlp.w1"].T + p["mlp.b1"])
        out = p["mlp.scale"] * (hidden @ p["mlp.w2"].T + p["mlp.b2"])
        loss = ((out - y) ** 2).mean()
        loss = loss + 0.5 * (self.a.to(dev, dt) * (p["quad"] - self.c.to(dev, dt)) ** 2).sum()
        if step >= self.late_from:  # LATE joins
            loss = loss + 0.25 * (p["late"] ** 2).sum() * (1 + 0.5 * torch.cos(
                torch.tensor(float(step), dtype=dt, device=dev)))
        return loss

    def gradients(self, p: dict, step: int) -> dict:
        """name -> gradient at `p` for `step` (1-based), or None where the parameter gets none."""
        with torch.enable_grad():
            grads = torch.autograd.grad(self.loss(p, step), [p[n] for n in NAMES],
                                        allow_unused=True)
        out = dict(zip(NAMES, (None if g is None else g.detach() for g in grads)))
        if self.skip_every and step % self.skip_every == 2:  # 0: no step without one
            out["quad"] = None
        return out
