"""Spec pairs as structured data for the verdict oracle: configurations in tests/exact_torch.py's
form (a dict of torch keywords, values sympy rationals or hyperparameter symbols), rendered to
the spec language, and sampling of admissible rational values for their symbols.

Symbols are made as derive/symbols.py documents them (hyperparameters nonnegative, theta and
gradients real), by name, so the engine's symbols compare equal to these without importing it.
"""
from __future__ import annotations

import random
import re
from fractions import Fraction

import sympy as sp
from hypothesis import strategies as st

import exact_torch as X

COEFFICIENTS = ("lr", "momentum", "dampening", "weight_decay", "beta1", "beta2", "eps")
# keys at which torch takes another branch when the value is 0
BRANCH_KEYS = ("momentum", "weight_decay")


def H(name: str) -> sp.Symbol:
    return sp.Symbol(name, nonnegative=True)


def R(x) -> sp.Rational:
    x = Fraction(x)
    return sp.Rational(x.numerator, x.denominator)


def coefficients(config: dict) -> dict:
    """key -> value for the coefficients of a normalized configuration (betas split)."""
    c = X.normalize(config)
    return {k: sp.sympify(c[k]) for k in COEFFICIENTS if k in c}


def symbols_of(config: dict) -> set:
    out = set()
    for v in coefficients(config).values():
        out |= v.free_symbols
    return out


def positions(*configs) -> dict:
    """symbol -> the coefficient keys it appears in (in any of the configurations)."""
    out = {}
    for config in configs:
        for key, value in coefficients(config).items():
            for s in value.free_symbols:
                out.setdefault(s, set()).add(key)
    return out


def substitute(config: dict, mapping: dict) -> dict:
    """The configuration with symbols replaced (values are rebuilt, so a 0 switches a branch)."""
    out = dict(config)
    for key, value in config.items():
        if key == "betas":
            out[key] = tuple(sp.sympify(b).xreplace(mapping) for b in value)
        elif key in COEFFICIENTS:
            out[key] = sp.sympify(value).xreplace(mapping)
    return out


def render(config: dict) -> str:
    """The spec language string (every key as written in the configuration)."""
    parts = []
    for key, value in config.items():
        if key == "family":
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            text = f"({sp.sstr(value[0])}, {sp.sstr(value[1])})"
        elif isinstance(value, str):
            text = value
        else:
            text = sp.sstr(sp.sympify(value))
        parts.append(f"{key}={text}")
    return f"{config['family']}({', '.join(parts)})"


# -- admissible rational values -----------------------------------------------------------------

def random_value(keys: set, rng: random.Random) -> sp.Rational:
    """A rational admissible at every key: betas and dampening in (0, 1), others in (0, 2)."""
    d = rng.choice((7, 10, 11, 13))
    if keys & {"beta1", "beta2", "dampening"}:
        return sp.Rational(rng.randint(1, d - 1), d)
    if rng.random() < 0.3:  # sometimes large: a mapping may confine a free symbol (e2 >= eta)
        return sp.Rational(rng.randint(2 * d, 20 * d), d)
    return sp.Rational(rng.randint(1, 2 * d - 1), d)


def random_point(symbols, where: dict, rng: random.Random) -> dict:
    return {s: random_value(where.get(s, set()), rng) for s in sorted(symbols, key=str)}


def random_grads(n: int, rng: random.Random, shape: str | None = None) -> list:
    """Nonzero rationals up to 3 in size, spread over four decades: AMSGrad's max switches only
    where a gradient is much smaller than an earlier one (|g2| < |g1|/10 with beta2 = 0.99), a
    region that gradients of one scale rarely reach. (0 would leave Adam's v = 0 with eps = 0.)"""
    shape = shape or rng.choice(("mixed", "falling", "rising"))
    scale = {"mixed": lambda j: rng.choice((0, 0, 1, 2, 3)), "falling": lambda j: 2 * j,
             "rising": lambda j: 2 * (n - 1 - j)}[shape]
    return [sp.Rational(rng.choice((-1, 1)) * rng.randint(1, 30),
                        rng.choice((7, 10, 11)) * 10 ** scale(j))
            for j in range(n)]


def random_state(rng: random.Random) -> dict:
    """A mid-run state torch can reach: vmax_0 >= v_0 >= 0, t_0 a small integer."""
    v0 = sp.Rational(rng.randint(0, 20), 10)
    return {"buf_0": sp.Rational(rng.randint(-20, 20), 10),
            "m_0": sp.Rational(rng.randint(-20, 20), 10),
            "v_0": v0, "vmax_0": v0 + sp.Rational(rng.randint(0, 10), 10), "t_0": rng.randint(0, 4)}


# -- parsing the engine's output (test code only: values come from the engine, not a user) --------

_STATE = re.compile(r"^(theta|g|buf|m|v|vmax|t)_\d+$")


def symbol_for(name: str) -> sp.Symbol:
    match = _STATE.match(name)
    if not match:
        return H(name)
    kind = match.group(1)
    if kind == "t":
        return sp.Symbol(name, integer=True, nonnegative=True)
    if kind in ("v", "vmax"):
        return sp.Symbol(name, nonnegative=True)
    return sp.Symbol(name, real=True)


def parse(text) -> sp.Expr:
    if isinstance(text, sp.Basic):
        return text
    text = str(text)
    names = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", text)) - {"sqrt", "Abs", "Max", "Min",
                                                                  "sign", "exp", "log", "I"}
    return sp.parse_expr(text, local_dict={n: symbol_for(n) for n in names})


# -- hypothesis: spec pairs ----------------------------------------------------------------------

SMALL = [R(Fraction(1, 10)), R(Fraction(1, 2)), R(1)]
A_NAMES = {"lr": "eta", "momentum": "mu", "dampening": "tau", "weight_decay": "lam",
           "beta1": "b1", "beta2": "b2", "eps": "ep"}
B_NAMES = {"lr": "e2", "momentum": "m2", "dampening": "d2", "weight_decay": "w2",
           "beta1": "c1", "beta2": "c2", "eps": "p2"}
NUMBERS = {"lr": SMALL, "momentum": [R(0), R(Fraction(9, 10)), R(Fraction(1, 2))],
           "dampening": [R(0), R(Fraction(1, 2)), R(1)],
           "weight_decay": [R(0), R(Fraction(1, 10))],
           "beta1": [R(Fraction(9, 10)), R(Fraction(1, 2))],
           "beta2": [R(Fraction(99, 100)), R(Fraction(1, 2))],
           "eps": [R(Fraction(1, 10)), R(Fraction(1, 10**8))]}


def _keys(family):
    return ("lr", "momentum", "dampening", "weight_decay") if family == "sgd" \
        else ("lr", "beta1", "beta2", "eps", "weight_decay")


def _build(family, values, flags):
    config = {"family": family}
    for key in _keys(family):
        if key in ("beta1", "beta2"):
            continue
        config[key] = values[key]
        if key == "lr" and family != "sgd":
            config["betas"] = (values["beta1"], values["beta2"])
    config.update(flags)
    if family == "sgd":
        if config["nesterov"] and (config["momentum"] == 0 or config["dampening"] != 0):
            config["nesterov"] = False  # torch refuses it; the parser too
    return config


@st.composite
def flags(draw, family):
    out = {"maximize": draw(st.booleans())}
    if family == "sgd":
        out["nesterov"] = draw(st.booleans())
        out["buffer"] = draw(st.sampled_from(["torch", "zero"]))
        out["decay"] = draw(st.sampled_from(["l2", "decoupled", "independent", "after"]))
    else:
        out["amsgrad"] = draw(st.booleans())
        choices = ["l2", "decoupled", "independent", "after"] if family == "adam" \
            else ["decoupled", "independent", "after"]
        out["decay"] = draw(st.sampled_from(choices))
    return out


@st.composite
def spec_pairs(draw):
    """(A, B, start, steps): B shares most of A, with a few keys changed to B-only symbols, other
    numbers, A's symbols or expressions, and flags or conventions flipped."""
    family = draw(st.sampled_from(["sgd", "sgd", "adam", "adamw"]))
    values = {}
    for key in _keys(family) + (("beta1", "beta2") if family != "sgd" else ()):
        if key in values:
            continue
        symbolic = key == "lr" or draw(st.integers(0, 2)) == 0
        values[key] = H(A_NAMES[key]) if symbolic else draw(st.sampled_from(NUMBERS[key]))
    a_flags = draw(flags(family))
    A = _build(family, values, a_flags)
    b_family = family if draw(st.integers(0, 9)) < 9 \
        else draw(st.sampled_from(["sgd", "adam", "adamw"]))
    b_values = dict(values)
    if b_family != family:
        for key in _keys(b_family) + (("beta1", "beta2") if b_family != "sgd" else ()):
            b_values.setdefault(key, draw(st.sampled_from(NUMBERS[key])))
    b_flags = dict(a_flags) if b_family == family else draw(flags(b_family))
    # one or two changes, from templates that each exercise a class of the engine's decisions:
    # a B-only symbol for a key (renaming), a flag flipped with B's lr free, a feature switched
    # on with a free coefficient (momentum=m2 where A has none), another decay convention with a
    # free weight decay, a rescaled lr, a number for a symbol
    own = set()

    def free(key):
        if len(own) < 2 or key in own:
            own.add(key)
            b_values[key] = H(B_NAMES[key])

    for how in draw(st.lists(st.sampled_from(["rename", "flip", "switch", "convention", "scale",
                                              "number"]), min_size=1, max_size=2)):
        key = draw(st.sampled_from(_keys(b_family)))
        if how == "rename":
            free(key)
        elif how == "flip" and b_family == family:
            flag = draw(st.sampled_from(sorted(k for k, v in b_flags.items() if isinstance(v, bool))
                                        + (["buffer"] if b_family == "sgd" else [])))
            b_flags[flag] = ({"torch": "zero", "zero": "torch"}[b_flags[flag]] if flag == "buffer"
                             else not b_flags[flag])
            if draw(st.booleans()):
                free("lr")
        elif how == "switch":
            if b_family == "sgd":
                free("momentum")
                b_values["dampening"] = draw(st.sampled_from(NUMBERS["dampening"]))
                b_flags["buffer"] = draw(st.sampled_from(["torch", "zero"]))
            else:
                free("weight_decay")
        elif how == "convention" and b_family == family:
            b_flags["decay"] = draw(flags(b_family))["decay"]
            free("weight_decay")
        elif how == "scale" and values["lr"].free_symbols:
            b_values["lr"] = draw(st.sampled_from([2 * H(A_NAMES["lr"]), H(A_NAMES["lr"]) / 2]))
        else:
            b_values[key] = draw(st.sampled_from(NUMBERS[key]))
    B = _build(b_family, b_values, b_flags)
    start = draw(st.sampled_from(["start", "start", "state"]))
    steps = draw(st.sampled_from([2, 3, 3]))
    return A, B, start, steps
