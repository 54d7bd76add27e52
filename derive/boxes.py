"""No common zero on a box, by interval arithmetic: a certificate where radicals defeat algebra.

When B's unknowns sit inside square roots (Adam's free betas: sqrt(v_hat) with v_hat a function
of beta2, and the bias correction sqrt(1 - beta2**t)), neither solveset nor a Groebner basis over
the field of the point's algebraic numbers finishes in time. But betas live in the compact box
[0, 1]; so "no mapping exists" can be shown by covering the box with sub-boxes on each of which
one of the step's equations (the difference theta^B_k - theta^A_k at an exact point of the free
variables and of A's symbols) is bounded away from zero.

Soundness, step by step:
  - each equation is the exact difference at the point; every radicand and then the whole is put
    over one denominator and cancelled (`tidy`), which changes it only where a cancelled factor
    vanishes, that is where the original is 0/0 and B's rule is undefined (beta2 -> 1 in
    v / (1 - beta2**2)); so a zero of the original in the box is a zero of the tidied one;
  - intervals are mpmath's `iv` at 80 bits with outward rounding, starting from exact rational
    bounds (dyadic: bisection of [0, 1]), so each computed interval encloses every value the
    expression takes on the box;
  - a root (b**(p/q)) whose radicand is negative on the whole box has no real value there (no
    real B lies there); a radicand partly negative is clipped at 0 (its real values are
    enclosed), and each root is widened past its rounding error (`_root`);
  - a division by an interval that holds 0 is the whole line: it never excludes anything.
A box is closed when some equation's interval misses 0; the certificate lists every box with the
index of its equation, so a reader can re-run the check box by box.
"""
from __future__ import annotations

import time
from fractions import Fraction

import mpmath
import sympy as sp
from mpmath import iv, libmp

PRECISION = 80  # bits of the interval endpoints
MAX_BOXES = 4000  # closed boxes, past which the cover is given up (None: undecided)
MIN_WIDTH = Fraction(1, 2 ** 24)  # a box this thin that no equation closes: give up
SECONDS = 3.0


class _NoRealValue(Exception):
    """A square root of a radicand negative on the whole box."""


def tidy(e: sp.Expr) -> sp.Expr:
    """e with every radicand, then the whole, over one cancelled denominator (bottom-up)."""
    if e.is_Atom:
        return e
    e = e.func(*(tidy(a) for a in e.args))
    if e.is_Pow and not e.exp.is_Integer:
        return sp.Pow(sp.factor(sp.cancel(e.base)), e.exp)
    return e


def _exact(p: int, q: int):
    """p/q as an interval (outward rounding: it holds p/q exactly)."""
    return iv.mpf(p) / q if q != 1 else iv.mpf(p)


def enclose(e: sp.Expr, box: dict, memo: dict | None = None):
    """An interval that holds every real value of e on the box (symbol -> iv.mpf interval)."""
    memo = {} if memo is None else memo
    if e in memo:
        return memo[e]
    if e.is_Symbol:
        r = box[e]
    elif e.is_Rational:
        r = _exact(int(e.p), int(e.q))
    elif e.is_Add or e.is_Mul:
        parts = [enclose(a, box, memo) for a in e.args]
        r = parts[0]
        for p in parts[1:]:
            r = r + p if e.is_Add else r * p
    elif e.is_Pow and e.exp.is_Integer:
        r = _power(enclose(e.base, box, memo), int(e.exp))
    elif e.is_Pow and e.exp.is_Rational:  # root(b, q)**p: sqrt, x**(3/2), (x**2 + x)**(1/4)
        b = enclose(e.base, box, memo)
        if b.b < 0:  # SymPy's b**(p/q) of a negative b is not real (the principal root)
            raise _NoRealValue
        r = _power(_root(b, int(e.exp.q)), int(e.exp.p))
    elif isinstance(e, sp.Abs):
        r = abs(enclose(e.args[0], box, memo))
    else:
        raise NotImplementedError(f"no interval rule for {type(e).__name__}")
    memo[e] = r
    return r


def _root(b, q: int):
    """An interval holding the q-th root of b's part at or above 0: each endpoint's root to 20
    bits past iv's precision (relative error under 2**-(prec + 20)), then widened by a
    relative 2**-(prec - 4), far more than that error, in iv's outward arithmetic."""
    lo, hi = b._mpi_
    lo = lo if mpmath.mp.make_mpf(lo) > 0 else libmp.fzero
    roots = [mpmath.mp.make_mpf(libmp.mpf_nthroot(x, q, iv.prec + 20)) for x in (lo, hi)]
    slack = iv.mpf(2) ** -(iv.prec - 4)
    return iv.mpf([(iv.mpf(roots[0]) * (1 - slack)).a, (iv.mpf(roots[1]) * (1 + slack)).b])


def _power(b, n: int):
    """b**n for an integer n; a negative power of an interval holding 0 is the whole line."""
    if n >= 0:
        return b ** n
    if b.a <= 0 <= b.b:
        return iv.mpf(["-inf", "inf"])
    return 1 / b ** (-n)


def _closes(e: sp.Expr, box: dict) -> bool:
    try:
        value = enclose(e, box)
    except _NoRealValue:
        return True
    return value.a > 0 or value.b < 0


def cover(exprs: list, unknowns: list, seconds: float = SECONDS):
    """The boxes covering [0, 1]^n of the unknowns, each with the index of an expression that
    is non-zero all over it: [(bounds, index)], bounds {symbol: (Fraction lo, Fraction hi)}.
    None when the cover is not found within the budget (a common zero, or one at the edge)."""
    saved, iv.prec = iv.prec, PRECISION  # iv has no workprec context manager
    try:
        return _cover(exprs, unknowns, time.monotonic() + seconds)
    except NotImplementedError:
        return None
    finally:
        iv.prec = saved


def _cover(exprs, unknowns, deadline):
    stack = [{u: (Fraction(0), Fraction(1)) for u in unknowns}]
    closed = []
    while stack:
        if len(closed) > MAX_BOXES or time.monotonic() > deadline:
            return None
        bounds = stack.pop()
        box = {u: iv.mpf([_exact(lo.numerator, lo.denominator).a,
                          _exact(hi.numerator, hi.denominator).b])
               for u, (lo, hi) in bounds.items()}
        index = next((i for i, e in enumerate(exprs) if _closes(e, box)), None)
        if index is not None:
            closed.append((bounds, index))
            continue
        u = max(unknowns, key=lambda s: bounds[s][1] - bounds[s][0])
        lo, hi = bounds[u]
        if hi - lo < MIN_WIDTH:
            return None
        mid = (lo + hi) / 2
        stack += [{**bounds, u: (mid, hi)}, {**bounds, u: (lo, mid)}]
    return closed


def refute(values: list, unknowns: list, point: dict, seconds: float = SECONDS):
    """(equations, boxes, why) when the exact differences `values` (functions of the free
    variables, the unknowns and A's symbols) have no common zero for unknowns in [0, 1]^n at
    `point` (A's symbols); None when that cannot be shown in time."""
    exprs = []
    for v in values:
        at = v.xreplace(point)
        if at.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or not at.free_symbols <= set(unknowns):
            continue
        exprs.append(sp.cancel(tidy(at)))
    if not exprs:
        return None
    boxes = cover(exprs, unknowns, seconds)
    if boxes is None:
        return None
    names = ", ".join(map(str, unknowns))
    why = (f"no common zero for ({names}) in [0, 1]^{len(unknowns)}: {len(boxes)} boxes cover "
           f"it, on each of which one equation's interval (outward rounding, {PRECISION} bits, "
           "exact rational bounds) excludes 0")
    return exprs, boxes, why


def boxes_json(boxes: list) -> list:
    """The cover as a reader re-checks it: each box's exact bounds and its equation's index."""
    return [{"box": {str(u): [str(lo), str(hi)] for u, (lo, hi) in bounds.items()},
             "equation": index} for bounds, index in boxes]
