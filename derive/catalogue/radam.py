"""torch.optim.RAdam (torch 2.13 radam.py): Adam's moments with Liu et al.'s variance
rectification. rho_inf = 2/(1 - beta2) - 1 is the longest simple moving average the EMA
approximates, rho_t = rho_inf - 2*t*beta2**t/(1 - beta2**t) its length at step t; while
rho_t <= 5 the step is the bias-corrected momentum alone (no adaptive scaling), afterwards it is
scaled by the rectification r_t and by sqrt(1 - beta2**t)/(sqrt(v) + eps), eps on the raw
sqrt(v) as torch adds it. The switch depends on t and beta2 only (a scalar switch: the generated
code is an if/else on it, as torch's loop is); rho_t <= t for every beta2, so the first five
steps are always the plain momentum step.

decoupled_weight_decay=True is decay=decoupled (theta*(1 - lr*weight_decay), before the
moments in torch; they never read theta, so the order is immaterial); the other conventions of
base.DECAYS are offered as for Adam."""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .. import stages as S
from .adam import STATES
from .base import DECAYS, Entry
from .common import MAXIMIZE, betas, eps, lr, weight_decay


def rho(beta2, t):
    """(rho_inf, rho_t), rho_t in lowest terms at a numeric step (rho_1 = 1, so the switch
    folds away where the step is known)."""
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    return rho_inf, (sp.cancel(sp.together(rho_t)) if t.is_number else rho_t)


def _radam_direction(c, h):
    t, b1, b2 = c.state["t"], h["beta1"], h["beta2"]
    m_hat = c.state["m"] / (1 - b1**t)
    rho_inf, rho_t = rho(b2, t)
    rect = sp.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
    # torch: adaptive_lr = bias_correction2 ** 0.5 / (sqrt(v) + eps)
    adaptive = sp.sqrt(1 - b2**t) / (sp.sqrt(c.state["v"]) + h["eps"])
    return replace(c, u=sp.Piecewise((m_hat * adaptive * rect, rho_t > 5), (m_hat, True)))


RADAM_DIRECTION = S.Stage("radam_direction", _radam_direction,
                          "rectified direction: m_hat*r_t*sqrt(1 - beta2^t)/(sqrt(v) + eps) "
                          "where rho_t > 5, else m_hat")


def _stages(spec) -> tuple:
    return S.place_decay(spec, [S.COUNT] + S.signed(spec), [S.MOMENTS, RADAM_DIRECTION])


ENTRIES = (Entry(
    name="radam", torch_class="torch.optim.RAdam", reference="torch 2.13 torch/optim/radam.py",
    hypers=(lr("1e-3"), betas("0.9", "0.999"), eps("1e-8"), weight_decay("0")),
    flags={**MAXIMIZE, "decoupled_weight_decay": False},
    states=STATES[:3],
    stages=_stages,
    present=lambda spec: ("t", "m", "v"),
    positional=("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay"),
    keyword=("foreach", "maximize", "capturable", "differentiable"),
    check_order=("lr", "eps", "betas", "weight_decay"),
    read_order=("betas", "lr", "weight_decay", "eps"),
    decays=tuple(DECAYS), decay_flag="decoupled_weight_decay",
),)
