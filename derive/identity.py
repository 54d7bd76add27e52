"""Deciding whether an expression is identically zero, honestly.

`zero_test` answers one of three verdicts:
  proven     the difference simplifies to 0 symbolically;
  refuted    it is non-zero at an exact rational point (the point is returned as the witness);
  supported  no symbolic proof was found, but it vanished at every random high-precision point.
Random points respect each symbol's domain (derive.symbols): hyperparameters and second moments
in (0, 1), reals in [-2, 2], step counts small nonnegative integers. Points are exact rationals,
so a refutation is an exact statement, not a float accident.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import sympy as sp

from .budget import attempt
from .symbols import by_name

PROVEN, REFUTED, SUPPORTED = "proven", "refuted", "supported"
SIMPLIFY_LIMIT = 4000  # count_ops above which sp.simplify is not attempted (it can take minutes)
DISPLAY_LIMIT = 120  # above this, a displayed difference is shown as computed, not simplified


@dataclass(frozen=True)
class ZeroVerdict:
    verdict: str
    point: dict | None = None  # for 'refuted': symbol -> exact rational where the value is non-zero
    value: sp.Expr | None = None  # the exact non-zero value at that point

    def __bool__(self):  # truthy when the expression is (proven or supported to be) zero
        return self.verdict != REFUTED


def random_value(symbol: sp.Symbol, rng: random.Random) -> sp.Rational:
    if symbol.is_integer:
        return sp.Integer(rng.randint(1, 12))
    denominator = rng.choice((7, 11, 13, 17, 19, 23, 29, 31, 37))
    if symbol.is_nonnegative:
        return sp.Rational(rng.randint(1, denominator - 1), denominator)
    numerator = rng.choice((-1, 1)) * rng.randint(1, 2 * denominator)
    return sp.Rational(numerator, denominator)


def random_point(symbols, rng: random.Random) -> dict:
    return {s: random_value(s, rng) for s in by_name(symbols)}


def nonzero_number(value: sp.Expr) -> bool | None:
    """Exact for rationals; for algebraic values, a 60-digit evaluation (far from a rounding
    artefact); None when the value is not a number or cannot be evaluated. A non-real value
    counts by its modulus: random points respect the symbols' assumptions, where every model is
    real, so a difference with an imaginary part is a real model against a complex claim."""
    if value.is_Rational:
        return value != 0
    if not value.is_number:
        return None
    if value.has(sp.zoo, sp.nan, sp.oo):
        return None
    try:
        approx = sp.N(value, 60)
    except (TypeError, ValueError, ArithmeticError):
        return None
    parts = approx.as_real_imag() if not approx.is_Number else (approx, sp.Integer(0))
    if not all(part.is_Number for part in parts):
        return None
    return any(abs(part) > sp.Float("1e-40") for part in parts)


def symbolically_zero(expr: sp.Expr) -> bool:
    if expr == 0:
        return True
    together = sp.together(expr)
    if sp.expand(sp.numer(together)) == 0:
        return True
    if sp.count_ops(expr) > SIMPLIFY_LIMIT:
        return False
    return attempt(10.0, sp.simplify, expr, fallback=expr) == 0


def zero_test(expr: sp.Expr, trials: int = 6, seed: int = 0, evaluate=None,
              prove: bool = True, betas=()) -> ZeroVerdict:
    """Is `expr` identically zero in its free symbols?

    `evaluate(point)` may be given to compute the value at a point more cheaply than substituting
    into `expr` (e.g. by re-running a recurrence on numbers). prove=False skips the symbolic
    attempt where only a refutation matters (the answer is then 'refuted' or 'supported').
    `betas`: symbols known to lie in [0, 1) (torch's betas), used by the symbolic attempt."""
    if expr == 0:
        return ZeroVerdict(PROVEN)
    free = expr.free_symbols
    rng = random.Random(seed)
    for _ in range(trials):
        point = random_point(free, rng)
        value = evaluate(point) if evaluate else expr.xreplace(point)
        if nonzero_number(value):
            return ZeroVerdict(REFUTED, point, value)
    if prove and (symbolically_zero(expr) or
                  (betas and symbolically_zero(bias_corrections_positive(expr, betas)))):
        return ZeroVerdict(PROVEN)
    return ZeroVerdict(SUPPORTED)


def bias_corrections_positive(expr: sp.Expr, betas) -> sp.Expr:
    """Replace each 1 - beta**e by a positive symbol. Valid because torch requires every beta in
    [0, 1) and e >= 1; SymPy cannot know beta < 1 from a symbol's assumptions, and without it
    cannot merge sqrt(v)/sqrt(1 - beta2**t) with sqrt(v/(1 - beta2**t))."""
    betas = [b for b in betas if isinstance(b, sp.Symbol)]
    if not betas:
        return expr
    swap = {}
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Add) and len(node.args) == 2 and sp.Integer(1) in node.args:
            other = node.args[0] if node.args[1] == 1 else node.args[1]
            base = -other
            if isinstance(base, sp.Pow) and base.base in betas:
                swap[node] = sp.Dummy("c", positive=True)
    return expr.xreplace(swap)


def simplest(expr: sp.Expr) -> sp.Expr:
    """A readable form: factored when the expression is a rational function, else simplified
    within a size budget (simplify on large sqrt/Max/Abs expressions can take minutes)."""
    if expr == 0:
        return expr
    try:
        ops = sp.count_ops(expr)
        if expr.is_rational_function():
            return sp.factor(sp.cancel(sp.together(expr))) if ops <= SIMPLIFY_LIMIT else expr
        if ops > DISPLAY_LIMIT:
            return expr
        best = attempt(0.5, sp.simplify, expr, fallback=expr)  # display only: keep it brief
        return best if sp.count_ops(best) <= ops else expr
    except (sp.PolynomialError, NotImplementedError, TypeError):
        return expr
