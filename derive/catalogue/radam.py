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
base.DECAYS are offered as for Adam.

Two of Adam's axes apply (derive.catalogue.adam): `eps_added_to`, whose torch value here is
sqrt_v (optax's radam adds eps to sqrt(v_hat): r_t*m_hat/(sqrt(v_hat + eps_root) + eps)), and
optax's `eps_root`; RAdam has no AMSGrad, and no framework drops its bias correction."""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import sympy as sp

from .. import stages as S
from .adam import EPS_ROOT, STATES
from .base import DECAYS, Entry, on
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


EPS_ADDED_TO = {
    "sqrt_v": "eps added to sqrt(v), the bias correction in the step size (torch): "
              "r_t*m_hat*sqrt(1 - beta2^t)/(sqrt(v) + eps)",
    "sqrt_v_hat": "eps added to sqrt(v_hat) (optax radam): r_t*m_hat/(sqrt(v_hat) + eps)",
}


@lru_cache(maxsize=None)
def direction(eps_added_to: str, root: bool) -> S.Stage:
    """The rectified direction under the axes: one Stage per combination (torch's is
    RADAM_DIRECTION); eps_root is added to the moment eps is added to the root of."""
    if (eps_added_to, root) == ("sqrt_v", False):
        return RADAM_DIRECTION

    def fn(c, h):
        t, b1, b2, r = c.state["t"], h["beta1"], h["beta2"], h["eps_root"] if root else 0
        m_hat = c.state["m"] / (1 - b1**t)
        rho_inf, rho_t = rho(b2, t)
        rect = sp.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                       / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        v = c.state["v"]
        adaptive = (1 / (sp.sqrt(v / (1 - b2**t) + r) + h["eps"]) if eps_added_to == "sqrt_v_hat"
                    else sp.sqrt(1 - b2**t) / (sp.sqrt(v + r) + h["eps"]))
        return replace(c, u=sp.Piecewise((m_hat * adaptive * rect, rho_t > 5), (m_hat, True)))

    inner = ("v_hat" if eps_added_to == "sqrt_v_hat" else "v") + (" + eps_root" if root else "")
    scale = "" if eps_added_to == "sqrt_v_hat" else "*sqrt(1 - beta2^t)"
    return S.Stage("radam_direction" + ("_sqrt_v_hat" if eps_added_to == "sqrt_v_hat" else "")
                   + ("_eps_root" if root else ""), fn,
                   f"rectified direction: m_hat*r_t{scale}/(sqrt({inner}) + eps) where "
                   "rho_t > 5, else m_hat")


def _stages(spec) -> tuple:
    core = [S.MOMENTS, direction(spec.choice("eps_added_to"), on(spec, "eps_root"))]
    return S.place_decay(spec, [S.COUNT] + S.signed(spec), core)


ENTRIES = (Entry(
    name="radam", torch_class="torch.optim.RAdam", reference="torch 2.13 torch/optim/radam.py",
    hypers=(lr("1e-3"), betas("0.9", "0.999"), eps("1e-8"), weight_decay("0"), EPS_ROOT),
    flags={**MAXIMIZE, "decoupled_weight_decay": False},
    states=STATES[:3],
    stages=_stages,
    present=lambda spec: ("t", "m", "v"),
    positional=("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay"),
    keyword=("foreach", "maximize", "capturable", "differentiable"),
    check_order=("lr", "eps", "betas", "weight_decay"),
    read_order=("betas", "lr", "weight_decay", "eps"),
    decays=tuple(DECAYS), decay_flag="decoupled_weight_decay",
    choices={"eps_added_to": EPS_ADDED_TO}, switches=("weight_decay", "eps_root"),
),)
