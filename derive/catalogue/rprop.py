"""torch.optim.Rprop (torch 2.13 rprop.py): resilient backpropagation, one step size per
coordinate, grown by etaplus while the gradient keeps its sign, shrunk by etaminus where it
flips (and that gradient then counts as 0), clamped to [step_size_min, step_size_max]; the
parameter moves by sign(g) times its step size.

No weight decay, and no `decay` key: torch's Rprop has no weight_decay, and none of the
conventions means what it means elsewhere. A coupled L2 term changes only the sign the rule reads;
a decoupled one is scaled by lr, which Rprop reads once (the first step size) and never again, so
"decoupled, lr-scaled" has no lr to scale by. optax.rprop has no decay either. Giving Rprop one
would be a new optimizer with no reference to check it against; a user who wants one composes it.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .. import stages as S
from .adam import STEP
from .base import NONNEGATIVE, REAL, Entry, Hyper, Scalar, State
from .common import MAXIMIZE, lr


def _rprop(c, h):
    g, prev, size = c.u, c.state["prev"], c.state["delta"]
    same = g * prev  # torch: sign(g*prev), so an underflowing product counts as 0
    factor = sp.Piecewise((h["etaplus"], same > 0), (h["etaminus"], same < 0), (1, True))
    # torch's clamp_(min, max) is min(max(x, min), max)
    new_size = sp.Min(sp.Max(size * factor, h["step_size_min"]), h["step_size_max"])
    kept = sp.Piecewise((0, same < 0), (g, True))  # where the sign flipped, g counts as 0
    return replace(c, u=sp.sign(kept) * new_size).with_state(prev=kept, delta=new_size)


RPROP = S.Stage("rprop", _rprop, "step sizes times etaplus / etaminus / 1 by the sign of "
                        "g*prev, clamped; direction sign(g) * step size (g = 0 where it flipped)")

ENTRIES = (Entry(
    name="rprop", torch_class="torch.optim.Rprop", reference="torch 2.13 torch/optim/rprop.py",
    hypers=(lr("1e-2"),
            Hyper("etas", (
                Scalar("etaminus", "0.5", r"\eta_{-}", "η₋",
                       "multiplicative decrease factor (`etas[0]`)", "1/2", low_strict=True,
                       high="1", high_strict=True),
                Scalar("etaplus", "1.2", r"\eta_{+}", "η₊",
                       "multiplicative increase factor (`etas[1]`)", "6/5", low="1",
                       low_strict=True)),
                "Invalid eta values: {first}, {second}"),
            Hyper("step_sizes", (
                Scalar("step_size_min", "1e-6", r"\Gamma_{\min}", "Γₘᵢₙ",
                       "smallest step size (`step_sizes[0]`)", "1/1000000"),
                Scalar("step_size_max", "50", r"\Gamma_{\max}", "Γₘₐₓ",
                       "largest step size (`step_sizes[1]`)", "50")))),
    flags=dict(MAXIMIZE),
    states=(STEP,
            State("prev", "prev", REAL, r"g^{\mathrm{prev}}", "gᵖʳᵉᵛ",
                  "the previous gradient (0 where its sign flipped)"),
            State("delta", "step_size", NONNEGATIVE, r"\eta", "η",
                  "Rprop's step size of each coordinate (starts at lr)",
                  init=lambda spec, h: h["lr"])),
    stages=lambda spec: tuple(S.signed(spec) + [S.COUNT, RPROP, S.APPLY]),
    present=lambda spec: ("t", "prev", "delta"),
    positional=("lr", "etas", "step_sizes"),
    keyword=("capturable", "foreach", "maximize", "differentiable"),
    check_order=("lr", "etas"),
    read_order=("etas", "step_sizes", "lr"),
    decays=(), switches=(),
),)
