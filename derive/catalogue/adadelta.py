"""torch.optim.Adadelta (torch 2.13 adadelta.py, Zeiler 2012): running averages of squared
gradients and of squared updates, both with rho, eps inside both square roots, and lr scaling
the update (torch's addition to the paper, default 1.0).

The update reads the OLD acc_delta: delta = sqrt(acc_delta + eps)/sqrt(square_avg + eps)*g, then
acc_delta <- rho*acc_delta + (1 - rho)*delta^2. torch's weight_decay is coupled L2 (it enters g
before both averages); the decoupled forms shrink theta beside lr*delta and leave the averages
alone, as optax's adadelta chained with add_decayed_weights and Keras's Adadelta do."""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .. import stages as S
from .adam import STEP
from .base import DECAYS, NONNEGATIVE, Entry, Hyper, Scalar, State
from .common import MAXIMIZE, eps, lr, weight_decay

STATES = (STEP,
          State("v", "square_avg", NONNEGATIVE, "v", "v",
                "Adadelta's square average (EMA of squared gradients)"),
          State("acc", "acc_delta", NONNEGATIVE, "u", "u",
                "Adadelta's accumulated updates (EMA of squared deltas)"))


def _delta(c, h):
    rho, acc = h["rho"], c.state["acc"]
    # eps inside both square roots; the old acc_delta scales this step's delta
    delta = sp.sqrt(acc + h["eps"]) / sp.sqrt(c.state["v"] + h["eps"]) * c.u
    return replace(c.with_state(acc=rho * acc + (1 - rho) * delta**2), u=delta)


SQUARE_AVG = S.square_average("rho")
DELTA = S.Stage("adadelta_delta", _delta,
                "delta = sqrt(u + eps)/sqrt(v + eps)*g, then u <- rho*u + (1 - rho)*delta^2")


def _stages(spec) -> tuple:
    return S.place_decay(spec, [S.COUNT] + S.signed(spec), [SQUARE_AVG, DELTA])


ENTRIES = (Entry(
    name="adadelta", torch_class="torch.optim.Adadelta",
    reference="torch 2.13 torch/optim/adadelta.py",
    hypers=(lr("1.0"),
            Hyper("rho", (Scalar("rho", "0.9", r"\rho", "ρ",
                                 "coefficient of both running averages (`rho`)", "9/10",
                                 high="1"),), "Invalid rho value: {value}"),
            eps("1e-6"), weight_decay("0")),
    flags=dict(MAXIMIZE),
    states=STATES, stages=_stages, present=lambda spec: ("t", "v", "acc"),
    positional=("lr", "rho", "eps", "weight_decay", "foreach"),
    keyword=("capturable", "maximize", "differentiable"),
    check_order=("lr", "rho", "eps", "weight_decay"),
    read_order=("lr", "rho", "eps", "weight_decay"),
    decays=tuple(DECAYS),
),)
