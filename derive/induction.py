"""Proving "for every step" by induction on the one-step maps.

  base  after step 1 (torch's start) or at step 0 (a general state), theta^A = theta^B and the
        relevant state of B equals phi(state of A);
  step  on a generic joint state (theta_{t-1}, g_t, state_{t-1}) satisfying that relation, one
        step of each rule gives equal theta_t and preserves the relation.
phi is the identity on shared state names, or a constant rescaling solved from step 1 (a buffer
kept in different units). "Relevant" state is what theta or an output can depend on (a fixed
point over the generic step, from theta and the output states both rules hold, such as ASGD's
average ax, which never feeds back into theta): with momentum 0 the buffer is irrelevant. An
output is a result in its own right, so phi maps it as the identity, never rescaled. Every check is decided by
derive.regions.coincide, so a piecewise step (AMSGrad's max) is split, never sampled.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import symbols as Y
from .identity import PROVEN, REFUTED, SUPPORTED
from .regions import coincide
from .rules import Rule
from .unroll import step_hyper


@dataclass
class Induction:
    verdict: str  # proven | supported | refuted
    phi: dict  # B state name -> expression in A's generic state symbols
    relevant: tuple  # B's state names that theta or an output depends on (the outputs too)
    theta_a: sp.Expr  # one generic step of A and of B (B's state written through phi)
    theta_b: sp.Expr
    checks: list  # (what, difference, verdict)


def generic_mapping(sol: dict, schedule) -> dict:
    """A mapping solved at step 1 written for the generic step t: for a scheduled unknown,
    k_1 -> eta_1*lam becomes k_t -> eta_t*lam. An unscheduled unknown is one constant, so its
    value keeps eta_1 and the induction then fails unless eta is constant, as it must."""
    swap = {Y.stepped(s, 1): Y.stepped(s, "t") for s in schedule}
    out = {}
    for u, value in sol.items():
        generic = u.xreplace(swap)
        out[generic] = value.xreplace(swap) if generic != u else value
    return out


def outputs(rule_a: Rule, rule_b: Rule) -> tuple:
    """The state names both rules hold that either entry declares an output (State.output): they
    must coincide as theta must. An output only one rule holds has nothing to be compared with."""
    return tuple(n for n in rule_b.state_names if n in rule_a.state_names
                 and (rule_a.spec.entry.state(n).output or rule_b.spec.entry.state(n).output))


def _relevant(rule: Rule, theta_new: sp.Expr, state_new: dict, generic: dict,
              seeds=()) -> tuple:
    """State names theta or the `seeds` (the outputs) can depend on: the seeds and those in
    theta_t, closed under the state updates."""
    relevant = set()
    frontier = {n for n, s in generic.items() if theta_new.has(s) or n in seeds}
    while frontier - relevant:
        relevant |= frontier
        frontier = {n for n, s in generic.items()
                    if any(state_new[r] is not None and state_new[r].has(s) for r in relevant)}
    return tuple(n for n in rule.state_names if n in relevant)


def _scale_factors(rule_a, rule_b, ha1, hb1, start, schedule, bend) -> dict:
    """phi's constant factor per shared state name, read off step 1 (identity where it is not
    a constant, or from a general state, where both runs start from the same symbols)."""
    shared = [n for n in rule_b.state_names if n in rule_a.state_names]
    if start == "state" or not shared:
        return {n: sp.Integer(1) for n in shared}
    g, th = Y.grad(1), Y.theta(0)
    sa, _ = rule_a.step(rule_a.initial_state(start, ha1), th, g, ha1)
    sb, _ = rule_b.step(rule_b.initial_state(start, hb1), th, bend(g), hb1)
    per_step = [Y.stepped(s, 1) for s in schedule]
    out = {}
    for n in shared:
        c = sp.Integer(1)
        if sa[n] != 0 and sb[n] != sa[n]:
            ratio = sp.cancel(sb[n] / sa[n])
            # a constant factor only: free of theta and g, and of per-step hyperparameters
            if ratio != 0 and not ratio.has(th, g, *per_step):
                c = ratio
        out[n] = c
    return out


def _zero_invariant(rule: Rule, h1: dict, ht: dict, start: str, g1, gt) -> set:
    """State names that are 0 on every reachable state from torch's start (a buffer that
    sgd(dampening=1, buffer=zero) keeps at 0 for ever): 0 after step 1, and mapped to 0 by the
    generic step whenever they all are 0. A general state (--from state) has no such names."""
    if start == "state":
        return set()
    after, _ = rule.step(rule.initial_state(start, h1), Y.theta(0), g1, h1)
    names = {n for n in rule.state_names if after[n] is not None and sp.expand(after[n]) == 0}
    while names:
        generic = {n: sp.Integer(0) if n in names else Y.state(n, "t-1") for n in rule.state_names}
        new, _ = rule.step(generic, Y.theta("t-1"), gt, ht)
        kept = {n for n in names if new[n] is not None and coincide(new[n]).verdict == PROVEN}
        if kept == names:
            break
        names = kept
    return names


def induction(rule_a, rule_b, ha, hb, sigma, schedule, start, bend) -> Induction:
    th, g = Y.theta("t-1"), Y.grad("t")
    ha_t = step_hyper(ha, schedule, "t")
    hb_t = {k: v.xreplace(sigma) for k, v in step_hyper(hb, schedule, "t").items()}
    sigma_1 = {u.xreplace({Y.stepped(s, "t"): Y.stepped(s, 1) for s in schedule}):
               v.xreplace({Y.stepped(s, "t"): Y.stepped(s, 1) for s in schedule})
               for u, v in sigma.items()}
    ha_1 = step_hyper(ha, schedule, 1)
    hb_1 = {k: v.xreplace(sigma_1) for k, v in step_hyper(hb, schedule, 1).items()}
    scale = _scale_factors(rule_a, rule_b, ha_1, hb_1, start, schedule, bend)

    # the induction hypothesis includes the state that is 0 on every reachable step
    zero_a = _zero_invariant(rule_a, ha_1, ha_t, start, Y.grad(1), g)
    zero_b = _zero_invariant(rule_b, hb_1, hb_t, start, bend(Y.grad(1)), bend(g))
    generic_a = {n: sp.Integer(0) if n in zero_a else Y.state(n, "t-1") for n in rule_a.state_names}
    generic_b = {n: sp.Integer(0) if n in zero_b else Y.state(n, "t-1") for n in rule_b.state_names}
    # relevance is a property of B's own step, before phi is imposed
    own_b_state, own_b_theta = rule_b.step(generic_b, th, bend(g), hb_t)
    observed = outputs(rule_a, rule_b)
    relevant = _relevant(rule_b, own_b_theta, own_b_state, generic_b, observed)
    scale.update({n: sp.Integer(1) for n in observed})  # an output is compared as it is
    phi = {n: scale[n] * generic_a[n] for n in relevant if n in scale}
    checks = []
    missing = [n for n in relevant if n not in phi]
    if missing:  # B's theta (or an output) depends on state A does not have: nothing to prove
        return Induction(REFUTED, phi, relevant, sp.nan, sp.nan,
                         [(f"state {n} of B has no counterpart in A", sp.nan, REFUTED)
                          for n in missing])

    new_a, theta_a = rule_a.step(generic_a, th, g, ha_t)
    new_b, theta_b = rule_b.step({**generic_b, **phi}, th, bend(g), hb_t)
    def check(what, diff):
        checks.append((what, diff, coincide(diff).verdict))

    for n in sorted(zero_a):
        checks.append((f"{n}^A = 0 on every step (invariant)", sp.Integer(0), PROVEN))
    for n in sorted(zero_b):
        checks.append((f"{n}^B = 0 on every step (invariant)", sp.Integer(0), PROVEN))
    check("theta_t", theta_b - theta_a)
    for n in relevant:
        check(f"{n}_t", new_b[n] - scale[n] * new_a[n])

    # base case: the relation holds where the induction starts
    if start == "state":
        for n in relevant:
            ok = scale[n] == 1
            checks.append((f"{n}_0 (base)", sp.Integer(0) if ok else sp.nan,
                           PROVEN if ok else REFUTED))
    else:
        sa, ta = rule_a.step(rule_a.initial_state(start, ha_1), Y.theta(0), Y.grad(1), ha_1)
        sb, tb = rule_b.step(rule_b.initial_state(start, hb_1), Y.theta(0), bend(Y.grad(1)),
                             hb_1)
        check("theta_1 (base)", tb - ta)
        for n in relevant:
            check(f"{n}_1 (base)", sb[n] - scale[n] * sa[n])

    verdicts = {v for _, _, v in checks}
    verdict = REFUTED if REFUTED in verdicts else SUPPORTED if SUPPORTED in verdicts else PROVEN
    return Induction(verdict, phi, relevant, theta_a, theta_b, checks)
