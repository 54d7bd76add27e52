"""torch.optim.Adamax (torch 2.13 adamax.py): Adam's first moment over an infinity norm.

    m_t = beta1*m_{t-1} + (1 - beta1)*g_t
    u_t = max(beta2*u_{t-1}, |g_t| + eps)          eps inside the max, added to |g| (not to u)
    theta_t = theta_{t-1} - lr/(1 - beta1^t) * m_t/u_t

torch offers coupled L2 only; the decoupled forms are optax's adamaxw and Keras's weight_decay
(theta*(1 - lr*wd) - lr*u with u the direction above), and the lr-independent and after-the-step
ones of base.DECAYS. torch's bias correction scales lr (clr = lr/(1 - beta1^t)); here it is
folded into the direction, so that lr*u is torch's step and decoupled decay stays lr*wd.
"""
from __future__ import annotations

from dataclasses import replace

from .. import stages as S
from .adam import STEP
from .base import DECAYS, NONNEGATIVE, REAL, Entry, State
from .common import MAXIMIZE, betas, eps, lr, weight_decay

STATES = (STEP,
          State("m", "exp_avg", REAL, "m", "m", "Adam's first moment (EMA of gradients)"),
          State("uinf", "exp_inf", NONNEGATIVE, "u", "u",
                "Adamax's exponentially weighted infinity norm, $max(beta2*u, abs(g) + eps)$"))


def _infinity_norm(c, h):
    b1, g = h["beta1"], c.u
    # from torch's fresh state u = 0, and |g| + eps >= 0: max(0, |g| + eps) is |g| + eps exactly
    uinf = S.running_max(h["beta2"] * c.state["uinf"], S.magnitude(g) + h["eps"])
    return c.with_state(m=b1 * c.state["m"] + (1 - b1) * g, uinf=uinf)


def _direction(c, h):
    # torch divides lr by the bias correction (clr); folded here so that lr*u is its step
    return replace(c, u=c.state["m"] / ((1 - h["beta1"] ** c.state["t"]) * c.state["uinf"]))


INFINITY_NORM = S.Stage("infinity_norm", _infinity_norm,
                        "first moment and infinity norm max(beta2*u, |g| + eps)")
DIRECTION = S.Stage("adamax_direction", _direction,
                    "bias-corrected direction m / ((1 - beta1^t)*u)")


def _stages(spec) -> tuple:
    return S.place_decay(spec, [S.COUNT] + S.signed(spec), [INFINITY_NORM, DIRECTION])


ENTRIES = (Entry(
    name="adamax", torch_class="torch.optim.Adamax", reference="torch 2.13 torch/optim/adamax.py",
    hypers=(lr("2e-3"), betas("0.9", "0.999"), eps("1e-8"), weight_decay("0")),
    flags=dict(MAXIMIZE),
    states=STATES, stages=_stages, present=lambda spec: ("t", "m", "uinf"),
    positional=("lr", "betas", "eps", "weight_decay", "foreach"),
    keyword=("maximize", "differentiable", "capturable"),
    check_order=("lr", "eps", "betas", "weight_decay"),
    read_order=("betas", "eps", "lr", "weight_decay"),
    decays=tuple(DECAYS),
    sparse_message="Adamax does not support sparse gradients",
),)
