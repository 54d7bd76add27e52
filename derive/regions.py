"""Deciding "identically zero" for piecewise expressions by splitting them, never by sampling.

AMSGrad's max(vmax, v), |x| and sign(x) make a difference zero on one region of the gradients and
states and non-zero on another. Random points may never land where the max switches (with
beta2 = 0.999, v_2 < v_1 needs |g_2| < 0.032|g_1|), so "zero at six random points" says nothing.
`coincide` therefore answers:
  proven   zero symbolically, or zero symbolically on every region of the piecewise atoms
           (the regions cover the whole domain, so no point needs to be found);
  refuted  non-zero at an exact point (the witness), found in the region where the difference
           does not vanish, with gradients and states drawn over several orders of magnitude;
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
POINTS_PER_REGION = 160
PIECEWISE = (sp.Max, sp.Min, sp.Abs, sp.sign)


def _innermost(expr: sp.Expr):
    """A piecewise atom whose arguments contain no other piecewise atom, or None."""
    for node in sp.postorder_traversal(expr):
        if isinstance(node, PIECEWISE):
            return node
    return None


def _branches(atom: sp.Expr) -> list:
    """(value, [conditions]) covering the atom's whole domain; conditions are expressions that
    must be >= 0 (tagged 'ge') or > 0 ('gt')."""
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


def regions(expr: sp.Expr, limit: int = MAX_REGIONS):
    """[(expression without piecewise atoms, [conditions])], or None past `limit` regions."""
    todo, done = [(expr, [])], []
    while todo:
        e, conds = todo.pop()
        atom = _innermost(e)
        if atom is None:
            done.append((e, conds))
            continue
        for value, extra in _branches(atom):
            todo.append((e.xreplace({atom: value}), conds + extra))
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


def witness_in(expr: sp.Expr, conds: list, seed: int = 0, fixed: dict | None = None,
               points: int = POINTS_PER_REGION):
    """An exact point inside the region where `expr` is non-zero, or None. `fixed` values are
    kept (the hyperparameters of a counterexample)."""
    rng = random.Random(seed)
    free = by_name((expr.free_symbols | set().union(*[c.free_symbols for _, c in conds]))
                   - set(fixed or {}))
    for _ in range(points):
        point = {**(fixed or {}), **{s: sample(s, rng) for s in free}}
        if _holds(conds, point) and nonzero_number(expr.xreplace(point)):
            return point
    return None


def coincide(expr: sp.Expr, seed: int = 0) -> ZeroVerdict:
    """Is `expr` identically zero over the whole domain of its symbols (see the module)?"""
    if expr == 0:
        return ZeroVerdict(PROVEN)
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
        point = witness_in(piece, conds, seed)
        if point is not None:
            value = expr.xreplace(point)
            if nonzero_number(value):
                return ZeroVerdict(REFUTED, point, value)
        undecided = True  # non-zero on a region where no point was found: maybe unreachable
    return ZeroVerdict(SUPPORTED if undecided else PROVEN)


__all__ = ["coincide", "regions", "witness_in"]
