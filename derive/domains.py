"""Admissibility: is B, under a mapping of its symbols, an optimizer torch would build?

A mapping found by algebra is a proof only where B under it stays inside torch's domain (each
scalar's in its catalogue entry: lr, eps, weight_decay, momentum >= 0; 0 <= beta < 1; nesterov
with momentum > 0): e2 -> -eta solves the
equations of sgd(maximize=true) against sgd, but no torch SGD has a negative lr. The values are
expressions of A's hyperparameters, which range over torch's domain themselves, so each
constraint is decided for *every* admissible value of A's symbols by the signs of its factors:
  - every factor has the required sign: admissible unconditionally;
  - a factor of the wrong sign everywhere (-eta >= 0 holds only at eta = 0): inadmissible;
  - factors of undetermined sign: admissible exactly where they have it, stated as a condition
    (`valid_when`), e.g. e2 -> eta/(1 - eta*lam) needs eta*lam < 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from . import symbols as Y
from .errors import UserError
from .spec import Spec



@dataclass
class Admissibility:
    ok: bool  # False: B is no optimizer for (almost) any admissible value of A's symbols
    valid_when: list = field(default_factory=list)  # conditions on A's symbols, as sympy relations


def _unit(scalar) -> bool:
    return scalar.low == "0" and scalar.high == "1"


def unit_names(spec: Spec) -> set:
    """The canonical names of the scalars of `spec`'s entry that lie in [0, 1] (betas, rho)."""
    return {s.name for s in spec.entry.scalars if _unit(s)}


def beta_symbols(spec: Spec) -> set:
    """Symbols that stand for a scalar of `spec` known to lie in [0, 1] (betas, rho, alpha)."""
    h = spec.hyper()
    return {h[s.name] for s in spec.entry.scalars if _unit(s) and isinstance(h[s.name], sp.Symbol)}


def _positive_form(expr: sp.Expr, betas: set) -> sp.Expr:
    """expr with each beta written 1 - c (c > 0): SymPy's assumptions then see 1 - beta > 0."""
    return expr.xreplace({b: 1 - sp.Dummy(f"c_{b.name}", positive=True) for b in betas})


def sign_of(expr: sp.Expr, betas: set) -> str | None:
    """'pos', 'nonneg', 'neg', 'nonpos' or 'zero' when decided for every admissible value of the
    symbols (hyperparameters are nonnegative, betas in [0, 1)), else None."""
    if expr == 0:
        return "zero"
    for form in (expr, _positive_form(expr, betas)):
        if form.is_positive:
            return "pos"
        if form.is_negative:
            return "neg"
    for form in (expr, _positive_form(expr, betas)):
        if form.is_nonnegative:
            return "nonneg"
        if form.is_nonpositive:
            return "nonpos"
    return None


def _factors(expr: sp.Expr):
    """(constant sign, [(factor, exponent)]) of a rational function's numerator / denominator."""
    num, den = sp.fraction(sp.factor(sp.together(expr)))
    out = []
    sign = 1
    for part, power in ((num, 1), (den, -1)):
        coeff, factors = sp.factor_list(part) if part.is_polynomial() else (1, [(part, 1)])
        sign *= 1 if coeff > 0 else -1
        out += [(f, e * power) for f, e in factors]
    return sign, out


def _readable(expr: sp.Expr, strict: bool) -> sp.Basic:
    """expr > 0 (or >= 0) written with the negative terms moved over: 1 - eta*lam > 0 reads
    eta*lam < 1."""
    pos = sp.Add(*[t for t in sp.Add.make_args(sp.expand(expr)) if not t.could_extract_minus_sign()])
    neg = -sp.Add(*[t for t in sp.Add.make_args(sp.expand(expr)) if t.could_extract_minus_sign()])
    if neg == 0 or pos == 0:
        return sp.StrictGreaterThan(expr, 0) if strict else sp.GreaterThan(expr, 0)
    return sp.StrictLessThan(neg, pos) if strict else sp.LessThan(neg, pos)


def constraint(value: sp.Expr, strict: bool, betas: set):
    """value > 0 (strict) or value >= 0 for every admissible point: True, False (fails wherever
    it is not 0, or is a number of the wrong sign) or a condition (a sympy relation) on A's
    symbols under which it holds."""
    if value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        return False  # a division by zero in the mapping: no optimizer at all
    if value.is_number:
        return bool(value > 0) if strict else bool(value >= 0)
    sign = sign_of(value, betas)
    if sign in ("pos",) or (sign == "nonneg" and not strict):
        return True
    if sign in ("neg", "nonpos", "zero"):
        return False
    try:
        const, factors = _factors(value)
    except (sp.PolynomialError, NotImplementedError):
        return sp.StrictGreaterThan(value, 0) if strict else sp.GreaterThan(value, 0)
    undetermined, negative = [], const < 0
    for f, e in factors:
        s = sign_of(f, betas)
        if e % 2 == 0 and (s in ("pos", "neg") or not strict or e < 0):
            continue  # an even power is nonnegative (and positive where defined in a denominator)
        if s == "pos" or (s == "nonneg" and e > 0 and not strict):
            continue
        if s == "neg":
            negative = not negative
            continue
        undetermined.append((f, e))
    if not undetermined:
        return not negative
    product = sp.Mul(*[f ** abs(e) if e % 2 == 0 else f for f, e in undetermined])
    if negative:
        product = -product
    # a denominator factor must be non-zero, so its condition is strict
    return _readable(product, strict or any(e < 0 for _, e in undetermined))


def _constraints(spec: Spec, values: dict) -> list:
    """(value, strict) pairs that torch requires of a spec's hyperparameters: each scalar's
    domain in its catalogue entry, and the entry's own joint constraints (Nesterov's momentum)."""
    out = []
    for s in spec.entry.scalars:
        if s.low is not None:
            out.append((values[s.name] - sp.Rational(s.low), s.low_strict))
        if s.high is not None:
            out.append((sp.Rational(s.high) - values[s.name], s.high_strict))
    if spec.entry.extra_constraints:
        out += spec.entry.extra_constraints(spec, values)
    if spec.entry.model_constraints:  # B under a mapping stays where the model holds
        out += spec.entry.model_constraints(spec, values)
    return out


def model_conditions(spec: Spec):
    """The conditions on a spec's own symbols for lying where its entry's model holds
    (Entry.model_constraints): [] everywhere, relations where its symbols decide, None when it
    lies outside for certain (torch builds it, but the engine's state assumptions fail)."""
    if not spec.entry.model_constraints:
        return []
    betas, out = beta_symbols(spec), []
    for value, strict in spec.entry.model_constraints(spec, spec.hyper()):
        verdict = constraint(sp.sympify(value), strict, betas)
        if verdict is False:
            return None
        if verdict is not True and verdict not in out:
            out.append(verdict)
    return out


def admissibility(B: Spec, sigma: dict, a_spec: Spec) -> Admissibility:
    """Whether B under `sigma` (B-only symbols -> expressions of A's symbols) is an optimizer
    torch would build for every admissible value of A's symbols, or under which conditions."""
    try:
        mapped = B.substitute(sigma)
    except (UserError, ValueError, TypeError):
        return Admissibility(False)
    betas = beta_symbols(a_spec) | beta_symbols(B)
    conditions = []
    pairs = _constraints(mapped, mapped.hyper())
    # B's identifiers are nonnegative reals (derive.symbols): m2 -> -sqrt(mu) is no value of m2
    pairs += [(v, False) for v in sigma.values() if isinstance(v, sp.Expr)]
    # a square root of a negative number is no real hyperparameter
    pairs += [(p.base, False) for v in mapped.hyper().values() for p in v.atoms(sp.Pow)
              if not p.exp.is_integer]
    for value, strict in pairs:
        verdict = constraint(value, strict, betas)
        if verdict is False:
            return Admissibility(False)
        if verdict is not True and verdict not in conditions:
            conditions.append(verdict)
    return Admissibility(True, tightest(conditions))


def invariants(specs) -> list:
    """Expressions of the mid-run state symbols (v_0, gavg_0) that are >= 0 in every state torch
    reaches: each spec's entry's `invariants`, over the states that spec holds. A run of A and
    B from one state must start where both can be."""
    out = []
    for spec in specs:
        if spec.entry.invariants is None:
            continue
        held = {n: Y.state(n, 0) for n in spec.entry.present(spec)}
        out += [e for e in spec.entry.invariants(held) if e not in out]
    return out


def state_form(specs) -> dict:
    """Each invariant e >= 0 solved for a state symbol it is linear in with a constant
    coefficient, onto a fresh c >= 0 (v_0 - gavg_0**2 >= 0: v_0 -> gavg_0**2 + c): zero on the
    image is zero on the reachable states, and any point drawn for c is one of them."""
    out = {}
    for e in invariants(specs):
        e = sp.expand(e.xreplace(out))
        for s in Y.by_name(e.free_symbols - set(out)):
            a = e.coeff(s, 1) if e.is_polynomial(s) and sp.degree(e, s) == 1 else None
            if a is not None and a.is_number and a != 0:
                c = sp.Dummy(f"c_{s.name}", nonnegative=True)
                out[s] = sp.expand((c - (e - a * s)) / a)
                break
    return out


def reachable(specs, point: dict) -> bool:
    """Whether the state values in `point` (others ignored) break no invariant of the specs."""
    for e in invariants(specs):
        value = e.xreplace(point)
        if value.is_Rational and value < 0:
            return False
        if value.is_number and not value.is_Rational and sp.N(value, 30) < 0:
            return False
    return True


def tightest(conditions: list) -> list:
    """Drop x <= y where x < y is also required."""
    strict = {(c.lhs, c.rhs) for c in conditions if isinstance(c, sp.StrictLessThan)}
    strict |= {(c.rhs, c.lhs) for c in conditions if isinstance(c, sp.StrictGreaterThan)}
    out = []
    for c in conditions:
        if isinstance(c, sp.LessThan) and (c.lhs, c.rhs) in strict:
            continue
        if isinstance(c, sp.GreaterThan) and (c.rhs, c.lhs) in strict:
            continue
        out.append(c)
    return out


def holds_at(condition, point: dict) -> bool:
    """Whether a valid_when condition holds at an exact point (rationals)."""
    value = condition.xreplace(point)
    return bool(value) if value in (sp.true, sp.false) else False
