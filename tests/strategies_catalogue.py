"""Spec pairs of the catalogue's new families (those both derive.catalogue and tests/exact_catalogue
know) as configurations in exact_catalogue's form, rendered to the spec language; admissible
rational points for their symbols; torch's constructor as the judge of admissibility.

A configuration is a dict: `family`, torch's keywords (pairs such as betas as tuples), values
sympy rationals or hyperparameter symbols, flags, and optequiv's `decay`. Every numeric keyword
is written out, so no canonical default symbol (the engine's `beta1` for an unstated beta) enters.
The keywords come from the catalogue entry (what the spec language accepts); which scalar a pair
holds is exact_catalogue's naming (PAIRS), so the simulator reads it.
"""
from __future__ import annotations

import inspect
import random

import sympy as sp
from hypothesis import strategies as st

import exact_catalogue as EC
from strategies_specs import H, R, render  # noqa: F401  (re-exported: the same spec syntax)

# exact numbers a key takes in drawn specs (branch values first: momentum 0 has no buffer)
NUMBERS = {
    "lr": ["1/10", "1/2", "1"], "eps": ["1/10", "1/100000000"],
    "beta1": ["9/10", "1/2"], "beta2": ["99/100", "1/2"], "weight_decay": ["0", "1/10"],
    "momentum": ["0", "9/10", "1/2"], "alpha": ["99/100", "1/2"], "momentum_decay": ["1/250", "1/2"],
    "lr_decay": ["0", "1/10"], "initial_accumulator_value": ["0", "1/10"], "rho": ["9/10", "1/2"],
    "lambd": ["1/10000", "1/10"], "t0": ["1000000", "2", "0"], "etaminus": ["1/2", "1/4"],
    "etaplus": ["6/5", "2"], "step_size_min": ["1/1000000", "1/100"],
    "step_size_max": ["50", "1/2"],
}
# ASGD's alpha is the exponent of its eta schedule, not a smoothing constant
FAMILY_NUMBERS = {"asgd": {"alpha": ["3/4", "1", "2"]}}
UNIT = {"beta1", "beta2", "rho", "etaminus"}  # torch: in [0, 1) or (0, 1)
SMOOTHING = {"rmsprop": {"alpha"}}  # torch allows any alpha >= 0; (0, 1) is the meaningful range


def numbers(family: str, key: str) -> list:
    return [R(sp.Rational(x)) for x in FAMILY_NUMBERS.get(family, {}).get(key, NUMBERS[key])]


def layout(entry) -> list:
    """[(keyword, simulator names of its scalars)] in the constructor's order: torch's keys
    (the simulator is torch's; a key of optequiv's own, eps_root, is left at torch's value)."""
    return [(h.key, EC.PAIRS[h.key] if h.pair else (h.key,)) for h in entry.hypers if h.torch]


def flags_of(entry) -> list:
    """Boolean flags the spec language and the simulator share (the decay flag is `decay`)."""
    return [f for f in entry.flags if f in EC.FLAGS and f != entry.decay_flag]


def decays_of(entry) -> list:
    return [d for d in entry.decays if d in EC.DECAYS[entry.name]]


def build(entry, values: dict, flags: dict, decay: str, flag_form: bool = False) -> dict:
    """A configuration from simulator-named values; `flag_form` writes decay=decoupled as the
    entry's torch flag (decoupled_weight_decay=true)."""
    config = {"family": entry.name}
    for key, names in layout(entry):
        config[key] = tuple(values[n] for n in names) if len(names) > 1 else values[names[0]]
    config.update(flags)
    if flag_form and entry.decay_flag and decay == "decoupled":
        config[entry.decay_flag] = True
    elif entry.has("weight_decay"):
        config["decay"] = decay
    return config


def coefficients(config: dict) -> dict:
    """simulator name -> sympy value of every numeric scalar (pairs split)."""
    c = EC.normalize(config)
    return {k: sp.sympify(v) for k, v in c.items()
            if k not in EC.FLAGS and k not in ("family", "decay")}


def symbols_of(config: dict) -> set:
    return set().union(*(v.free_symbols for v in coefficients(config).values()))


def positions(*configs) -> dict:
    out = {}
    for config in configs:
        for key, value in coefficients(config).items():
            for s in value.free_symbols:
                out.setdefault(s, set()).add((config["family"], key))
    return out


def substitute(config: dict, mapping: dict) -> dict:
    """The configuration with symbols replaced (rebuilt values: a 0 switches torch's branch)."""
    out = dict(config)
    for key, value in config.items():
        if isinstance(value, tuple):
            out[key] = tuple(sp.sympify(v).xreplace(mapping) for v in value)
        elif isinstance(value, sp.Basic):
            out[key] = value.xreplace(mapping)
    return out


# -- admissible rational values -----------------------------------------------------------------

def random_value(where: set, rng: random.Random, zero_ok: bool = False) -> sp.Rational:
    """A rational admissible at every (family, key) where the symbol stands."""
    keys = {k for _, k in where}
    unit = keys & UNIT or any(k in SMOOTHING.get(f, ()) for f, k in where)
    if zero_ok and rng.random() < 0.25:
        return sp.Integer(0)
    d = rng.choice((7, 10, 11, 13))
    if "t0" in keys:
        return sp.Integer(rng.randint(0, 4))
    if "etaplus" in keys:
        return 1 + sp.Rational(rng.randint(1, 2 * d), d)
    if unit:
        return sp.Rational(rng.randint(1, d - 1), d)
    if rng.random() < 0.3:  # sometimes large: a mapping may confine a free symbol
        return sp.Rational(rng.randint(2 * d, 20 * d), d)
    return sp.Rational(rng.randint(1, 2 * d - 1), d)


def random_point(symbols, where: dict, rng: random.Random, switches=()) -> dict:
    """Values for `symbols`; a symbol standing only at a switch key (momentum, weight_decay) is
    sometimes 0, torch's other branch, which a verdict on A covers too."""
    return {s: random_value(where.get(s, set()), rng,
                            zero_ok=bool(where.get(s)) and all(k in switches for _, k in where[s]))
            for s in sorted(symbols, key=str)}


def held_keys(config: dict) -> list:
    """The torch state keys the configuration holds (a symbolic momentum takes its non-zero
    branch, as torch would for its generic value)."""
    c = EC._in_arith(EC.normalize(config), EC.SYMPY)
    return list(EC.initial_state(c, EC.SYMPY))


def random_state(entries, configs, rng: random.Random) -> dict:
    """A mid-run state for `--from state`, keyed by torch's state keys: one value per state
    symbol the configurations hold, drawn by the symbol's assumptions as the entry declares them
    (a count: an integer up to 40; nonnegative: [0, 2]; real: [-2, 2]); the engine's state_0
    symbols carry exactly these assumptions."""
    out = {}
    for entry, config in zip(entries, configs):
        by_key = {s.key: s for s in entry.states}
        for key in held_keys(config):
            if key in out or key not in by_key:
                continue
            kind = dict(by_key[key].assumptions)
            if kind.get("integer"):  # RAdam rectifies only past t = 5 at beta2 = 0.99
                out[key] = sp.Integer(rng.choice((rng.randint(0, 4), rng.randint(5, 40))))
            elif kind.get("nonnegative") or kind.get("positive"):
                out[key] = sp.Rational(rng.randint(0, 20), 10)
            else:
                out[key] = sp.Rational(rng.randint(-20, 20), 10)
    return out


def torch_refusal(config: dict) -> str | None:
    """torch's constructor on the numeric configuration: its ValueError's text, or None when it
    builds the optimizer. Lion has no torch class: lion-pytorch's asserts (lr > 0 relaxed to
    lr >= 0, as for every torch class; 0 <= beta <= 1) and weight_decay >= 0."""
    import torch

    family = config["family"]
    values = {k: v for k, v in {**EC.DEFAULTS[family], **config}.items()
              if k not in ("family", "decay")}
    try:
        values = {k: (tuple(float(x) for x in v) if isinstance(v, tuple) else
                      v if isinstance(v, bool) else float(v)) for k, v in values.items()}
    except TypeError as err:
        return f"not a number: {err}"
    if family == "lion":
        if values["lr"] < 0:
            return f"Invalid learning rate: {values['lr']}"
        if not all(0 <= b <= 1 for b in values["betas"]):
            return f"Invalid beta parameters: {values['betas']}"
        if values["weight_decay"] < 0:
            return f"Invalid weight_decay value: {values['weight_decay']}"
        return None
    cls = {n.lower(): getattr(torch.optim, n) for n in dir(torch.optim)}[family]
    accepted = inspect.signature(cls).parameters
    try:
        cls([torch.zeros(1, requires_grad=True)],
            **{k: v for k, v in values.items() if k in accepted})
    except ValueError as err:
        return str(err)
    return None


# -- hypothesis: spec pairs of one family ---------------------------------------------------------

def a_name(key: str) -> sp.Symbol:
    return H("x" + key)


def b_name(key: str) -> sp.Symbol:
    return H("y" + key)


@st.composite
def spec_pairs(draw, entry):
    """(A, B, start, steps) of one family: B shares most of A, with one or two changes from templates
    that each exercise a class of the engine's decisions: a B-only symbol for a key (renaming),
    a flag flipped (with B's lr free), a switch turned on with a free coefficient (momentum=ym
    where A has 0), another decay convention with a free weight decay, a rescaled lr, another
    number for a key."""
    family = entry.name
    names = [n for _, ns in layout(entry) for n in ns]
    values = {}
    for n in names:
        symbolic = draw(st.integers(0, 9)) < 7 if n == "lr" else draw(st.integers(0, 2)) == 0
        values[n] = a_name(n) if symbolic else draw(st.sampled_from(numbers(family, n)))
    flags = {f: draw(st.booleans()) for f in flags_of(entry)}
    decays = decays_of(entry)
    decay = draw(st.sampled_from(decays)) if decays else None
    flag_form = draw(st.booleans())
    A = build(entry, values, flags, decay, flag_form)

    b_values, b_flags, b_decay = dict(values), dict(flags), decay
    switches = [n for n in names if n in entry.switches]
    own = set()

    def free(n):
        if len(own) < 2 or n in own:
            own.add(n)
            b_values[n] = b_name(n)

    for how in draw(st.lists(st.sampled_from(["rename", "flip", "switch", "convention", "scale",
                                              "number"]), min_size=1, max_size=2)):
        n = draw(st.sampled_from(names))
        if how == "rename":
            free(n)
        elif how == "flip" and b_flags:
            f = draw(st.sampled_from(sorted(b_flags)))
            b_flags[f] = not b_flags[f]
            if draw(st.booleans()):
                free("lr")
        elif how == "switch" and switches:
            s = draw(st.sampled_from(switches))
            if values[s] == 0:
                free(s)
            else:
                b_values[s] = sp.Integer(0)
        elif how == "convention" and len(decays) > 1:
            b_decay = draw(st.sampled_from(decays))
            free("weight_decay")
        elif how == "scale" and values["lr"].free_symbols:
            b_values["lr"] = draw(st.sampled_from([2 * a_name("lr"), a_name("lr") / 2]))
        else:
            b_values[n] = draw(st.sampled_from(numbers(family, n)))
    B = build(entry, b_values, b_flags, b_decay, draw(st.booleans()))
    start = draw(st.sampled_from(["start", "start", "state"]))
    steps = draw(st.sampled_from([2, 3]))
    return A, B, start, steps
