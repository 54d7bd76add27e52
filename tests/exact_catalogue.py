"""An exact-arithmetic simulator of the element-wise torch.optim optimizers beyond SGD/Adam
(Adamax, NAdam, RAdam, RMSprop, Adagrad, Adadelta, ASGD, Rprop) and of Lion: the oracle that
derive's verdicts and the generated optimizers of the catalogue are tested against.

Written from torch 2.13's documented algorithms (the docstrings and the single-tensor loops of
torch/optim/{adamax,nadam,radam,rmsprop,adagrad,adadelta,asgd,rprop}.py) and, for Lion, from
Chen et al. 2023 (Alg. 1): theta <- theta(1 - lr*wd) - lr*sign(b1*m + (1-b1)*g), then
m <- b2*m + (1-b2)*g. Like tests/exact_torch.py it shares no code with derive/ or numeric/; it
borrows only exact_torch's number conversions and square roots. tests/test_exact_catalogue.py
checks it against torch.optim in float64, with planted bugs as negative controls.

    simulate(config, thetas0, grads, steps=None, ops=SYMPY) -> [(theta_k, state_k), k = 0..K]

`config` is a dict: `family` (adamax | nadam | radam | rmsprop | adagrad | adadelta | asgd |
rprop | lion) and torch's keyword names (`betas`, `etas`, `step_sizes` as pairs), plus optequiv's
`decay`. state_k is keyed by torch's state keys (`step`, `exp_avg`, `exp_inf`, `exp_avg_sq`,
`mu_product`, `square_avg`, `grad_avg`, `momentum_buffer`, `sum`, `acc_delta`, `eta`, `mu`,
`ax`, `prev`, `step_size`; Lion: `exp_avg`, as lion-pytorch names it). `thetas0` is one number
or a list of coordinates of one tensor; `grads` is a list of per-step gradients of the same
shape, or a function of theta (closed loop). Per-tensor scalars (step, mu_product, eta, mu)
appear once; the rest per coordinate, as torch holds them.

Decay conventions (`decay`, meaningful only with weight_decay != 0; eta_t = the group's lr, or
ASGD's eta; u = the optimizer's update). Adagrad's count decay lr/(1 + (t-1)*lr_decay) belongs
to its update u, as Adamax's bias correction lr/(1 - beta1^t) does: the decoupled decays scale by
the group's lr, the hyperparameter a scheduler sets (optax's and Keras's Adagrad, which offer the
decoupled decay, have no count decay to follow):
  l2           g <- g + wd*theta_{t-1} before the optimizer (torch's `weight_decay`);
  decoupled    theta_t = theta_{t-1}(1 - eta_t*wd) - eta_t*u (NAdam/RAdam decoupled_weight_decay,
               Lion's own decay, AdamW's form for the others);
  independent  theta_t = theta_{t-1}(1 - wd) - eta_t*u;
  after        theta <- theta_new - eta_t*wd*theta_new.
Offered where meaningful (DECAYS): Rprop has no scalar lr in force (lr is only the initial step
size) so only l2 and independent; ASGD has no `after`, because its average ax would have to
choose between the decayed and the undecayed theta. torch's Rprop has no weight_decay at all
(default 0 here); Lion's `maximize` negates g as torch does for the others (lion-pytorch has none).

Backends (`Arith`): FRACTION (exact rationals; refuses square roots and irrational powers),
SYMPY (exact and symbolic: max, min, sign stay sympy functions, a branch whose condition the
values do not decide becomes a Piecewise), MP (mpmath at 100 digits, as exact_torch.MP),
FLOAT64 (Python floats: torch under torch.set_default_dtype(torch.float64)) and FLOAT
(Python floats with torch's float32 0-dim scalar state). torch keeps step, mu_product, eta and
mu as 0-dim tensors of _get_scalar_dtype(): float32 unless the default dtype is float64.
step holds small integers (exact in float32); NAdam's `mu_product *= mu` is a float32 multiply
(mu is cast to float32 first; read back with .item()); ASGD's eta (initially lr) and mu are
rounded to float32 when stored and read back as such. FLOAT emulates exactly these; the exact
backends model the documented real-number algorithm (no float32 rounding), so they agree with
FLOAT64, and with FLOAT only to float32 precision for NAdam and ASGD. The algorithms' decimal
constants (NAdam's 0.96, 0.5; RAdam's 5) are the exact decimals.
Both float backends compute torch's `lerp_` (the moving averages exp_avg and grad_avg) as its
CPU kernel does, with fused multiply-adds: the plain formula's ulp is magnified past 1e-12 by
the cancellation in centered RMSprop. Elsewhere they follow torch's order of operations but not
its fused kernels (addcdiv, addcmul), so they match torch to about an ulp per operation, not
bit for bit.
Branches on hyperparameter values are taken as torch takes them; a symbolic value takes the
branch of its generic non-zero value (momentum > 0, weight_decay != 0), as in exact_torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np
import sympy as sp

import exact_torch as X

F = Fraction

# torch 2.13's keyword defaults (read from each class's __init__); Lion's from the paper
DEFAULTS = {
    "adamax": {"lr": F(2, 10**3), "betas": (F(9, 10), F(999, 1000)), "eps": F(1, 10**8),
               "weight_decay": 0, "maximize": False},
    "nadam": {"lr": F(2, 10**3), "betas": (F(9, 10), F(999, 1000)), "eps": F(1, 10**8),
              "weight_decay": 0, "momentum_decay": F(4, 10**3),
              "decoupled_weight_decay": False, "maximize": False},
    "radam": {"lr": F(1, 10**3), "betas": (F(9, 10), F(999, 1000)), "eps": F(1, 10**8),
              "weight_decay": 0, "decoupled_weight_decay": False, "maximize": False},
    "rmsprop": {"lr": F(1, 100), "alpha": F(99, 100), "eps": F(1, 10**8), "weight_decay": 0,
                "momentum": 0, "centered": False, "maximize": False},
    "adagrad": {"lr": F(1, 100), "lr_decay": 0, "weight_decay": 0,
                "initial_accumulator_value": 0, "eps": F(1, 10**10), "maximize": False},
    "adadelta": {"lr": 1, "rho": F(9, 10), "eps": F(1, 10**6), "weight_decay": 0,
                 "maximize": False},
    "asgd": {"lr": F(1, 100), "lambd": F(1, 10**4), "alpha": F(3, 4), "t0": 10**6,
             "weight_decay": 0, "maximize": False},
    "rprop": {"lr": F(1, 100), "etas": (F(1, 2), F(6, 5)), "step_sizes": (F(1, 10**6), 50),
              "maximize": False, "weight_decay": 0},
    "lion": {"lr": F(1, 10**4), "betas": (F(9, 10), F(99, 100)), "weight_decay": 0,
             "maximize": False},
}
FULL = ("l2", "decoupled", "independent", "after")
DECAYS = {**{f: FULL for f in DEFAULTS}, "rprop": ("l2", "independent"),
          "asgd": ("l2", "decoupled", "independent")}
PAIRS = {"betas": ("beta1", "beta2"), "etas": ("etaminus", "etaplus"),
         "step_sizes": ("step_size_min", "step_size_max")}
FLAGS = ("maximize", "centered", "decoupled_weight_decay")
SCALAR_STATE = ("step", "mu_product", "eta", "mu")  # torch's 0-dim per-tensor state


# -- arithmetic -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arith:
    name: str
    num: Callable
    sqrt: Callable
    max: Callable
    min: Callable
    sign: Callable
    pow: Callable  # base ** exponent, the exponent possibly non-integer
    is_zero: Callable
    ne: Callable  # a != b as a condition (sympy's != is structural, hence a function)
    choose: Callable  # choose(cond, then_fn, else_fn)
    lerp: Callable  # lerp(a, b, w) = a + w*(b - a), torch's lerp_ for its moving averages
    f32: Callable  # storing into torch's float32 0-dim state


def _pick(cond, then, other):
    return then() if cond else other()


def _sym_pick(cond, then, other):
    if cond in (True, sp.true):
        return then()
    if cond in (False, sp.false):
        return other()
    return sp.Piecewise((then(), cond), (other(), True))


def _fraction_pow(base, exponent):
    if F(exponent).denominator != 1:
        raise TypeError("FRACTION arithmetic has no irrational power: use SYMPY or MP")
    return F(base) ** int(exponent)


def _numeric_sign(x):
    return (x > 0) - (x < 0)


def _f32(x):
    return float(np.float32(x))


def _float_sign(x):
    return float(_numeric_sign(x))


def _fma(x, y, z):
    return float(F(x) * F(y) + F(z))  # one rounding, as std::fma


def _float_lerp(a, b, w):
    """torch's CPU lerp: fused multiply-adds, from whichever end is nearer the weight (checked
    bit for bit against torch.lerp in float64); a*w + b*(1-w) differs by an ulp, which cancellation
    in RMSprop's centered average magnifies past 1e-12."""
    return _fma(w, b - a, a) if abs(w) < 0.5 else _fma(a - b, 1 - w, b)


def _lerp(a, b, w):
    return a + w * (b - a)


_same = dict(is_zero=lambda x: x == 0, ne=lambda a, b: a != b, choose=_pick,
             f32=lambda x: x, lerp=_lerp)
FRACTION = Arith("fraction", X.FRACTION.num, X.FRACTION.sqrt, max, min,
                 lambda x: F(_numeric_sign(x)), _fraction_pow, **_same)
MP = Arith("mp", X.MP.num, X.MP.sqrt, max, min, lambda x: X.MP.num(_numeric_sign(x)),
           lambda b, e: X.MP.num(b) ** X.MP.num(e), **_same)
FLOAT64 = Arith("float64", float, math.sqrt, max, min, _float_sign,
                lambda b, e: float(b) ** float(e), **dict(_same, lerp=_float_lerp))
FLOAT = Arith("float", float, math.sqrt, max, min, _float_sign,
              lambda b, e: float(b) ** float(e), **dict(_same, f32=_f32, lerp=_float_lerp))
SYMPY = Arith("sympy", X.SYMPY.num, sp.sqrt, sp.Max, sp.Min, sp.sign,
              lambda b, e: X.SYMPY.num(b) ** X.SYMPY.num(e), X.SYMPY.is_zero,
              lambda a, b: sp.Ne(a, b), _sym_pick, _lerp, lambda x: x)


# -- configurations -------------------------------------------------------------------------------

def normalize(config: dict) -> dict:
    """Every key filled with torch's default, pairs split (beta1/beta2, etaminus/etaplus,
    step_size_min/step_size_max) and `decay` resolved: decoupled for Lion and for
    decoupled_weight_decay=True, else l2 (torch's weight_decay)."""
    family = config.get("family")
    if family not in DEFAULTS:
        raise ValueError(f"unknown family: {family!r}")
    unknown = set(config) - set(DEFAULTS[family]) - {"family", "decay"}
    if unknown:
        raise ValueError(f"{family} has no keyword {sorted(unknown)[0]!r}")
    out = {"family": family, **DEFAULTS[family]}
    out.update({k: v for k, v in config.items() if v is not None})
    native = "decoupled" if family == "lion" or out.get("decoupled_weight_decay") else "l2"
    decay = out.setdefault("decay", native)
    if decay not in DECAYS[family]:
        raise ValueError(f"decay={decay!r} is not offered for {family}: one of {DECAYS[family]}")
    if out.get("decoupled_weight_decay") and decay != "decoupled":
        raise ValueError("decoupled_weight_decay=True is decay='decoupled'")
    for pair, names in PAIRS.items():
        if pair in out:
            out.update(zip(names, out.pop(pair)))
    return out


def _in_arith(c: dict, ops: Arith) -> dict:
    return {k: v if k in FLAGS or k in ("family", "decay") else ops.num(v) for k, v in c.items()}


def initial_state(c: dict, ops: Arith) -> dict:
    """One coordinate's fresh state as torch's _init_group creates it (c normalized, in ops)."""
    zero, fam = ops.num(0), c["family"]
    step = ops.num(0) if ops in (FLOAT, FLOAT64) else 0  # torch's .item() gives a float
    if fam == "lion":
        return {"exp_avg": zero}
    state = {"step": step}
    if fam == "adamax":
        state.update(exp_avg=zero, exp_inf=zero)
    elif fam in ("nadam", "radam"):
        if fam == "nadam":
            state["mu_product"] = ops.f32(ops.num(1))
        state.update(exp_avg=zero, exp_avg_sq=zero)
    elif fam == "rmsprop":
        state["square_avg"] = zero
        if not ops.is_zero(c["momentum"]):
            state["momentum_buffer"] = zero
        if c["centered"]:
            state["grad_avg"] = zero
    elif fam == "adagrad":
        state["sum"] = c["initial_accumulator_value"]
    elif fam == "adadelta":
        state.update(square_avg=zero, acc_delta=zero)
    elif fam == "asgd":
        state.update(eta=ops.f32(c["lr"]), mu=ops.f32(ops.num(1)), ax=zero)
    elif fam == "rprop":
        state.update(prev=zero, step_size=c["lr"])
    return state


# -- the pieces a planted bug replaces (tests monkeypatch these names) ----------------------------

def rmsprop_denominator(avg_sq, eps, ops: Arith):
    """eps is added after the square root (torch: square_avg.sqrt().add_(eps))."""
    return ops.sqrt(avg_sq) + eps


def nadam_mu_product(mu_product, mu, ops: Arith):
    """The running product of every mu_t so far; a float32 multiply in torch's default."""
    return ops.f32(mu_product * ops.f32(mu))


def rprop_clamp(size, lo, hi, ops: Arith):
    """torch's clamp_(min, max): max first, then min (so hi wins when lo > hi)."""
    return ops.min(ops.max(size, lo), hi)


def adagrad_clr(lr, t, lr_decay):
    return lr / (1 + (t - 1) * lr_decay)


RADAM_THRESHOLD = 5  # rectify when rho_t > 5 (strict)


def decay_lr(c: dict, state: dict, ops: Arith):
    """The scalar the decoupled and `after` decays scale by (see the module docstring): the
    group's lr, ASGD's eta, None for Rprop, whose step sizes are per coordinate."""
    fam = c["family"]
    if fam == "asgd":
        return state["eta"]
    return None if fam == "rprop" else c["lr"]


# -- one step of each family, as torch's single-tensor loop (g already negated and L2-decayed) ---

def _adamax(c, s, theta, g, ops):
    b1, b2 = c["beta1"], c["beta2"]
    t = s["step"] + 1
    m = ops.lerp(s["exp_avg"], g, 1 - b1)
    u = ops.max(b2 * s["exp_inf"], abs(g) + c["eps"])
    theta = theta - c["lr"] / (1 - b1 ** t) * m / u
    return dict(s, step=t, exp_avg=m, exp_inf=u), theta


def _moments(c, s, g, ops):
    b1, b2 = c["beta1"], c["beta2"]
    return ops.lerp(s["exp_avg"], g, 1 - b1), b2 * s["exp_avg_sq"] + (1 - b2) * g * g


def _nadam(c, s, theta, g, ops):
    b1, b2, lr, psi = c["beta1"], c["beta2"], c["lr"], c["momentum_decay"]
    t = s["step"] + 1
    half, base = ops.num(F(1, 2)), ops.num(F(96, 100))
    mu = b1 * (1 - half * ops.pow(base, t * psi))
    mu_next = b1 * (1 - half * ops.pow(base, (t + 1) * psi))
    prod = nadam_mu_product(s["mu_product"], mu, ops)
    m, v = _moments(c, s, g, ops)
    denom = ops.sqrt(v / (1 - b2 ** t)) + c["eps"]  # sqrt of v-hat, unlike Adam's sqrt(v)/sqrt(bc2)
    theta = theta - lr * (1 - mu) / (1 - prod) * g / denom \
        - lr * mu_next / (1 - prod * mu_next) * m / denom
    return dict(s, step=t, mu_product=prod, exp_avg=m, exp_avg_sq=v), theta


def _radam(c, s, theta, g, ops):
    b1, b2, lr = c["beta1"], c["beta2"], c["lr"]
    t = s["step"] + 1
    m, v = _moments(c, s, g, ops)
    bc2 = 1 - b2 ** t
    m_hat = m / (1 - b1 ** t)
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2 ** t / bc2  # depends on t and beta2 alone

    def rectified():
        rect = ops.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                        / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        return m_hat * lr * (ops.sqrt(bc2) / (ops.sqrt(v) + c["eps"])) * rect

    theta = theta - ops.choose(rho_t > RADAM_THRESHOLD, rectified, lambda: m_hat * lr)
    return dict(s, step=t, exp_avg=m, exp_avg_sq=v), theta


def _rmsprop(c, s, theta, g, ops):
    a, lr = c["alpha"], c["lr"]
    s = dict(s, step=s["step"] + 1)
    s["square_avg"] = sq = a * s["square_avg"] + (1 - a) * g * g
    if c["centered"]:
        s["grad_avg"] = ga = ops.lerp(s["grad_avg"], g, 1 - a)
        sq = sq - ga * ga
    avg = rmsprop_denominator(sq, c["eps"], ops)
    if "momentum_buffer" in s:
        s["momentum_buffer"] = buf = c["momentum"] * s["momentum_buffer"] + g / avg
        return s, theta - lr * buf
    return s, theta - lr * g / avg


def _adagrad(c, s, theta, g, ops):
    t = s["step"] + 1
    total = s["sum"] + g * g
    clr = adagrad_clr(c["lr"], t, c["lr_decay"])
    return dict(s, step=t, sum=total), theta - clr * g / (ops.sqrt(total) + c["eps"])


def _adadelta(c, s, theta, g, ops):
    rho, eps = c["rho"], c["eps"]
    sq = rho * s["square_avg"] + (1 - rho) * g * g
    delta = ops.sqrt(s["acc_delta"] + eps) / ops.sqrt(sq + eps) * g
    acc = rho * s["acc_delta"] + (1 - rho) * delta * delta
    return dict(s, step=s["step"] + 1, square_avg=sq, acc_delta=acc), theta - c["lr"] * delta


def _asgd(c, s, theta, g, ops):
    lr, lambd = c["lr"], c["lambd"]
    t, eta, mu, ax = s["step"] + 1, s["eta"], s["mu"], s["ax"]
    theta = theta * (1 - lambd * eta) - eta * g
    # mu == 1 copies theta; the other formula gives the same real number then (torch's branch
    # matters only to float rounding), so exact backends need not split on it
    ax = ops.choose(ops.ne(mu, 1), lambda: ax + (theta - ax) * mu, lambda: theta)
    eta = ops.f32(lr / ops.pow(1 + lambd * lr * t, c["alpha"]))
    mu = ops.f32(ops.num(1) / ops.max(ops.num(1), t - c["t0"]))
    return dict(s, step=t, eta=eta, mu=mu, ax=ax), theta


def _rprop(c, s, theta, g, ops):
    lo, hi, down, up = c["step_size_min"], c["step_size_max"], c["etaminus"], c["etaplus"]
    d = ops.sign(g * s["prev"])
    factor = ops.choose(d > 0, lambda: up, lambda: ops.choose(d < 0, lambda: down, lambda: 1))
    size = rprop_clamp(s["step_size"] * factor, lo, hi, ops)
    g = ops.choose(d < 0, lambda: ops.num(0), lambda: g)  # a sign switch skips this step
    theta = theta - ops.sign(g) * size
    return dict(s, step=s["step"] + 1, prev=g, step_size=size), theta


def _lion(c, s, theta, g, ops):
    b1, b2 = c["beta1"], c["beta2"]
    theta = theta - c["lr"] * ops.sign(b1 * s["exp_avg"] + (1 - b1) * g)
    return {"exp_avg": b2 * s["exp_avg"] + (1 - b2) * g}, theta


STEPS = {"adamax": _adamax, "nadam": _nadam, "radam": _radam, "rmsprop": _rmsprop,
         "adagrad": _adagrad, "adadelta": _adadelta, "asgd": _asgd, "rprop": _rprop,
         "lion": _lion}


def step(c: dict, state: dict, theta, grad, ops: Arith):
    """(state_{t-1}, theta_{t-1}, grad_t) -> (state_t, theta_t) for one coordinate, c
    normalized and in ops' arithmetic."""
    g = -grad if c["maximize"] else grad  # maximize negates first; L2 is added after
    wd = c["weight_decay"]
    decay = None if ops.is_zero(wd) else c["decay"]
    lr = decay_lr(c, state, ops)
    if decay == "l2":
        g = g + wd * theta
    elif decay == "decoupled":
        theta = theta * (1 - lr * wd)
    elif decay == "independent":
        theta = theta * (1 - wd)
    state, theta = STEPS[c["family"]](c, state, theta, g, ops)
    if decay == "after":
        theta = theta - lr * wd * theta
    return state, theta


def simulate(config: dict, thetas0, grads, steps: int | None = None, ops: Arith = SYMPY) -> list:
    """[(theta_k, state_k) for k = 0..steps]; see the module docstring."""
    c = _in_arith(normalize(config), ops)
    vector = isinstance(thetas0, (list, tuple))
    thetas = [ops.num(x) for x in (thetas0 if vector else [thetas0])]
    states = [initial_state(c, ops) for _ in thetas]
    steps = len(grads) if steps is None else steps

    def record():
        if not vector:
            return thetas[0], dict(states[0])
        merged = {k: states[0][k] if k in SCALAR_STATE else [s[k] for s in states]
                  for k in states[0]}
        return list(thetas), merged

    out = [record()]
    for k in range(steps):
        g = grads(list(thetas) if vector else thetas[0]) if callable(grads) else grads[k]
        g = [ops.num(x) for x in (g if vector else [g])]
        if len(g) != len(thetas):
            raise ValueError(f"step {k + 1}: {len(g)} gradient values for {len(thetas)} "
                             "coordinates")
        for i, gi in enumerate(g):
            states[i], thetas[i] = step(c, states[i], thetas[i], gi, ops)
        out.append(record())
    return out


def exact_ops(config: dict) -> Arith:
    """Exact rationals where no square root or irrational power occurs, mpmath otherwise."""
    c = normalize(config)
    rational = c["family"] in ("rprop", "lion") or (
        c["family"] == "asgd" and F(c["alpha"]).denominator == 1)
    return FRACTION if rational else MP
