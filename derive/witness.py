"""Exact counterexamples: rational hyperparameters, a concrete loss and the two differing theta_k.

A refutation is checkable by anyone: run both optimizers closed loop on f from theta_0 with these
exact values and theta_k differs, or (where theta agrees) an output state both hold, ASGD's
average ax: `quantity` names it and `value_A`, `value_B` are its two values at step k. B's own
symbols take their best-matching values (the mapping that makes steps 1..k-1 coincide), so the
counterexample shows the first divergence itself. The loss is one of LOSSES where one
separates; otherwise the polynomial through the gradients of an open-loop sequence that parts
the runs (derive.closed_loop), the certificate's first.
"""
from __future__ import annotations

import random

import sympy as sp

from . import closed_loop as CL
from . import symbols as Y
from .domains import admissibility, reachable, state_form
from .identity import nonzero_number, random_point
from .regions import sample
from .spec import Spec
from .unroll import step_hyper

# random trials draw values over several orders of magnitude and near 1: AMSGrad's max switches
# only when a gradient is much smaller than the one before (lr near 1 on (theta - 1)**2/2)
RANDOM_TRIALS = 40
INTERPOLATED_SEQUENCES = 24  # drawn gradient sequences per point for a loss through them
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


def counterexample(A, B, ra, rb, ha, hb, sigma, base_unknowns, schedule, k, start, bend,
                   fixed=None, hint=None, observed=()):
    """Exact rational hyperparameters, a concrete loss and the two differing theta_k (or, where
    they agree, the two values of the first of the `observed` output states that differs).
    `fixed`: B's symbols that the branch case set (m2 = 0), named in the counterexample too.
    `hint`: an exact open-loop point where the runs part at step k (the certificate's:
    gradients, theta_0, state and A's symbols, each where the difference reads it); where no
    fixed loss separates, a loss through its gradients does (derive.closed_loop)."""
    run = _Runs(A, B, ra, rb, ha, hb, sigma, base_unknowns, schedule, k, start, bend, fixed,
                observed)
    return _fixed_losses(run) or _interpolated(run, hint or {})


class _Runs:
    """The two rules of one counterexample search, run exactly at a hyperparameter point."""

    def __init__(self, A, B, ra, rb, ha, hb, sigma, base_unknowns, schedule, k, start, bend,
                 fixed, observed=()):
        self.A, self.B, self.ra, self.rb, self.ha, self.hb = A, B, ra, rb, ha, hb
        self.sigma, self.base_unknowns, self.schedule, self.k = sigma, base_unknowns, schedule, k
        self.start, self.bend, self.fixed = start, bend, fixed or {}
        self.observed = tuple(observed)  # output states to compare where theta agrees
        self.state_symbols = initial_free(ra, rb, start)
        self.states = None  # (state_A_k, state_B_k) of the last closed run

    def full(self, point: dict, typical: bool, rng) -> dict | None:
        """A's point with B's symbols valued (B's free ones first: the prefix mapping may be
        written in them), or None where A or B is no optimizer torch builds there."""
        b_values = {}
        for u in self.base_unknowns:
            copies = [Y.stepped(u, i) for i in range(1, self.k + 1)] if u in self.schedule \
                else [u]
            for c in copies:
                if c not in self.sigma:
                    b_values[c] = _same_key_value(self.A, self.B, u, point) if typical else \
                        sample(c, rng)
        for c, value in self.sigma.items():
            b_values[c] = value.xreplace(point).xreplace(b_values)
        if any(not v.is_number or v.has(sp.nan, sp.zoo) for v in b_values.values()):
            return None
        full = {**point, **b_values}
        if not (_valid(self.A, point) and _valid(self.B, full)):
            return None  # e.g. nesterov with momentum 0: not an optimizer torch would build
        return full

    def transform_symbols(self) -> list:
        return Y.by_name(self.bend(Y.grad(1)).free_symbols - {Y.grad(1)})

    def hyper_at(self, h, full):
        return lambda i: {key: v.xreplace(full) for key, v in
                          step_hyper(h, self.schedule, i).items()}

    def initial(self, rule, h, full, state0) -> dict:
        return {n: (v.xreplace(state0) if v is not None else None)
                for n, v in rule.initial_state(self.start, self.hyper_at(h, full)(1)).items()}

    def closed(self, full, theta0, state0, gradient) -> list:
        """[(theta_A_j, theta_B_j)] for j = 1..k on the loss with this gradient (exact)."""
        out = []
        ta, tb = theta0, theta0
        sa, sb = self.initial(self.ra, self.ha, full, state0), \
            self.initial(self.rb, self.hb, full, state0)
        at_a, at_b = self.hyper_at(self.ha, full), self.hyper_at(self.hb, full)
        for i in range(1, self.k + 1):
            sa, ta = self.ra.step(sa, ta, gradient(ta), at_a(i))
            # the transform's own symbol (c in g -> c*g) takes its value from `full` too
            sb, tb = self.rb.step(sb, tb, self.bend(gradient(tb)).xreplace(full), at_b(i))
            if ta.is_real is False or tb.is_real is False:
                raise ValueError("the run leaves the reals")  # torch's NaN: no divergence
            out.append((ta, tb))
        self.states = (sa, sb)
        return out

    def parted(self, theta_a, theta_b) -> str | None:
        """"theta" where the last closed run's theta_k differ, else the first observed output
        state that differs, else None."""
        if nonzero_number(theta_b - theta_a):
            return "theta"
        sa, sb = self.states
        return next((n for n in self.observed if nonzero_number(sb[n] - sa[n])), None)

    def report(self, loss, full, theta0, state0, theta_a, theta_b, quantity="theta") -> tuple:
        named = {**full, **{u: v.xreplace(full) for u, v in self.fixed.items()}}
        shown = {str(s): str(v) for s, v in sorted(named.items(), key=lambda kv: kv[0].name)}
        out = {"loss": loss, "step": self.k, "theta_0": str(theta0), "hyperparameters": shown,
               "theta_A": str(sp.radsimp(theta_a)), "theta_B": str(sp.radsimp(theta_b)),
               "theta_A_float": float(sp.N(theta_a, 30)),
               "theta_B_float": float(sp.N(theta_b, 30))}
        if state0:
            out["state_0"] = {str(s): str(v) for s, v in state0.items()}
        if quantity != "theta":
            a, b = (state[quantity] for state in self.states)
            out.update(quantity=quantity, value_A=str(sp.radsimp(a)), value_B=str(sp.radsimp(b)))
            return out, (a, b)
        return out, (theta_a, theta_b)


def _fixed_losses(run: _Runs):
    """The losses of LOSSES at typical, then random, hyperparameters (readable first)."""
    A, k, schedule = run.A, run.k, run.schedule
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
        full = run.full(point, typical, rng)
        if full is None:
            continue
        for c in run.transform_symbols():
            # both sides of 1: a scale below 1 can flip sign(c*g + lam*theta), one above not
            full[c] = (sp.Integer(2) if trial % 2 == 0 else sp.Rational(1, 10)) if typical \
                else sample(c, rng)
        loss, gradient = LOSSES[1 if steep else trial % len(LOSSES)]
        theta0 = sp.Integer(2) if steep else \
            (sp.Integer(1), sp.Integer(2), sp.Rational(-1, 2))[(trial // len(LOSSES)) % 3]
        if large:
            theta0 = theta0 * 20
        state0 = reachable_state(A, run.B, run.state_symbols, rng)
        try:
            theta_a, theta_b = run.closed(full, theta0, state0, gradient)[-1]
        except (ZeroDivisionError, ValueError):
            continue
        parted = run.parted(theta_a, theta_b)
        if parted:
            return run.report(loss, full, theta0, state0, theta_a, theta_b, parted)
    return None


def _interpolated(run: _Runs, hint: dict):
    """A loss through the gradients of an open-loop sequence that parts the runs at step k
    (derive.closed_loop): the hint's own, then drawn ones (every sign pattern and several orders
    of magnitude), at the hint's point and at typical values. Reported only where the exact
    closed-loop replay agrees up to step k - 1 and parts at step k."""
    rng = random.Random(2)
    for full, theta0, state0, given in _interpolation_points(run, hint, rng):
        # every other drawn sequence keeps the hint's first k - 1 gradients, the last drawn
        sequences = ([given] if given else []) + [
            [given[i] if given and j % 2 and i < run.k - 1 else sample(Y.grad(i + 1), rng)
             for i in range(run.k)] for j in range(INTERPOLATED_SEQUENCES)]
        for grads in sequences:
            try:
                seen = CL.visited(run.ra, run.hyper_at(run.ha, full),
                                  run.initial(run.ra, run.ha, full, state0), theta0, grads)
                if seen is None:
                    break  # irrational points: no rational loss through them at this point
                loss, grad = CL.loss_through(*seen)
                runs = run.closed(full, theta0, state0, CL.gradient_function(grad))
            except (ZeroDivisionError, ValueError):
                continue
            if all(nonzero_number(b - a) is False for a, b in runs[:-1]) \
                    and nonzero_number(runs[-1][1] - runs[-1][0]):
                return run.report(str(loss), full, theta0, state0, *runs[-1])
    return None


def _interpolation_points(run: _Runs, hint: dict, rng):
    """(full hyperparameters, theta_0, state_0, hint's gradients) to interpolate at: the hint's
    values first (the symbols the difference does not read at typical values), then typical."""
    A, k = run.A, run.k
    grads = [hint[Y.grad(i)] for i in range(1, k + 1) if Y.grad(i) in hint]
    grads = grads if len(grads) == k else []
    typical = {}
    for s in sorted(A.symbols(), key=lambda s: s.name):
        copies = [Y.stepped(s, i) for i in range(1, k + 1)] if s in run.schedule else [s]
        for i, c in enumerate(copies):
            typical[c] = _typical_value(A, s) / (i + 1)
    tries = [({**typical, **{c: hint[c] for c in typical if c in hint}}, True)] if hint else []
    tries.append((typical, False))
    for point, from_hint in tries:
        full = run.full(point, True, rng)
        if full is None:
            continue
        for c in run.transform_symbols():
            full[c] = hint.get(c, sp.Integer(2)) if from_hint else sp.Integer(2)
        state0 = reachable_state(A, run.B, run.state_symbols, rng)
        if from_hint:
            state0.update({s: hint[s] for s in run.state_symbols if s in hint})
            if not reachable((A, run.B), state0):
                continue  # the hint's gavg_0 against a drawn v_0
        yield (full, hint.get(Y.theta(0), sp.Integer(1)) if from_hint else sp.Integer(1),
               state0, grads if from_hint else [])


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
