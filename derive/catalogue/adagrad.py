"""torch.optim.Adagrad (torch 2.13 adagrad.py): a sum of squared gradients that starts at
initial_accumulator_value, eps added after its square root, and lr decayed by the step count,
clr = lr/(1 + (t - 1)*lr_decay) with t the post-increment count (step 1 uses lr itself).

The decayed lr is folded into the direction (u = g/((sqrt(sum) + eps)(1 + (t - 1)*lr_decay))),
so that lr*u is torch's step and the decoupled conventions keep their meaning: decoupled is
theta*(1 - lr*weight_decay) - lr*u with the undecayed lr, as optax's adagrad chained with
add_decayed_weights and Keras's Adagrad (neither decays its lr by the count) do. torch's
weight_decay is coupled L2. torch makes the state in __init__, from the constructor's values."""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .. import stages as S
from .adam import STEP
from .base import DECAYS, NONNEGATIVE, Entry, Hyper, Scalar, State
from .common import MAXIMIZE, eps, lr, weight_decay

STATES = (STEP,
          State("sumsq", "sum", NONNEGATIVE, r"\mathrm{state\_sum}", "state_sum",
                "Adagrad's sum of squared gradients (from initial_accumulator_value)",
                init=lambda spec, h: h["initial_accumulator_value"]))


def _accumulate(c, h):
    return c.with_state(sumsq=c.state["sumsq"] + c.u**2)


def _direction(c, h):
    # eps after the square root; the count's lr decay (t is the post-increment count)
    clr = 1 + (c.state["t"] - 1) * h["lr_decay"]
    return replace(c, u=c.u / ((sp.sqrt(c.state["sumsq"]) + h["eps"]) * clr))


ACCUMULATE = S.Stage("accumulate", _accumulate, "sum of squares: state_sum <- state_sum + g^2")
DIRECTION = S.Stage("adagrad_direction", _direction,
                    "direction g / ((sqrt(state_sum) + eps)*(1 + (t - 1)*lr_decay))")


def _stages(spec) -> tuple:
    return S.place_decay(spec, [S.COUNT] + S.signed(spec), [ACCUMULATE, DIRECTION])


ENTRIES = (Entry(
    name="adagrad", torch_class="torch.optim.Adagrad",
    reference="torch 2.13 torch/optim/adagrad.py",
    hypers=(lr("1e-2"),
            Hyper("lr_decay", (Scalar("lr_decay", "0", r"\eta", "η",
                                      "learning-rate decay per step (`lr_decay`)", "1/2"),),
                  "Invalid lr_decay value: {value}"),
            weight_decay("0"),
            Hyper("initial_accumulator_value", (Scalar(
                "initial_accumulator_value", "0", r"\tau", "τ",
                "first value of the sum of squares (`initial_accumulator_value`)", "1/10"),),
                "Invalid initial_accumulator_value value: {value}"),
            eps("1e-10")),
    flags=dict(MAXIMIZE),
    states=STATES, stages=_stages, present=lambda spec: ("t", "sumsq"),
    positional=("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps",
                "foreach"),
    keyword=("maximize", "differentiable", "fused"),
    check_order=("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"),
    read_order=("lr", "weight_decay", "lr_decay", "eps"),
    decays=tuple(DECAYS),
    implementations=("loop", "foreach", "fused"),
    sparse="touched",
    sparse_refused={"fused": "`fused` does not support sparse grad or complex param",
                    "weight_decay": "weight_decay option is not compatible with sparse gradients"},
    eager_state=True,
),)
