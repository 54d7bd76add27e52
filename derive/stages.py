"""The stages that update rules are composed of: small pure maps on a Carry.

A step threads one Carry through an ordered tuple of stages (see derive.rules). Following optax,
the decay stage `decay` adds weight_decay*theta_{t-1} to the update direction, and *where it
stands* decides the convention:

    before momentum/moments         coupled L2            (torch SGD, Adam)
    after the adaptive scaling      decoupled, lr-scaled  (torch AdamW: theta*(1 - lr*wd) - lr*u)
    after scaling by lr             decoupled, lr-independent (Loshchilov & Hutter: theta*(1 - wd))

Since the adaptive direction never depends on theta, `theta - lr*(u + wd*theta)` is exactly torch's
`theta*(1 - lr*wd) - lr*u`: the decoupled form is one stage moved, not a second rule.
Every stage acts on one coordinate at a time (no stage mixes coordinates), which is why one scalar
coordinate suffices symbolically: a vector parameter is independent copies of it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping

import sympy as sp


@dataclass(frozen=True)
class Carry:
    theta_prev: sp.Expr  # theta_{t-1}: where the gradient was taken; decay stages read it
    theta: sp.Expr  # the parameter as the stages leave it (changed by apply / decay_after)
    u: sp.Expr  # the update direction; starts as the raw gradient
    state: Mapping  # optimizer state, name -> value (None: not yet created, as torch's lazy buffer)

    def with_state(self, **changes) -> "Carry":
        return replace(self, state={**self.state, **changes})


@dataclass(frozen=True)
class Stage:
    name: str
    fn: Callable[[Carry, Mapping], Carry]
    doc: str  # one line for derivations: what the stage does, in words
    elementwise: bool = True  # acts on each coordinate alone (no norms, no cross-coordinate sums)


def _negate(c, h):
    return replace(c, u=-c.u)


def _decay(c, h):
    return replace(c, u=c.u + h["weight_decay"] * c.theta_prev)


def _momentum(c, h):
    buf = c.state["buf"]
    # torch: the first step copies the gradient (buf is None, no dampening); later steps damp
    new = c.u if buf is None else h["momentum"] * buf + (1 - h["dampening"]) * c.u
    return c.with_state(buf=new)


def _nesterov(c, h):
    return replace(c, u=c.u + h["momentum"] * c.state["buf"])


def _use_buffer(c, h):
    return replace(c, u=c.state["buf"])


def _count(c, h):
    return c.with_state(t=c.state["t"] + 1)


def _moments(c, h):
    b1, b2 = h["beta1"], h["beta2"]
    # torch computes m as lerp(m, g, 1 - beta1), which equals this in exact arithmetic
    return c.with_state(m=b1 * c.state["m"] + (1 - b1) * c.u,
                        v=b2 * c.state["v"] + (1 - b2) * c.u**2)


def square_average(rate: str, state: str = "v") -> Stage:
    """The stage `state <- rate*state + (1 - rate)*g^2`: an exponential moving average of the
    squared gradient, `rate` naming the smoothing hyperparameter (RMSprop's alpha, Adadelta's
    rho). torch computes it as mul_(rate).addcmul_(g, g, value=1 - rate), this in exact
    arithmetic."""
    def square_avg(c, h):
        r = h[rate]
        return c.with_state(**{state: r * c.state[state] + (1 - r) * c.u**2})
    return Stage("square_avg", square_avg,
                 f"square average {state} <- {rate}*{state} + (1 - {rate})*g^2")


def _amsgrad(c, h):
    # the running max is over the raw second moment v, not over the bias-corrected v-hat;
    # from torch's fresh state vmax is 0 and v >= 0, so max(0, v) is v exactly
    vmax, v = c.state["vmax"], c.state["v"]
    return c.with_state(vmax=running_max(vmax, v))


def running_max(old, new) -> sp.Expr:
    """max(old, new) for a running maximum (AMSGrad's vmax, Adamax's infinity norm): `new`
    itself where old is torch's fresh 0 (callers pass a `new` that is >= 0 there)."""
    if old == 0:
        return new
    # Max's constructor looks for an argument that is never the larger one (factor_terms of
    # their difference): cheap on one step's symbols, exponential on composed iterates (8
    # composed AMSGrad steps ran for minutes), where it finds nothing anyway; kept unevaluated
    # there, so the composed form stays nested Max of shared subtrees
    if old.is_Atom or new.is_Atom or (old.is_number and new.is_number):
        return sp.Max(old, new)
    return _unevaluated_max(old, new)


def magnitude(x) -> sp.Expr:
    """|x|. Abs's constructor expands its argument to find a sign: instant on one step's
    symbols (|-g| is |g|), exponential on a composed iterate (Adamax's |g + wd*theta_{k-1}|
    with theta_{k-1} composed back to theta_0: minutes at k = 4), where it finds nothing; kept
    as it stands there, as running_max keeps Max."""
    shallow = all(a.is_Atom or all(b.is_Atom for b in a.args) for a in x.args)
    return sp.Abs(x) if shallow else sp.Abs(x, evaluate=False)


def _unevaluated_max(a, b) -> sp.Max:
    """Max(a, b) as it stands. Max(..., evaluate=False) would still sort its arguments by
    SymPy's key, which counts the nodes of the unshared tree: exponential in k as well."""
    result = sp.Expr.__new__(sp.Max, a, b)
    result._argset = frozenset((a, b))
    return result


def _adam_direction(c, h):
    t = c.state["t"]
    second = c.state["vmax"] if "vmax" in c.state else c.state["v"]
    m_hat = c.state["m"] / (1 - h["beta1"] ** t)
    # eps is added to sqrt(v-hat), outside the square root, as torch does
    return replace(c, u=m_hat / (sp.sqrt(second) / sp.sqrt(1 - h["beta2"] ** t) + h["eps"]))


def _scale_lr(c, h):
    return replace(c, u=h["lr"] * c.u)


def _apply(c, h):
    return replace(c, theta=c.theta - c.u)


def _decay_after(c, h):
    # old Hugging Face AdamW: decay the *updated* parameter after the Adam step
    return replace(c, theta=c.theta - h["lr"] * h["weight_decay"] * c.theta)


NEGATE = Stage("negate", _negate, "maximize: negate the gradient")
DECAY_L2 = Stage("decay", _decay, "coupled L2: add weight_decay*theta_{t-1} to the gradient")
DECAY_DECOUPLED = Stage("decay", _decay,
                        "decoupled decay: add weight_decay*theta_{t-1} to the scaled direction")
DECAY_INDEPENDENT = Stage("decay", _decay,
                          "lr-independent decay: add weight_decay*theta_{t-1} after the lr scaling")
MOMENTUM = Stage("momentum", _momentum, "momentum buffer")
NESTEROV = Stage("nesterov", _nesterov, "Nesterov: direction = g + momentum*buf")
USE_BUFFER = Stage("use_buffer", _use_buffer, "direction = buf")
COUNT = Stage("count", _count, "step count t <- t + 1")
MOMENTS = Stage("moments", _moments, "first and second moment averages")
AMSGRAD = Stage("amsgrad", _amsgrad, "AMSGrad: running max of the raw second moment")
ADAM_DIRECTION = Stage("adam_direction", _adam_direction,
                       "bias-corrected direction m_hat / (sqrt(v_hat) + eps)")
SCALE_LR = Stage("scale_lr", _scale_lr, "scale by the learning rate")
APPLY = Stage("apply", _apply, "theta <- theta - direction")
DECAY_AFTER = Stage("decay_after", _decay_after,
                    "decay after the step: theta <- theta - lr*weight_decay*theta (updated theta)")


# decay_scale: the decay factor of an lr-scaled convention is lr*weight_decay times this
# (Composer's lr/initial_lr over lr; timm's corrected lr^2/max_lr over lr). Written per lr, the
# decoupled decay stays one stage before the lr scaling, and no rule divides by lr
PER_LR = {"lr": lambda h: 1,
          "lr_ratio": lambda h: 1 / h["initial_lr"],
          "lr_squared_over_max": lambda h: h["lr"] / h["max_lr"]}
_SCALED = {"lr_ratio": "weight_decay*lr/initial_lr",
           "lr_squared_over_max": "weight_decay*lr^2/max_lr"}
_PER_LR = {"lr_ratio": "weight_decay*theta_{t-1}/initial_lr",
           "lr_squared_over_max": "weight_decay*theta_{t-1}*lr/max_lr"}


def _decoupled_scaled(scale: str) -> Stage:
    per_lr = PER_LR[scale]

    def decay(c, h):
        return replace(c, u=c.u + h["weight_decay"] * per_lr(h) * c.theta_prev)
    return Stage(f"decay_{scale}", decay,
                 f"decoupled decay by {_SCALED[scale]}: add {_PER_LR[scale]} to the scaled "
                 "direction")


def _after_scaled(scale: str) -> Stage:
    per_lr = PER_LR[scale]

    def decay_after(c, h):
        return replace(c, theta=c.theta - h["lr"] * per_lr(h) * h["weight_decay"] * c.theta)
    return Stage(f"decay_after_{scale}", decay_after,
                 f"decay after the step: theta <- theta - {_SCALED[scale]}*theta (updated theta)")


def _proximal(scale: str) -> Stage:
    per_lr = PER_LR[scale]

    def decay_proximal(c, h):
        # timm's Adan: param.div_(1 + lr*weight_decay), after the step
        return replace(c, theta=c.theta / (1 + h["lr"] * per_lr(h) * h["weight_decay"]))
    rate = "lr*weight_decay" if scale == "lr" else _SCALED[scale]
    return Stage("decay_proximal" if scale == "lr" else f"decay_proximal_{scale}",
                 decay_proximal, f"proximal decay after the step: theta <- theta/(1 + {rate})")


def _decay_after_bias_corrected(c, h):
    # MXNet 2.x AdamW: lr *= sqrt(1 - beta2^t)/(1 - beta1^t); w -= lr*d; w -= lr*wd*w
    t = c.state["t"]
    lr_c = h["lr"] * sp.sqrt(1 - h["beta2"] ** t) / (1 - h["beta1"] ** t)
    return replace(c, theta=c.theta - lr_c * h["weight_decay"] * c.theta)


DECAY_SCALED = {scale: _decoupled_scaled(scale) for scale in _SCALED}
DECAY_AFTER_SCALED = {scale: _after_scaled(scale) for scale in _SCALED}
DECAY_PROXIMAL = {scale: _proximal(scale) for scale in PER_LR}
DECAY_AFTER_BIAS_CORRECTED = Stage(
    "decay_after_bias_corrected", _decay_after_bias_corrected,
    "decay after the step with Adam's bias-corrected lr: theta <- theta - "
    "lr*sqrt(1 - beta2^t)/(1 - beta1^t)*weight_decay*theta (updated theta)")


def place_decay(spec, before: list, core: list) -> tuple:
    """before, then core (momentum, moments, the adaptive direction), the lr scaling and the
    update, with the decay stage placed where the spec's convention puts it: this position is
    the whole difference between the conventions."""
    decay = spec.decay if spec.decay_on() else None
    scale = spec.decay_scale
    out = list(before)
    out += [DECAY_L2] if decay == "l2" else []
    out += core
    if decay == "decoupled":
        out.append(DECAY_DECOUPLED if scale == "lr" else DECAY_SCALED[scale])
    out.append(SCALE_LR)
    out += [DECAY_INDEPENDENT] if decay == "independent" else []
    out.append(APPLY)
    if decay == "after":
        out.append(DECAY_AFTER if scale == "lr" else DECAY_AFTER_SCALED[scale])
    out += [DECAY_PROXIMAL[scale]] if decay == "proximal" else []
    out += [DECAY_AFTER_BIAS_CORRECTED] if decay == "after_bias_corrected" else []
    return tuple(out)


def signed(spec) -> list:
    """maximize: the gradient's sign first, as torch does before anything else reads it."""
    return [NEGATE] if spec.flag("maximize") else []
