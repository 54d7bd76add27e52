"""Deciding "identically zero" for piecewise expressions by splitting them, never by sampling.

AMSGrad's max(vmax, v), |x|, sign(x) and Piecewise (RAdam's switch on rho_t > 5, Rprop's switch on
the sign of g*prev) make a difference zero on one region of the gradients and states and non-zero
on another. A Piecewise's i-th branch holds where its condition holds and every earlier one fails;
conditions are relationals (>, >=, <, <=, ==, !=) and And/Or/Not of them. Random points may
never land where the max switches (with beta2 = 0.999, v_2 < v_1 needs |g_2| < 0.032|g_1|), so
"zero at six random points" says nothing.
`coincide` therefore answers:
  proven   zero symbolically, or zero symbolically on every region of the piecewise atoms
           (the regions cover the whole domain, so no point needs to be found);
  refuted  non-zero at an exact point (the witness), found in the region where the difference
           does not vanish, with gradients and states drawn over several orders of magnitude;
           a region that random points miss (an equality such as mu == 1, x > 1000) is reached
           by solving its conditions for a symbol they are linear in;
  supported  neither could be established: it is not a proof and the engine does not treat it
           as one.
"""
from __future__ import annotations

import random

import sympy as sp

from .identity import PROVEN, REFUTED, SUPPORTED, ZeroVerdict, nonzero_number, symbolically_zero, \
    zero_test
from .symbols import by_name

MAX_REGIONS = 64
VALID_TRIES = 24  # seeds tried for a witness inside the domain that matters (coincide's valid)
POINTS_PER_REGION = 160
PIECEWISE = (sp.Max, sp.Min, sp.Abs, sp.sign, sp.Piecewise)
REPAIRS = 4  # conditions solved for, per point


def _innermost(expr: sp.Expr):
    """A piecewise atom whose arguments contain no other piecewise atom, or None."""
    for node in sp.postorder_traversal(expr):
        if isinstance(node, PIECEWISE):
            return node
    return None


class Unsplittable(Exception):
    """A Piecewise condition that is not made of relationals (a boolean symbol, a set)."""


def _clauses(cond, negate: bool = False) -> list:
    """The condition as an Or of And-clauses of ('gt' | 'ge' | 'eq', expression) atoms, each
    meaning expression > 0, >= 0 or == 0 (negated first when `negate`)."""
    if cond in (sp.true, sp.false):
        return [[]] if (cond is sp.true) != negate else []
    if isinstance(cond, sp.Not):
        return _clauses(cond.args[0], not negate)
    if isinstance(cond, (sp.And, sp.Or)):
        conjunction = isinstance(cond, sp.And) != negate  # De Morgan under a negation
        parts = [_clauses(a, negate) for a in cond.args]
        if not conjunction:
            return [c for p in parts for c in p]
        out = [[]]
        for p in parts:
            out = [a + b for a in out for b in p]
        return out
    if isinstance(cond, sp.Rel):
        rel = cond.negated if negate else cond
        a, b = rel.lhs - rel.rhs, rel.rhs - rel.lhs
        if isinstance(rel, sp.StrictGreaterThan):
            return [[("gt", a)]]
        if isinstance(rel, sp.GreaterThan):
            return [[("ge", a)]]
        if isinstance(rel, sp.StrictLessThan):
            return [[("gt", b)]]
        if isinstance(rel, sp.LessThan):
            return [[("ge", b)]]
        if isinstance(rel, sp.Equality):
            return [[("eq", a)]]
        if isinstance(rel, sp.Unequality):
            return [[("gt", a)], [("gt", b)]]
    raise Unsplittable(cond)


def _branches(atom: sp.Expr) -> list:
    """(value, [conditions]) covering the atom's whole domain; conditions are expressions that
    must be >= 0 (tagged 'ge'), > 0 ('gt') or == 0 ('eq')."""
    if isinstance(atom, sp.Piecewise):
        out, earlier = [], []
        for value, cond in atom.args:
            clauses = _clauses(sp.And(cond, *[sp.Not(c) for c in earlier]))
            out += [(value, clause) for clause in clauses]
            earlier.append(cond)
        # a Piecewise without a final True branch is undefined elsewhere (SymPy's nan there)
        return out
    if isinstance(atom, sp.Abs):
        x = atom.args[0]
        return [(x, [("ge", x)]), (-x, [("gt", -x)])]
    if isinstance(atom, sp.sign):
        x = atom.args[0]
        return [(sp.Integer(1), [("gt", x)]), (sp.Integer(-1), [("gt", -x)]),
                (sp.Integer(0), [("eq", x)])]
    args = list(atom.args)
    out = []
    for i, a in enumerate(args):
        # the i-th argument is the extreme one; ties go to the first (conditions cover all)
        rel = [(("ge" if j > i else "gt"), (a - b) if isinstance(atom, sp.Max) else (b - a))
               for j, b in enumerate(args) if j != i]
        out.append((a, rel))
    return out


_TEST = {"gt": sp.StrictGreaterThan, "ge": sp.GreaterThan, "eq": sp.Equality}


def _prune(conds: list):
    """The conditions without those the symbols' assumptions decide, or None when the region
    is empty: one condition false, or two that contradict (x > 0 with -x >= 0 or x == 0)."""
    kept = []
    for kind, c in conds:
        truth = _TEST[kind](c, 0)
        if truth is sp.false:
            return None
        if truth is not sp.true:
            kept.append((kind, sp.expand(c)))
    for i, (k1, c1) in enumerate(kept):
        for j, (k2, c2) in enumerate(kept[i + 1:], i + 1):
            same, opposite = sp.expand(c1 - c2) == 0, sp.expand(c1 + c2) == 0
            if opposite and "gt" in (k1, k2):  # c > 0 with -c >= 0 (or -c > 0)
                return None
            if (same or opposite) and {k1, k2} == {"gt", "eq"}:
                return None
            if opposite and k1 == k2 == "ge":  # c >= 0 and -c >= 0: c == 0
                return _prune(kept[:i] + [("eq", c1)] + kept[i + 1:j] + kept[j + 1:])
    return kept


def _solved(equation: sp.Expr):
    """(symbol, value) from an equation `equation == 0` linear in a symbol with a non-zero
    numeric coefficient (so valid at every point of the region), or None."""
    for s in by_name(equation.free_symbols):
        if equation.is_polynomial(s) and sp.degree(equation, s) == 1:
            a = sp.expand(equation).coeff(s, 1)
            if a.is_number and a != 0:
                return s, sp.expand(s - equation / a)
    return None


def on_equalities(piece: sp.Expr, conds: list):
    """The region's expression with its equalities substituted: [expression] over the region's
    parts (x*y == 0 is x == 0 or y == 0), or None when an equality cannot be solved exactly."""
    cases = [piece]
    for kind, c in conds:
        if kind != "eq":
            continue
        out = []
        for p in cases:
            constant, factors = sp.factor_list(c)
            if constant == 0:
                out.append(p)
                continue
            for f, _ in factors:
                solved = _solved(f)
                if solved is None:
                    return None
                out.append(p.xreplace({solved[0]: solved[1]}))
        cases = out
    return cases


def regions(expr: sp.Expr, limit: int = MAX_REGIONS):
    """[(expression without piecewise atoms, [conditions])], or None past `limit` regions."""
    todo, done = [(expr, [])], []
    while todo:
        e, conds = todo.pop()
        atom = _innermost(e)
        if atom is None:
            done.append((e, conds))
            continue
        try:
            branches = _branches(atom)
        except Unsplittable:
            return None
        for value, extra in branches:
            kept = _prune(conds + extra)
            if kept is not None:  # an empty region needs no verdict
                todo.append((e.xreplace({atom: value}), kept))
        if len(todo) + len(done) > limit:
            return None
    return done


def sample(symbol: sp.Symbol, rng: random.Random) -> sp.Rational:
    """Exact rationals over several orders of magnitude, respecting the symbol's domain."""
    if symbol.is_integer:
        return sp.Integer(rng.randint(1, 12))
    den = rng.choice((7, 11, 13, 17, 19, 23))
    scale = sp.Integer(10) ** -rng.choice((0, 0, 1, 2, 3, 4))
    if symbol.is_nonnegative:
        if rng.random() < 0.25:  # near 1 (betas such as 0.999)
            return 1 - sp.Rational(rng.randint(1, den - 1), den) * scale / 10
        return sp.Rational(rng.randint(1, den - 1), den) * scale
    return rng.choice((-1, 1)) * sp.Rational(rng.randint(1, 3 * den), den) * scale


def _holds(conds: list, point: dict) -> bool | None:
    for kind, c in conds:
        value = c.xreplace(point)
        nz = nonzero_number(value)
        if nz is None:
            return None
        if kind == "eq":
            if nz:
                return False
            continue
        if not nz:
            if kind == "gt":
                return False
            continue
        if sp.N(value, 30) < 0:
            return False
    return True


def _admissible(symbol: sp.Symbol, value: sp.Expr) -> bool:
    if not value.is_Rational:
        return False
    if symbol.is_integer and not value.is_integer:
        return False
    if symbol.is_positive and not value > 0:
        return False
    return not (symbol.is_nonnegative and value < 0)


def _repair(conds: list, point: dict, free: list, rng: random.Random) -> dict:
    """The point moved into the region: a failing condition solved for a symbol it is linear
    in, the others kept (c == 0 exactly for 'eq', a sampled c > 0 for 'gt'). Reaches regions
    that random points miss: mu == 1, x > 1000, g*prev < 0 with g and prev of one sign."""
    target = sp.Symbol("target", positive=True)
    for _ in range(REPAIRS):
        failing = [(k, c) for k, c in conds if _holds([(k, c)], point) is False]
        if not failing:
            return point
        kind, c = failing[0]
        for s in free:
            if s not in c.free_symbols:
                continue
            rest = c.xreplace({k: v for k, v in point.items() if k != s})
            if not rest.is_polynomial(s) or sp.degree(rest, s) != 1:
                continue
            goal = 0 if kind == "eq" or (kind == "ge" and rng.random() < 0.5) \
                else sample(target, rng)
            a = rest.coeff(s, 1)
            value = sp.nsimplify((goal - rest.coeff(s, 0)) / a) if a != 0 else None
            if value is not None and _admissible(s, value):
                point = {**point, s: value}
                break
        else:
            return point
    return point


def witness_in(expr: sp.Expr, conds: list, seed: int = 0, fixed: dict | None = None,
               points: int = POINTS_PER_REGION):
    """An exact point inside the region where `expr` is non-zero, or None. `fixed` values are
    kept (the hyperparameters of a counterexample)."""
    rng = random.Random(seed)
    free = by_name((expr.free_symbols | set().union(*[c.free_symbols for _, c in conds]))
                   - set(fixed or {}))
    for i in range(points):
        point = {**(fixed or {}), **{s: sample(s, rng) for s in free}}
        if conds and i % 2:  # every other point is solved into the region
            point = _repair(conds, point, rng.sample(free, len(free)), rng)
        if _holds(conds, point) and nonzero_number(expr.xreplace(point)):
            return point
    return None


def coincide(expr: sp.Expr, seed: int = 0, valid=None) -> ZeroVerdict:
    """Is `expr` identically zero over the whole domain of its symbols (see the module)?
    `valid(point)`: whether a point lies in the domain that matters (A's hyperparameters where
    torch builds A: beta < 1, Rprop's etaplus > 1); a witness outside it refutes nothing, so
    a difference non-zero only there is not refuted (it is at most supported)."""
    if expr == 0:
        return ZeroVerdict(PROVEN)
    if valid is not None:  # points drawn by the symbols' assumptions alone may leave the domain:
        for k in range(VALID_TRIES):  # draw again until a witness lies inside
            verdict = coincide(expr, seed + k)
            if verdict.verdict != REFUTED or valid(verdict.point):
                return verdict
        return ZeroVerdict(SUPPORTED)
    first = zero_test(expr, prove=False, seed=seed)  # exact random points: a refutation only
    if first.verdict == REFUTED:
        return first
    pieces = regions(expr)
    if pieces is None or len(pieces) == 1:
        # no piecewise atom (or too many to split): simplify, then a wider spread of points
        if symbolically_zero(expr):
            return ZeroVerdict(PROVEN)
        point = witness_in(expr, [], seed)
        return ZeroVerdict(REFUTED, point, expr.xreplace(point)) if point else first
    undecided = False
    for piece, conds in pieces:
        # each region's expression has no Max or |.| left, so simplify is cheap there
        if symbolically_zero(piece):
            continue
        parts = on_equalities(piece, conds) if any(k == "eq" for k, _ in conds) else None
        if parts is not None and all(symbolically_zero(p) for p in parts):
            continue
        point = witness_in(piece, conds, seed)
        if point is not None:
            value = expr.xreplace(point)
            if nonzero_number(value):
                return ZeroVerdict(REFUTED, point, value)
        undecided = True  # non-zero on a region where no point was found: maybe unreachable
    return ZeroVerdict(SUPPORTED if undecided else PROVEN)


__all__ = ["coincide", "regions", "witness_in"]
