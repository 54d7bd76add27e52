"""Conditions: restrictions of A's hyperparameters under which a refuted pair coincides.

Candidates are a symbol set to 0 (torch switches that feature off, which is why every candidate is
re-run from the substituted spec), the roots of linear factors of the divergence equations, and a
scheduled symbol held constant. Each is verified by a full comparison, so only proven conditions
are reported.
"""
from __future__ import annotations

import sympy as sp

from . import symbols as Y
from .domains import admissibility

CANDIDATE_SECONDS = 5.0


def _roots(eqs: list, symbols: list, unknowns: list) -> list:
    """Single-symbol candidates s = r read off linear factors of the divergence equations (a
    factor such as lr*mu*lam gives lr = 0, mu = 0, lam = 0; tau*(1 - beta) gives beta = 1)."""
    found = []
    for eq in eqs:
        if eq.has(*unknowns) or not eq.is_polynomial(*symbols):
            continue
        for factor, _ in sp.factor_list(eq)[1]:
            for s in symbols:
                if factor.has(s) and sp.degree(factor, s) == 1:
                    root = sp.cancel(-factor.coeff(s, 0) / factor.coeff(s, 1))
                    if not root.has(s):
                        found.append({s: root})
    return found


def conditions(compare, A, B, steps, start, schedule, difference, free, base_unknowns, k,
                transform) -> list:
    """Restrictions of A's hyperparameters under which the two coincide, each verified by a full
    comparison (so only proven conditions are reported). Candidates: a symbol set to 0 (torch
    switches that feature off, which is why every candidate is re-run from the substituted spec),
    the roots of linear factors of the divergence equations, a scheduled symbol held constant."""
    a_syms = [s for s in Y.by_name(A.symbols()) if s not in schedule]
    unknowns = unknowns_at(base_unknowns, schedule, k)
    candidates = [{s: sp.Integer(0)} for s in a_syms]
    num = sp.numer(sp.together(difference))
    if num.is_polynomial(*free):
        coefficients = sp.Poly(sp.expand(num), *free).coeffs() if free else [num]
        candidates += _roots(coefficients, a_syms, unknowns)
    found = []
    for cand in candidates:
        if cand in found:
            continue
        if not admissibility(A, cand, A).ok:
            continue  # the condition leaves torch's valid range (lam = -mu, a beta of 1)
        try:
            sub_a, sub_b = A.substitute(cand), B.substitute(cand)
        except ValueError:
            continue
        result = compare(sub_a, sub_b, steps=steps, start=start, schedule=schedule,
                         want_conditions=False, want_witness=False, transform=transform,
                         seconds=CANDIDATE_SECONDS)
        if result.equivalent:
            found.append(cand)
    for s in schedule:
        if s in A.symbols():
            result = compare(A, B, steps=steps, start=start,
                             schedule=tuple(x for x in schedule if x != s),
                             want_conditions=False, want_witness=False, transform=transform,
                             seconds=CANDIDATE_SECONDS)
            if result.equivalent:
                found.append({Y.stepped(s, "t"): s})
    return found



def unknowns_at(base_unknowns, schedule, k) -> list:
    """B-only symbols in force up to step k: scheduled ones have one copy per step."""
    out = []
    for u in base_unknowns:
        out += [Y.stepped(u, i) for i in range(1, k + 1)] if u in schedule else [u]
    return out
