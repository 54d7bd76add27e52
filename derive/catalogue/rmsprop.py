"""torch.optim.RMSprop (torch 2.13 rmsprop.py): a square average with smoothing constant alpha,
eps added after the square root, the centered form (Graves 2013) and a momentum buffer.

torch's branches, each a different stage tuple: centered keeps grad_avg and divides by
sqrt(square_avg - grad_avg^2) + eps; momentum > 0 keeps a zero-initialised buffer of the
normalised gradients, buf = momentum*buf + g/avg, and steps by lr*buf. torch's weight_decay is
coupled L2; the decoupled forms are Keras's (its RMSprop decays the variable by lr*weight_decay)
and optax's (add_decayed_weights placed after the scaling)."""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .. import stages as S
from .adam import STEP
from .base import DECAYS, NONNEGATIVE, REAL, Entry, Hyper, Scalar, State, on
from .common import MAXIMIZE, eps, lr, weight_decay

STATES = (STEP,
          State("v", "square_avg", NONNEGATIVE, "v", "v",
                "RMSprop's square average (EMA of squared gradients)"),
          State("gavg", "grad_avg", REAL, r"g^{ave}", "gᵃᵛᵉ",
                "centered RMSprop's gradient average (EMA of gradients)"),
          State("buf", "momentum_buffer", REAL, "b", "b",
                "RMSprop's momentum buffer of normalised gradients (zero at the start)"))


def _grad_avg(c, h):
    a = h["alpha"]
    # torch: grad_avg.lerp_(grad, 1 - alpha), this in exact arithmetic
    return c.with_state(gavg=a * c.state["gavg"] + (1 - a) * c.u)


def _normalise(c, h):
    v = c.state["v"]
    if "gavg" in c.state:
        v = v - c.state["gavg"] ** 2
    # eps after the square root, as torch (TensorFlow puts it inside)
    return replace(c, u=c.u / (sp.sqrt(v) + h["eps"]))


def _momentum(c, h):
    buf = h["momentum"] * c.state["buf"] + c.u
    return replace(c.with_state(buf=buf), u=buf)


SQUARE_AVG = S.square_average("alpha")
GRAD_AVG = S.Stage("grad_avg", _grad_avg, "centered: gradient average g_ave <- alpha*g_ave + "
                   "(1 - alpha)*g")
NORMALISE = S.Stage("rms_direction", _normalise,
                    "direction g / (sqrt(v) + eps); centered: sqrt(v - g_ave^2) + eps")
MOMENTUM = S.Stage("rms_momentum", _momentum,
                   "momentum > 0: buf <- momentum*buf + direction; direction = buf")


def _stages(spec) -> tuple:
    core = [SQUARE_AVG] + ([GRAD_AVG] if spec.flag("centered") else []) + [NORMALISE] \
        + ([MOMENTUM] if on(spec, "momentum") else [])
    return S.place_decay(spec, [S.COUNT] + S.signed(spec), core)


def _present(spec) -> tuple:
    return ("t", "v") + (("gavg",) if spec.flag("centered") else ()) \
        + (("buf",) if on(spec, "momentum") else ())


ENTRIES = (Entry(
    name="rmsprop", torch_class="torch.optim.RMSprop",
    reference="torch 2.13 torch/optim/rmsprop.py",
    hypers=(lr("1e-2"),
            Hyper("alpha", (Scalar("alpha", "0.99", r"\alpha", "α",
                                   "smoothing constant of the square average (`alpha`)",
                                   "99/100"),), "Invalid alpha value: {value}"),
            eps("1e-8"), weight_decay("0"),
            Hyper("momentum", (Scalar("momentum", "0", r"\mu", "μ", "momentum", "9/10"),),
                  "Invalid momentum value: {value}")),
    flags={"centered": False, **MAXIMIZE},
    states=STATES, stages=_stages, present=_present,
    # torch's RMSprop has no keyword-only argument: capturable comes before foreach
    positional=("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "capturable",
                "foreach", "maximize", "differentiable"),
    keyword=(),
    check_order=("lr", "eps", "momentum", "weight_decay", "alpha"),
    # momentum and centered are read first, but torch's __setstate__ gives them defaults
    read_order=("lr", "alpha", "eps", "weight_decay"),
    decays=tuple(DECAYS),
    switches=("momentum", "weight_decay"),
    # torch refuses only alpha < 0 and optequiv takes every alpha torch takes (the generated
    # optimizers give torch's NaN). But v >= 0, which the engine assumes of the square average
    # (its symbols are nonnegative, from a mid-run state too), is an invariant of
    # v <- alpha*v + (1 - alpha)*g^2 only for alpha <= 1, a convex combination; past 1 torch's
    # first step with g != 0 makes v < 0 and theta NaN. So compare proves nothing there: a
    # numeric alpha > 1 is undecided, a symbolic one enters valid_when as alpha <= 1
    model_constraints=lambda spec, h: [(1 - h["alpha"], False)],
    model_reason="for alpha > 1 the square average v = alpha*v + (1 - alpha)*g^2 turns "
                 "negative at the first non-zero gradient and torch's step is NaN, while the "
                 "engine takes v >= 0",
    # v and gavg are EMAs of g^2 and g with one alpha from 0: their difference is a variance
    invariants=lambda s: [s["v"] - s["gavg"] ** 2] if "gavg" in s else [],
),)
