"""Branches: values of the hyperparameters at which torch takes another branch of its algorithm.

torch decides `momentum != 0` and `weight_decay != 0` on the values (momentum 0: no buffer at
all), so a rule's stages hold only on one side of such a value. The engine never reuses a stage
list across a switch: each value of B's own symbols at which a branch-controlling value of B
is 0 is a case with B rebuilt (`branch_cases`), and after a proof on the generic branch, each
zero of a branch-controlling value of A (or of B under the mapping) is compared on its own
(`a_branch_conditions`); what cannot be shown to coincide there becomes a condition.
"""
from __future__ import annotations

import itertools

import sympy as sp

from . import symbols as Y
from .budget import attempt
from .domains import admissibility, beta_symbols, constraint
from .identity import PROVEN
from .rules import build_rule
from .spec import Spec, with_changes

BRANCH_SECONDS = 5.0  # each branch case's own comparison


def strs(d: dict) -> dict:
    return {str(k): str(v) for k, v in sorted(d.items(), key=lambda kv: str(kv[0]))}


def signature(spec: Spec) -> tuple:
    """What a branch changes: the rule's stages and state."""
    rule = build_rule(spec)
    return rule.stage_names(), rule.state_names


def _excluded(f: sp.Expr, conditions: list) -> bool:
    """Whether a strict condition already keeps f away from 0 (eta*lam < 1 for eta*lam - 1)."""
    for c in conditions:
        if isinstance(c, (sp.StrictLessThan, sp.StrictGreaterThan)):
            gap = c.rhs - c.lhs if isinstance(c, sp.StrictLessThan) else c.lhs - c.rhs
            if sp.expand(gap - f) == 0 or sp.expand(gap + f) == 0:
                return True
    return False


def zero_roots(value: sp.Expr, symbols, conditions=()) -> tuple:
    """([{s: r}], exhausted): the values of one symbol at which `value` vanishes, from each
    factor of its numerator in a single symbol (any degree, real roots), and whether those are
    all its zeros (every other factor is never 0 for admissible values)."""
    try:
        factors = sp.factor_list(sp.numer(sp.together(value)))[1]
    except (sp.PolynomialError, NotImplementedError, TypeError, ValueError):
        return [], False
    roots, exhausted = [], True
    for f, _ in factors:
        if _excluded(f, conditions):
            continue
        own = [u for u in Y.by_name(symbols) if f.has(u)]
        if len(own) == 1 and f.is_polynomial(own[0]):
            found = attempt(2.0, lambda: sp.solve(f, own[0]), fallback=None)
            if found is None:
                exhausted = False
                continue
            roots += [{own[0]: r} for r in found if r.is_real is not False
                      and {own[0]: r} not in roots]
        elif constraint(f, True, set()) is not True and constraint(-f, True, set()) is not True:
            exhausted = False  # a factor such as mu - lam: zero on a set we do not enumerate
    return roots, exhausted


def branch_cases(A: Spec, B: Spec) -> list:
    """[(substitution, B rebuilt for it)]: the generic case first, then each value of one of B's
    own symbols at which one of B's hyperparameters is 0 and torch takes another branch."""
    unknowns = B.symbols() - A.symbols()
    if not unknowns:
        return [({}, B)]
    base = signature(B)
    subs = []
    for value in B.hyper().values():
        if value.has(*unknowns):
            subs += [r for r in zero_roots(value, unknowns)[0] if r not in subs]
    # each branch value alone and together (momentum and weight_decay both 0), unknowns distinct
    combos = [dict(c) for n in range(1, min(len(subs), 3) + 1) for group in
              itertools.combinations(subs, n)
              if len({u for s in group for u in s}) == n
              for c in [[kv for s in group for kv in s.items()]]]
    cases = [({}, B)]
    for sub in combos:
        try:
            rebuilt = B.substitute(sub)
        except ValueError:
            continue  # e.g. nesterov without momentum: not an optimizer
        if signature(rebuilt) != base and admissibility(B, sub, A).ok:
            cases.append((sub, rebuilt))
    return cases


def branch_values(spec: Spec) -> list:
    """Symbolic hyperparameter values of `spec` at whose 0 torch takes another branch."""
    out = []
    for key, value in spec.given.items():
        if not isinstance(value, sp.Expr) or value.is_number:
            continue
        try:
            if signature(with_changes(spec, **{key: sp.Integer(0)})) != signature(spec):
                out.append(value)
        except ValueError:
            continue  # 0 is not a value torch accepts there (nesterov's momentum)
    return out


def a_branch_conditions(compare, A, B, case_b, mapping, result, steps, start) -> list:
    """A's own branch values (momentum (mu - 1/2)**2 is 0 at mu = 1/2, where torch has no
    buffer): the mapping is proven on the generic branch, so each zero of a branch value of A,
    or of B under the mapping, is compared as a case of its own, with a mapping searched anew
    (at mu = 0, e2 -> eta, m2 -> 0 may work where the generic mapping does not). What cannot be
    shown to coincide there, or whose zeros cannot be enumerated, becomes a condition."""
    plain = {u: v for u, v in mapping.items() if u in case_b.symbols()}
    try:
        mapped = case_b.substitute(plain)
    except ValueError:
        return []
    betas = beta_symbols(A)
    conditions, branches = [], []
    values = []
    for value in branch_values(A) + branch_values(mapped):
        if value not in values:
            values.append(value)
    for value in values:
        if value.free_symbols - A.symbols() or value.has(*[Y.stepped(s, "t") for s in
                                                           result.schedule]):
            continue
        positive = constraint(value, True, betas)
        if positive is True:
            continue  # never 0 where A is an optimizer
        roots, exhausted = zero_roots(value, A.symbols(), result.valid_when)
        for root in roots:
            if not admissibility(A, root, A).ok:
                continue
            try:
                a0, b0 = A.substitute(root), B.substitute(root)
            except ValueError:
                # B is no optimizer there (nesterov with momentum 0): the mapping's claim
                # stops short of this value, which the condition says
                exhausted = False
                continue
            sub = compare(a0, b0, steps=steps, start=start,
                          schedule=result.schedule, want_conditions=False, want_witness=False,
                          seconds=BRANCH_SECONDS)
            branches.append({"case": strs(root), "verdict": sub.verdict,
                             "mapping": strs(sub.mapping or {})})
            if sub.verdict != PROVEN or sub.valid_when:
                exhausted = False
                at = ", ".join(f"{u} = {v}" for u, v in root.items())
                result.notes.append(f"at {at} torch takes another branch, where the two are "
                                    f"{sub.verdict}" + (" only when " + " and ".join(
                                        map(str, sub.valid_when)) if sub.valid_when else ""))
        if not exhausted and positive is not False and positive not in conditions:
            conditions.append(positive)
    result.branches = branches
    return conditions
