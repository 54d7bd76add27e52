"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2):
theta <- theta*(1 - lr*lambda) - lr*sign(beta1*m + (1 - beta1)*g), then
m <- beta2*m + (1 - beta2)*g.

torch has no class for it: the reference is the paper's algorithm (lion-pytorch's update, whose
signature `Lion(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0)` the generated class
keeps). The paper's decay is decoupled, lr-scaled (AdamW's form), so that is the first
convention; the others are offered as for every entry (L2 puts lambda*theta inside the sign and
the momentum). maximize negates the gradient first, as torch's optimizers do.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .. import stages as S
from .base import DECAYS, REAL, Entry, Hyper, Scalar, State
from .common import MAXIMIZE, lr, weight_decay


def _lion(c, h):
    b1, b2, m = h["beta1"], h["beta2"], c.state["m"]
    # the sign reads the momentum before this step's update: the interpolation beta1 is not
    # the momentum's decay beta2 (the paper's point: the step sees more of g than m keeps)
    return replace(c, u=sp.sign(b1 * m + (1 - b1) * c.u)).with_state(m=b2 * m + (1 - b2) * c.u)


LION = S.Stage("lion", _lion,
               "Lion: direction sign(beta1*m + (1 - beta1)*g), then m <- beta2*m + (1 - beta2)*g")

BETAS = Hyper("betas", (
    Scalar("beta1", "0.9", r"\beta_1", "β₁",
           "weight of the momentum in the sign's argument (`betas[0]`)", "9/10", high="1",
           high_strict=True),
    Scalar("beta2", "0.99", r"\beta_2", "β₂", "decay rate of the momentum (`betas[1]`)",
           "99/100", high="1", high_strict=True)),
    "Invalid beta parameter at index {index}: {value}")

ENTRIES = (Entry(
    name="lion", torch_class=None,
    reference="Chen et al. (2023), Symbolic Discovery of Optimization Algorithms, Algorithm 2",
    hypers=(lr("1e-4"), BETAS, weight_decay("0")),
    flags=dict(MAXIMIZE),
    states=(State("m", "exp_avg", REAL, "m", "m",
                  "Lion's momentum (EMA of gradients with rate $beta_2$)"),),
    stages=lambda spec: S.place_decay(spec, S.signed(spec), [LION]),
    present=lambda spec: ("m",),
    positional=("lr", "betas", "weight_decay"),
    keyword=("maximize", "foreach", "fused"),
    check_order=("lr", "betas", "weight_decay"),
    read_order=("betas", "lr", "weight_decay"),
    decays=("decoupled",) + tuple(d for d in DECAYS if d != "decoupled"),
    # no torch class: these are the generated class's own implementations
    implementations=("loop", "foreach", "fused"),
),)
