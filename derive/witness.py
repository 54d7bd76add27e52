"""Exact counterexamples: rational hyperparameters, a concrete loss and the two differing theta_k.

A refutation is checkable by anyone: run both optimizers closed loop on f from theta_0 with these
exact values and theta_k differs. B's own symbols take their best-matching values (the mapping
that makes steps 1..k-1 coincide), so the counterexample shows the first divergence itself.
"""
from __future__ import annotations

import random

import sympy as sp

from . import symbols as Y
from .domains import admissibility, state_form
from .identity import nonzero_number, random_point
from .regions import sample
from .spec import Spec
from .unroll import step_hyper

# random trials draw values over several orders of magnitude and near 1: AMSGrad's max switches
# only when a gradient is much smaller than the one before (lr near 1 on (theta - 1)**2/2)
RANDOM_TRIALS = 40
LOSSES = (  # closed-loop losses tried for a counterexample: (text, gradient)
    ("theta**2/2", lambda th: th),
    ("(theta - 1)**2/2", lambda th: th - 1),
    ("theta**4/4", lambda th: th**3),
    # a minimum beyond theta_0, so that g and theta have opposite signs: where a step sees
    # only sign(g + lam*theta) (Adam's first step with eps = 0), rescaling g can flip it
    ("(theta - 3)**2/2", lambda th: th - 3),
    # concave: gradient ascent (maximize) on a convex loss only grows |g|, so AMSGrad's max
    # never switches there; climbing towards the top of this one shrinks it
    ("-(theta - 3)**2/2", lambda th: 3 - th),
)


def initial_free(rule_a, rule_b, start: str) -> set:
    if start != "state":
        return set()
    return {Y.state(n, 0) for n in set(rule_a.state_names) | set(rule_b.state_names)}


def reachable_state(A: Spec, B: Spec, symbols, rng) -> dict:
    """A random mid-run state of `symbols` that both rules reach (domains.state_form: centered
    RMSprop's v_0 drawn as gavg_0**2 + c); {} from torch's start (no symbols)."""
    form = {s: e for s, e in state_form((A, B)).items() if s in symbols}
    drawn = set(symbols) - set(form) | {c for e in form.values() for c in e.free_symbols
                                        if isinstance(c, sp.Dummy)}
    point = random_point(drawn, rng)
    out = {s: v for s, v in point.items() if s in symbols}
    out.update({s: e.xreplace(point) for s, e in form.items()})
    return out


def _scalable(spec: Spec, symbol) -> bool:
    """Whether a symbol of A is its learning rate (which may exceed 1, unlike a beta)."""
    lr = spec.hyper().get("lr")
    return lr is not None and symbol in lr.free_symbols


def _valid(spec: Spec, values: dict) -> bool:
    return admissibility(spec, values, spec).ok


def _run_closed(rule, hyper_at, state, theta0, gradient, k):
    theta = theta0
    for i in range(1, k + 1):
        state, theta = rule.step(state, theta, gradient(theta), hyper_at(i))
    return theta


def counterexample(A, B, ra, rb, ha, hb, sigma, base_unknowns, schedule, k, start, bend,
                   fixed=None):
    """Exact rational hyperparameters, a concrete loss and the two differing theta_k. `fixed`:
    B's symbols that the branch case set (m2 = 0), named in the counterexample too."""
    rng = random.Random(1)
    a_symbols = sorted(A.symbols(), key=lambda s: s.name)
    # typical values (readable), each loss from two theta_0; then three with an lr just below 1
    # on (theta - 1)**2/2 from theta_0 = 2, which makes g_2 tiny against g_1 (where AMSGrad's
    # max switches)
    typical_trials = 2 * len(LOSSES) + 3
    for trial in range(typical_trials + RANDOM_TRIALS):
        typical = trial < typical_trials
        # every other random trial: far from the minimum, with large steps; gradient ascent
        # (maximize) only lets a decoupled decay outrun it, and AMSGrad's max only switch, there
        large = not typical and trial % 2 == 1
        steep = typical and trial >= 2 * len(LOSSES)
        point = {}
        for s in a_symbols:
            copies = [Y.stepped(s, i) for i in range(1, k + 1)] if s in schedule else [s]
            for i, c in enumerate(copies):
                # a schedule that varies: the i-th step's copy gets the typical value / (i + 1)
                point[c] = _typical_value(A, s) / (i + 1) if typical else sample(c, rng)
                if _scalable(A, s) and large:
                    point[c] *= 8
                if _scalable(A, s) and steep:
                    point[c] = 1 - sp.Rational(1, 10 ** (trial - 2 * len(LOSSES) + 1))
        b_values = {}  # B's free symbols first: the prefix mapping may be written in them
        for u in base_unknowns:
            copies = [Y.stepped(u, i) for i in range(1, k + 1)] if u in schedule else [u]
            for c in copies:
                if c not in sigma:
                    b_values[c] = _same_key_value(A, B, u, point) if typical else \
                        sample(c, rng)
        for c, value in sigma.items():
            b_values[c] = value.xreplace(point).xreplace(b_values)
        if any(not v.is_number or v.has(sp.nan, sp.zoo) for v in b_values.values()):
            continue
        full = {**point, **b_values}
        if not (_valid(A, point) and _valid(B, full)):
            continue  # e.g. nesterov with momentum 0: not an optimizer torch would build
        for c in bend(Y.grad(1)).free_symbols - {Y.grad(1)}:  # a transform's own symbol
            # both sides of 1: a scale below 1 can flip sign(c*g + lam*theta), one above not
            full[c] = (sp.Integer(2) if trial % 2 == 0 else sp.Rational(1, 10)) if typical \
                else sample(c, rng)
        loss, gradient = LOSSES[1 if steep else trial % len(LOSSES)]
        theta0 = sp.Integer(2) if steep else \
            (sp.Integer(1), sp.Integer(2), sp.Rational(-1, 2))[(trial // len(LOSSES)) % 3]
        if large:
            theta0 = theta0 * 20
        state0 = reachable_state(A, B, initial_free(ra, rb, start), rng)

        def at(h):
            return lambda i: {key: v.xreplace(full) for key, v in
                              step_hyper(h, schedule, i).items()}

        ia = {n: (v.xreplace(state0) if v is not None else None)
              for n, v in ra.initial_state(start, at(ha)(1)).items()}
        ib = {n: (v.xreplace(state0) if v is not None else None)
              for n, v in rb.initial_state(start, at(hb)(1)).items()}

        try:
            theta_a = _run_closed(ra, at(ha), ia, theta0, gradient, k)
            # the transform's own symbol (c in g -> c*g) takes its value from `full` too
            theta_b = _run_closed(rb, at(hb), ib, theta0,
                                  lambda th: bend(gradient(th)).xreplace(full), k)
        except (ZeroDivisionError, ValueError):
            continue
        if nonzero_number(theta_b - theta_a):
            named = {**full, **{u: v.xreplace(full) for u, v in (fixed or {}).items()}}
            shown = {str(s): str(v) for s, v in sorted(named.items(), key=lambda kv: kv[0].name)}
            out = {"loss": loss, "step": k, "theta_0": str(theta0), "hyperparameters": shown,
                   "theta_A": str(sp.radsimp(theta_a)), "theta_B": str(sp.radsimp(theta_b)),
                   "theta_A_float": float(sp.N(theta_a, 30)),
                   "theta_B_float": float(sp.N(theta_b, 30))}
            if state0:
                out["state_0"] = {str(s): str(v) for s, v in state0.items()}
            return out, (theta_a, theta_b)
    return None


def _typical_value(spec: Spec, s: sp.Symbol) -> sp.Rational:
    """Values a reader recognises for a counterexample (each scalar's `typical` in its catalogue
    entry: torch's betas and eps, lr 1/10)."""
    for scalar in spec.entry.scalars:
        if spec.hyper()[scalar.name] == s:
            return sp.Rational(scalar.typical)
    return sp.Rational(1, 10)


def _same_key_value(A: Spec, B: Spec, u: sp.Symbol, point: dict) -> sp.Expr:
    """A natural value for a B-only symbol: A's value of the same key (lam2 gets lam's value)."""
    hb, ha = B.hyper(), A.hyper()
    for key, value in hb.items():
        if value == u and key in ha and ha[key] != 0:  # 0: a feature A does not use
            return ha[key].xreplace(point)
    return _typical_value(B, u)
