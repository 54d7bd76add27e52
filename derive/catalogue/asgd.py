"""torch.optim.ASGD (torch 2.13 asgd.py): SGD with a decaying step size eta_t, a shrink of the
parameter by (1 - lambd*eta) at every step, and Polyak-Ruppert averaging of the parameters
(torch's `ax`), which never feeds back into the step.

The order is torch's: the step uses the OLD eta (lr on the first step) for both the shrink and
the gradient step; the average uses the OLD mu and is a plain copy of the parameter while that
mu is exactly 1 (torch's `if mu.item() != 1: ax += mu*(param - ax) else: ax.copy_(param)`, a
switch on a scalar); then eta = lr/(1 + lambd*lr*t)**alpha and mu = 1/max(1, t - t0) from the
new step count. torch keeps eta and mu as 0-dim tensors in its scalar dtype (float32 unless the
default dtype is float64), so they are rounded when stored; the generated optimizers store them
in the same dtype.

Decay: torch's coupled L2 only. `lambd` already is a decoupled decay, scaled by the running step
size eta rather than by lr; a second decoupled convention would be ambiguous (scaled by lr, which
ASGD reads only through eta, or by eta, which duplicates lambd) and no framework offers one.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .. import stages as S
from .adam import STEP
from .base import REAL, Entry, Hyper, Scalar, State
from .common import MAXIMIZE, lr, weight_decay


def _step(c, h):
    eta = c.state["etat"]
    # torch: param.mul_(1 - lambd*eta); param.add_(grad, alpha=-eta), with the old eta and the
    # gradient taken before the shrink; written as that product, so the generated step is
    # those two operations (eta is not lr: the lr scaling of place_decay does not apply)
    return replace(c, theta=c.theta * (1 - h["lambd"] * eta) - eta * c.u)


def _average(c, h):
    mu, ax = c.state["mut"], c.state["ax"]
    # ax + mu*(theta - ax), written so that the new theta stays one subexpression (the step
    # computes it once, as torch does, and the average is one lerp towards it)
    return c.with_state(ax=sp.Piecewise((c.theta, sp.Eq(mu, 1)), ((1 - mu) * ax + mu * c.theta,
                                                                  True)))


def _schedule(c, h):
    t = c.state["t"]
    return c.with_state(etat=h["lr"] / (1 + h["lambd"] * h["lr"] * t) ** h["alpha"],
                        mut=1 / sp.Max(1, t - h["t0"]))


ASGD_STEP = S.Stage("asgd_step", _step, "theta <- theta*(1 - lambd*eta) - eta*g, the old eta")
AVERAGE = S.Stage("average", _average, "ax <- theta while mu == 1, else ax + mu*(theta - ax), "
                                       "the old mu")
SCHEDULE = S.Stage("schedule", _schedule, "eta <- lr/(1 + lambd*lr*t)^alpha, "
                                          "mu <- 1/max(1, t - t0)")


def _stages(spec) -> tuple:
    decay = [S.DECAY_L2] if spec.decay_on() else []
    return tuple(S.signed(spec) + [S.COUNT] + decay + [ASGD_STEP, AVERAGE, SCHEDULE])


ENTRIES = (Entry(
    name="asgd", torch_class="torch.optim.ASGD", reference="torch 2.13 torch/optim/asgd.py",
    foreach_differs="torch's foreach ASGD computes eta and mu with tensor operations in the "
                    "float32 scalar dtype, its loop from Python floats: they differ by an ulp",
    hypers=(lr("1e-2"),
            # torch's constructor checks none of lambd, alpha and t0, and optequiv refuses no
            # value torch takes: their domain is every real, so that the engine (a mapping's
            # admissibility, A's domain) assumes no sign the spec language does not enforce
            # (a lambd of -0.1 made B = A "not an optimizer torch would build"). A negative
            # lambd grows theta by (1 + |lambd|*eta) and eta = lr/(1 + lambd*lr*t)**alpha; once
            # lambd*lr*t <= -1, torch's own step divides by zero or takes a complex power (its
            # loop keeps the real part, its foreach gives NaN)
            Hyper("lambd", (Scalar("lambd", "1e-4", r"\lambda_{d}", "λd",
                                   "decay term (`lambd`)", "1/10000", low=None),)),
            Hyper("alpha", (Scalar("alpha", "0.75", r"\alpha", "α",
                                   "power for the eta update (`alpha`)", "3/4", low=None),)),
            Hyper("t0", (Scalar("t0", "1e6", "T_0", "T₀",
                                "point at which to start averaging (`t0`)", "100", low=None),)),
            weight_decay("0")),
    flags=dict(MAXIMIZE),
    states=(STEP,
            # real, not nonnegative: with a negative lambd torch's eta turns negative (lr = 1,
            # lambd = -0.6, alpha = 1: eta = -5 at the second step)
            State("etat", "eta", REAL, r"\eta", "η",
                  "ASGD's step size (starts at lr)", init=lambda spec, h: h["lr"], scalar=True,
                  via_default_dtype=True),
            State("mut", "mu", (("positive", True),), r"\mu", "μ",
                  "ASGD's averaging weight (starts at 1)", init=lambda spec, h: 1, scalar=True,
                  via_default_dtype=True),
            State("ax", "ax", REAL, r"\bar{\theta}", "θ̄",
                  "ASGD's average of the parameters (torch's ax)", output=True)),
    stages=_stages,
    present=lambda spec: ("t", "etat", "mut", "ax"),
    positional=("lr", "lambd", "alpha", "t0", "weight_decay", "foreach", "maximize",
                "differentiable", "capturable"),
    keyword=(),
    check_order=("lr", "weight_decay"),
    read_order=("lambd", "lr", "t0", "alpha", "weight_decay"),
    decays=("l2",),
),)
