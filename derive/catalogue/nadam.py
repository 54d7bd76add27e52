"""torch.optim.NAdam (torch 2.13 nadam.py): Adam's moments with Dozat's Nesterov momentum and
a momentum schedule.

    mu_t = beta1*(1 - 0.96^(t*psi)/2)          psi: momentum_decay
    P_t = P_{t-1}*mu_t                         torch's mu_product, P_0 = 1
    d = sqrt(v_t/(1 - beta2^t)) + eps          eps outside the square root
    theta_t = theta_{t-1} - lr*((1 - mu_t)/(1 - P_t)*g/d + mu_{t+1}/(1 - P_t*mu_{t+1})*m_t/d)

decoupled_weight_decay=True is decay=decoupled (theta*(1 - lr*wd) first); the lr-independent
and after-the-step forms of base.DECAYS are offered too. torch keeps P in a 0-dim tensor of its
scalar dtype (float32 unless the default dtype is float64), so it rounds P every step.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .. import stages as S
from .adam import STEP
from .base import DECAYS, NONNEGATIVE, REAL, Entry, Hyper, Scalar, State
from .common import MAXIMIZE, betas, eps, lr, weight_decay

STATES = (STEP,
          State("m", "exp_avg", REAL, "m", "m", "Adam's first moment (EMA of gradients)"),
          State("v", "exp_avg_sq", NONNEGATIVE, "v", "v",
                "Adam's second moment (EMA of squared gradients)"),
          State("muprod", "mu_product", NONNEGATIVE, r"\Pi", "Π",
                "NAdam's product of the momentum schedule, $mu_1*mu_2*...*mu_t$",
                init=lambda spec, h: 1, scalar=True))


def mu(h, t) -> sp.Expr:
    """The momentum schedule at step t: beta1*(1 - 0.96^(t*psi)/2), exactly (0.96 is 24/25)."""
    return h["beta1"] * (1 - sp.Rational(1, 2) * sp.Rational(24, 25) ** (t * h["momentum_decay"]))


def _product(c, h):
    return c.with_state(muprod=c.state["muprod"] * mu(h, c.state["t"]))


def _direction(c, h):
    # reads the product the previous stage stored: torch reads its mu_product tensor back
    t, product, g = c.state["t"], c.state["muprod"], c.u
    now, later = mu(h, t), mu(h, t + 1)
    denom = sp.sqrt(c.state["v"] / (1 - h["beta2"] ** t)) + h["eps"]
    return replace(c, u=(1 - now) / (1 - product) * g / denom
                   + later / (1 - product * later) * c.state["m"] / denom)


PRODUCT = S.Stage("mu_product", _product, "momentum schedule product P_t = P_{t-1}*mu_t")
DIRECTION = S.Stage("nadam_direction", _direction,
                    "Nesterov direction (1 - mu_t)/(1 - P_t)*g/d "
                    "+ mu_{t+1}/(1 - P_t*mu_{t+1})*m/d, d = sqrt(v_hat) + eps")


def _stages(spec) -> tuple:
    return S.place_decay(spec, [S.COUNT] + S.signed(spec), [PRODUCT, S.MOMENTS, DIRECTION])


ENTRIES = (Entry(
    name="nadam", torch_class="torch.optim.NAdam", reference="torch 2.13 torch/optim/nadam.py",
    hypers=(lr("2e-3"), betas("0.9", "0.999"), eps("1e-8"), weight_decay("0"),
            Hyper("momentum_decay", (Scalar("momentum_decay", "4e-3", r"\psi", "ψ",
                                            "momentum decay (`momentum_decay`)", "1/250"),),
                  "Invalid momentum_decay value: {value}")),
    flags={**MAXIMIZE, "decoupled_weight_decay": False},
    states=STATES, stages=_stages, present=lambda spec: ("t", "m", "v", "muprod"),
    positional=("lr", "betas", "eps", "weight_decay", "momentum_decay",
                "decoupled_weight_decay"),
    keyword=("foreach", "maximize", "capturable", "differentiable"),
    check_order=("lr", "eps", "betas", "weight_decay", "momentum_decay"),
    read_order=("betas", "lr", "weight_decay", "momentum_decay", "eps"),
    decays=tuple(DECAYS), decay_flag="decoupled_weight_decay",
    sparse_message="NAdam does not support sparse gradients",
),)
