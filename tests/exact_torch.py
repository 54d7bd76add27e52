"""An exact-arithmetic simulator of torch.optim's SGD, Adam and AdamW: the differential oracle's
reference for the equivalence engine.

Written from torch's documented algorithms (the docstrings and the single-tensor loops of
torch 2.13's torch/optim/sgd.py, adam.py, adamw.py; ../shared/REFERENCE.md quotes them) and
from the README's table for optequiv's extra keys. It deliberately shares no code with derive/
(no stages, rules or unrolling): a bug there must not be copied here. tests/test_exact_torch.py
checks it against torch.optim itself in float64, with a planted bug as negative control.

A configuration is a plain dict with torch's keyword names (`lr`, `momentum`, `dampening`,
`weight_decay`, `nesterov`, `maximize`, `betas`, `eps`, `amsgrad`, `decoupled_weight_decay`) plus
`family` (sgd | adam | adamw) and optequiv's `decay` (l2 | decoupled | independent | after) and
`buffer` (torch | zero). Values may be ints, Fractions, sympy numbers or sympy expressions with
symbols; the arithmetic is chosen by an `Ops` backend:
  FRACTION  exact rationals (SGD only: no square roots), fast;
  SYMPY     exact and symbolic (theta_k as an expression in unknown hyperparameters or gradients);
  MP        mpmath at 100 digits, for Adam on numbers (see `MP` for why that is a safe test of
            equality there);
  FLOAT     Python floats, to compare with torch.optim in float64.
Branches are taken on the values, as torch takes them: momentum == 0 means no buffer at all,
weight_decay == 0 no decay stage. A symbolic value takes the branch of its generic (non-zero)
value; a caller who wants the other branch substitutes the 0, and the simulator then branches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import mpmath
import sympy as sp

# torch 2.13's keyword defaults (sgd.py, adam.py, adamw.py), and optequiv's extra keys
DEFAULTS = {
    "sgd": {"lr": Fraction(1, 1000), "momentum": 0, "dampening": 0, "weight_decay": 0,
            "nesterov": False, "maximize": False, "buffer": "torch"},
    "adam": {"lr": Fraction(1, 1000), "betas": (Fraction(9, 10), Fraction(999, 1000)),
             "eps": Fraction(1, 10**8), "weight_decay": 0, "amsgrad": False,
             "maximize": False, "decoupled_weight_decay": False},
    "adamw": {"lr": Fraction(1, 1000), "betas": (Fraction(9, 10), Fraction(999, 1000)),
              "eps": Fraction(1, 10**8), "weight_decay": Fraction(1, 100), "amsgrad": False,
              "maximize": False},
}
STATE_KEYS = {"sgd": ("buf",), "adam": ("t", "m", "v", "vmax"), "adamw": ("t", "m", "v", "vmax")}


@dataclass(frozen=True)
class Ops:
    name: str
    num: Callable  # an input value in this arithmetic
    sqrt: Callable
    max: Callable
    is_zero: Callable


def _fraction(x):
    if isinstance(x, (bool, str)):
        raise TypeError(f"not a number: {x!r}")
    if isinstance(x, sp.Basic):
        if not x.is_Rational:
            raise TypeError(f"not a rational: {x}")
        return Fraction(int(x.p), int(x.q))
    return Fraction(x)


def _no_sqrt(x):
    raise TypeError("FRACTION arithmetic has no square root: use SYMPY or MP for Adam")


def _sympy(x):
    if isinstance(x, Fraction):
        return sp.Rational(x.numerator, x.denominator)
    return sp.sympify(x)


def _sympy_zero(x) -> bool:
    z = x.is_zero
    return bool(z) if z is not None else sp.simplify(x) == 0


FRACTION = Ops("fraction", _fraction, _no_sqrt, max, lambda x: x == 0)
SYMPY = Ops("sympy", _sympy, sp.sqrt, sp.Max, _sympy_zero)

# Adam's square roots make exact comparison of theta_k a question about sums of nested radicals,
# which sympy answers slowly or not at all; mpmath at 100 digits answers it with a margin. The
# round-off of a few hundred operations at 100 digits is below 1e-90 relative, while a true
# difference between two such algebraic numbers built from small rationals in <= 8 steps is far
# above 1e-50 (root-separation bounds for numbers of small height and degree <= 2**8), so
# `same` below calls values equal under 1e-70 and different above 1e-50, and refuses in between.
_MP = mpmath.MPContext()
_MP.dps = 100


def _mp(x):
    if isinstance(x, Fraction):
        return _MP.mpf(x.numerator) / x.denominator
    if isinstance(x, sp.Basic):
        if x.free_symbols:
            raise TypeError(f"MP arithmetic needs numbers, got {x}")
        if x.is_Rational:
            return _MP.mpf(int(x.p)) / int(x.q)
        return _MP.mpf(str(sp.N(x, 110)))
    if isinstance(x, float):
        return _MP.mpf(x)
    return _MP.mpf(x) if not isinstance(x, str) else _MP.mpf(x)


MP = Ops("mp", _mp, _MP.sqrt, max, lambda x: x == 0)
FLOAT = Ops("float", float, math.sqrt, max, lambda x: x == 0)


def same(a, b, ops: Ops = MP, scale=1) -> bool:
    """Exact equality, or (MP) equality within the margin documented above."""
    if ops is not MP:
        d = a - b
        return bool(_sympy_zero(sp.sympify(d))) if ops is SYMPY else d == 0
    d = abs(_mp(a) - _mp(b))
    size = max(abs(_mp(a)), abs(_mp(b)), abs(_mp(scale)), _MP.mpf(1))
    if d <= size * _MP.mpf(10) ** -70:
        return True
    if d > size * _MP.mpf(10) ** -50:
        return False
    raise ArithmeticError(f"difference {mpmath.nstr(d, 5)} is inside the margin: undecidable at "
                          "100 digits")


# -- configurations -------------------------------------------------------------------------------

def normalize(config: dict) -> dict:
    """Every key filled with torch's default, `decay` resolved (torch SGD and Adam: coupled L2;
    AdamW and Adam(decoupled_weight_decay=True): decoupled, lr-scaled)."""
    family = config["family"]
    out = {"family": family, **DEFAULTS[family]}
    out.update({k: v for k, v in config.items() if v is not None})
    if "decay" not in config:
        out["decay"] = "decoupled" if family == "adamw" or out.get("decoupled_weight_decay") \
            else "l2"
    if family != "sgd":
        out["beta1"], out["beta2"] = out.pop("betas")
    return out


def torch_refusal(config: dict) -> str | None:
    """torch's constructor checks (its wording) on numeric values; None when torch builds it.
    A symbolic value passes (its admissibility is the caller's question). Dampening in [0, 1]
    is optequiv's range (torch does not check it)."""
    c = normalize(config)

    def bad(value, test):
        value = _sympy(value)
        return value.is_number and bool(test(value))

    if bad(c["lr"], lambda x: x < 0):
        return f"Invalid learning rate: {c['lr']}"
    if c["family"] == "sgd":
        if bad(c["momentum"], lambda x: x < 0):
            return f"Invalid momentum value: {c['momentum']}"
        # torch does not check dampening: SGD(dampening=1.5) is an optimizer it builds
        if c["nesterov"] and (bad(c["momentum"], lambda x: x <= 0)
                              or not _sympy_zero(_sympy(c["dampening"]))):
            return "Nesterov momentum requires a momentum and zero dampening"
    else:
        if bad(c["eps"], lambda x: x < 0):
            return f"Invalid epsilon value: {c['eps']}"
        for i in (1, 2):
            if bad(c[f"beta{i}"], lambda x: x < 0 or x >= 1):
                return f"Invalid beta parameter at index {i - 1}: {c[f'beta{i}']}"
    if bad(c["weight_decay"], lambda x: x < 0):
        return f"Invalid weight_decay value: {c['weight_decay']}"
    return None


def initial_state(config: dict, start: dict | None = None, ops: Ops = SYMPY) -> dict:
    """torch's fresh state (start=None: Adam's t = 0 and zero moments; SGD's buffer not yet
    created, or 0 for buffer=zero), or a given mid-run state {buf_0|t_0, m_0, v_0, vmax_0}
    (keys with or without the _0 suffix)."""
    c = normalize(config)
    if start is None:
        if c["family"] == "sgd":
            return {"buf": ops.num(0) if c["buffer"] == "zero" else None}
        return {"t": 0, "m": ops.num(0), "v": ops.num(0), "vmax": ops.num(0)}
    given = {k.removesuffix("_0"): v for k, v in start.items()}
    out = {}
    for key in STATE_KEYS[c["family"]]:
        if key in given:
            out[key] = given[key] if key == "t" else ops.num(given[key])
        elif key == "vmax":
            out[key] = out.get("v")  # a state torch reaches has vmax >= v; v is the least
    if c["family"] == "sgd":
        out.setdefault("buf", None)
    else:
        out.setdefault("t", 0)
    return out


# -- one step, as torch's single-tensor loop ------------------------------------------------------

def sgd_buffer(buf, g, momentum, dampening):
    """torch: the first step copies the gradient, undampened; later steps dampen."""
    if buf is None:
        return g
    return momentum * buf + (1 - dampening) * g


def adam_denominator(vv, bc2, eps, ops: Ops):
    """eps is added to sqrt(v)/sqrt(bc2), the bias-corrected sqrt, not inside the root."""
    return ops.sqrt(vv) / ops.sqrt(bc2) + eps


def step(c: dict, state: dict, theta, grad, ops: Ops):
    """(state_{t-1}, theta_{t-1}, g_t) -> (state_t, theta_t) for a normalized configuration c
    whose values are already in `ops`' arithmetic."""
    state = dict(state)
    lr, wd = c["lr"], c["weight_decay"]
    g = -grad if c["maximize"] else grad  # maximize negates first; L2 is added after
    decay = None if ops.is_zero(wd) else c["decay"]
    if decay == "l2":
        g = g + wd * theta
    elif decay == "decoupled":
        theta = theta * (1 - lr * wd)
    elif decay == "independent":
        theta = theta * (1 - wd)
    if c["family"] == "sgd":
        mu = c["momentum"]
        if not ops.is_zero(mu):
            state["buf"] = buf = sgd_buffer(state.get("buf"), g, mu, c["dampening"])
            g = g + mu * buf if c["nesterov"] else buf
        theta = theta - lr * g
    else:
        b1, b2 = c["beta1"], c["beta2"]
        t = state["t"] + 1  # Adam's step count: 1 on the first step
        m = b1 * state["m"] + (1 - b1) * g
        v = b2 * state["v"] + (1 - b2) * g * g
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        state.update(t=t, m=m, v=v)
        vv = v
        if c["amsgrad"]:
            state["vmax"] = vv = ops.max(state["vmax"], v)  # the max over raw v, not v-hat
        theta = theta - (lr / bc1) * m / adam_denominator(vv, bc2, c["eps"], ops)
    if decay == "after":
        theta = theta - lr * wd * theta
    return state, theta


@dataclass
class Trajectory:
    theta: list  # theta_0 ... theta_K
    states: list  # state_0 ... state_K
    grads: list  # g_1 ... g_K (as fed)


def run(config: dict, theta0, grads, steps: int | None = None, state0: dict | None = None,
        ops: Ops = SYMPY) -> Trajectory:
    """`steps` steps of the optimizer from theta0. `grads` is a sequence g_1, g_2, ... (open
    loop) or a function of theta (closed loop: g_k = grads(theta_{k-1}))."""
    c = normalize(config)
    for key, value in list(c.items()):
        if key in ("lr", "momentum", "dampening", "weight_decay", "beta1", "beta2", "eps"):
            c[key] = ops.num(value)
    steps = len(grads) if steps is None else steps
    state = initial_state(config, state0, ops)
    theta = ops.num(theta0)
    out = Trajectory([theta], [state], [])
    for k in range(steps):
        g = grads(theta) if callable(grads) else ops.num(grads[k])
        state, theta = step(c, state, theta, g, ops)
        out.theta.append(theta)
        out.states.append(state)
        out.grads.append(g)
    return out


def needs_sqrt(config: dict) -> bool:
    return config["family"] != "sgd"


def ops_for(*configs) -> Ops:
    """Exact rationals where no square root occurs, mpmath at 100 digits otherwise."""
    return MP if any(needs_sqrt(c) for c in configs) else FRACTION
