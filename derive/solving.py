"""Solving for mappings, with a certificate whenever none exists.

Step k's difference theta^B_k - theta^A_k must vanish identically in the free variables (theta_0,
the initial state, g_1 ... g_k). That gives equations in B's own symbols (the unknowns) whose
coefficients are expressions of A's hyperparameters. `solve_step` answers one of:
  Solutions(mappings, complete)  candidate mappings, each verified by substituting it back
        symbolically (never at random points); `complete` says whether every solution is among
        them, which is what makes a later "no mapping exists" sound;
  NoSolution(point, unknowns, equations, why)  a certificate a reader can check: at this
        rational point of A's hyperparameters a mapping would be a number, and these exact
        equations in the unknowns have no admissible solution there (an inconsistent linear
        system, polynomials without a common root, no root in the admissible interval);
  None  undecidable here (the caller says "undecided", with the reason).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from . import boxes
from .budget import attempt
from .identity import PROVEN, REFUTED, nonzero_number, random_point
from .regions import PIECEWISE, coincide, sample

SOLVESET_SECONDS = 2.0
PIECEWISE_POINTS = 8  # extra points, over several magnitudes, for a piecewise difference
DOMAIN = "no root in the admissible interval"
# the symbolic solution tried where a point has no admissible root (exp(e2) = eta: log(eta))
SYMBOLIC_SECONDS, SYMBOLIC_OPS = 0.3, 60


@dataclass
class Solutions:
    mappings: list
    complete: bool = True


@dataclass
class NoSolution:
    point: dict
    unknowns: list
    equations: list
    why: str
    prefix: dict = field(default_factory=dict)  # the mapping of steps 1..k-1 it extends
    quantity: str | None = None  # the one quantity (theta, an output state) non-zero here
    boxes: list = field(default_factory=list)  # derive.boxes' cover, where it decided


def equations(d: sp.Expr, free: list, unknowns: list, rng: random.Random) -> tuple:
    """(equations, raw) that must all vanish for d == 0 in `free`: coefficients when d is a
    rational function of `free`, else numerators of d at exact random points of `free`, or
    where it is a polynomial in some of them, its coefficients in those at points of the rest
    (raw: the values at whole points before clearing denominators, to exclude 0/0 roots)."""
    num = sp.numer(sp.together(d))
    if num == 0:
        return [], []
    if num.is_polynomial(*free):
        eqs = [c for c in sp.Poly(sp.expand(num), *free).coeffs() if c != 0] if free else [num]
        return eqs, [d]
    eqs, raw = [], []
    # a piecewise difference (sign, max, |.|) gives one equation per region that a point
    # lands in: points of one magnitude may all land in one (sign(g + lam*theta) = sign(g)
    # unless |g| << |theta|), so such a difference also gets points over several orders of
    # magnitude. Every point's equation is a necessary condition: more of them never
    # exclude a true mapping
    spread = PIECEWISE_POINTS if d.has(*PIECEWISE) else 0
    regular = len(unknowns) + 3
    # the free variables in which the numerator is still a polynomial (theta_0 under |g|): at
    # each point of the others, every coefficient in them must vanish, which says more than
    # any number of their points and leaves the solver smaller equations
    exact = [s for s in free if num.is_polynomial(s)]
    exact = exact if exact and num.is_polynomial(*exact) else []
    sampled = [s for s in free if s not in exact]
    for i in range(regular + spread):
        point = random_point(free, rng) if i < regular else {s: sample(s, rng) for s in free}
        value = d.xreplace(point)
        if exact:
            partial = sp.numer(sp.together(d.xreplace({s: point[s] for s in sampled})))
            found = [c for c in sp.Poly(sp.expand(partial), *exact).coeffs() if c != 0]
        else:
            found = [top for top in [sp.numer(sp.together(value))] if top != 0]
        eqs += found
        if found:
            raw.append(value)
    return eqs, raw


def _domain(u: sp.Symbol, betas: set) -> sp.Interval:
    return sp.Interval.Ropen(0, 1) if u in betas else sp.Interval(0, sp.oo)


def _vanishes(exprs: list, sol: dict) -> str:
    """PROVEN when every expression is identically zero under sol, REFUTED when one is not."""
    verdicts = [coincide(sp.together(e.xreplace(sol))).verdict for e in exprs]
    if REFUTED in verdicts:
        return REFUTED
    return PROVEN if all(v == PROVEN for v in verdicts) else "supported"


def _is_root(raw: list, u: sp.Symbol, r: sp.Expr, point: dict) -> bool:
    """r solves the raw (uncleared) equations at the point: 0/0 there is no root."""
    for value in raw:
        at = value.xreplace(point).xreplace({u: r})
        if at.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
            return False
        if nonzero_number(at) is not False:
            return False
    return True


def _roots_at(eqs: list, raw: list, u: sp.Symbol, point: dict, domain: sp.Interval):
    """The exact values of u in its domain that solve every equation at the point: the roots of
    the first equation solveset can enumerate, kept where they solve the raw equations. None
    when no equation can be solved exactly in time."""
    for eq in eqs:
        try:
            roots = attempt(SOLVESET_SECONDS, sp.solveset, eq.xreplace(point), u, domain)
        except (NotImplementedError, ValueError, TypeError):
            continue
        if roots is None or not isinstance(roots, sp.FiniteSet) and roots is not sp.S.EmptySet:
            continue
        return [r for r in roots if _is_root(raw, u, r, point)]
    return None


def admissible_point(symbols, rng: random.Random, valid) -> dict:
    """A random rational point where A is an optimizer torch would build (momentum mu**2 - 2
    needs mu >= sqrt 2): a certificate at a point outside A's domain would prove nothing."""
    point = random_point(symbols, rng)
    for scale in (1, 2, 4, 10, 100):
        for _ in range(8):
            if valid(point):
                return point
            point = {s: v * scale if not s.is_integer else v
                     for s, v in random_point(symbols, rng).items()}
    return point


def solve_step(eqs: list, raw: list, unknowns: list, rng: random.Random, candidates: list,
               betas: set, whole: sp.Expr, valid=lambda point: True):
    """See the module docstring. `candidates`: mappings to try first (B's symbol equated with
    A's value in the same position); `betas`: symbols that lie in [0, 1); `whole`: the step's
    difference itself (or a list: theta's and each output state's), against which every
    candidate is verified (identically, not at the sampled points the equations came from);
    `valid(point)`: whether A is admissible there."""
    wholes = list(whole) if isinstance(whole, (list, tuple)) else [whole]
    if not eqs:
        return Solutions([{}])
    present = [u for u in unknowns if any(e.has(u) for e in eqs)]
    if not present:  # the equations do not involve B's symbols: they must hold by themselves
        for e in eqs:
            verdict = coincide(e)
            if verdict.verdict == REFUTED:
                return NoSolution(verdict.point, [], [e.xreplace(verdict.point)],
                                  "an equation that involves no symbol of B is non-zero here")
        return Solutions([{}]) if all(coincide(e).verdict == PROVEN for e in eqs) else None
    others = set().union(*(e.free_symbols for e in eqs)) - set(present)
    point = admissible_point(others, rng, valid)
    at = [sp.expand(e.xreplace(point)) for e in eqs]
    cands = [{u: v for u, v in c.items() if u in present} for c in candidates]
    cands = [c for c in cands if c]
    if all(e.is_polynomial(*present) for e in eqs):
        refuted = _refute_polynomial(at, present, point, betas)
        if refuted and not refuted.why.startswith(DOMAIN):
            return refuted
        # roots outside the domain at this point may be inside it elsewhere (e2*(1 - e2) = eta
        # has a root in [0, 1/2] for eta <= 1/4): the symbolic solutions decide, with
        # admissibility stating where they hold
        found = _solve_polynomial(eqs, present, point)
        if refuted and not found:
            return refuted
        if found is None:
            good = [c for c in cands if _vanishes(eqs, c) == PROVEN]
            return Solutions(good, complete=False) if good else None
        kept, complete = [], True
        for s in found:
            verdict = _vanishes(eqs, s)
            if verdict == PROVEN:
                kept.append(s)
            elif verdict != REFUTED:
                complete = False
        return Solutions(kept, complete)
    if len(present) != 1:
        good = [c for c in cands if _vanishes(wholes, c) == PROVEN]
        return Solutions(good, complete=False) if good else _refute_on_box(raw, present, point,
                                                                           betas, rng, valid)
    u = present[0]
    roots = _roots_at(eqs, raw, u, point, _domain(u, betas))
    if roots is None:
        good = [c for c in cands if _vanishes(wholes, c) == PROVEN]
        return Solutions(good, complete=False) if good else _refute_on_box(raw, present, point,
                                                                           betas, rng, valid)
    if not roots:
        # as above: exp(e2) = eta has its root log(eta) in [0, oo) only for eta >= 1
        small = sp.count_ops(eqs[0]) <= SYMBOLIC_OPS
        symbolic = attempt(SYMBOLIC_SECONDS, lambda: sp.solve(eqs[0], u), fallback=None) \
            if small else None
        good = [{u: r} for r in symbolic or [] if _vanishes(wholes, {u: r}) == PROVEN]
        if good:
            return Solutions(good, complete=False)
        searched = "" if symbolic is not None else (
            "; a mapping valid on part of A's domain only was not searched for (the symbolic "
            "solution is too large)")
        return NoSolution(point, [u], at, f"{DOMAIN} {_domain(u, betas)} at this point "
                          f"(0/0 points excluded){searched}")
    # each root at the point must be a mapping: a candidate that evaluates to it, or a constant
    other = random_point(others, rng)
    other_roots = _roots_at(eqs, raw, u, other, _domain(u, betas)) or []
    kept, complete = [], True
    for r in roots:
        options = [c for c in cands if sp.simplify(c[u].xreplace(point) - r) == 0]
        if r in other_roots:
            options.append({u: r})
        verified = [c for c in options if _vanishes(wholes, c) == PROVEN]
        if verified:
            kept += [c for c in verified if c not in kept]
        else:
            complete = False  # a root that no expression found here accounts for
    if not kept and complete:
        return NoSolution(point, [u], at, "no root at this point is a mapping")
    return Solutions(kept, complete) if kept else None


def _refute_on_box(raw: list, present: list, point: dict, betas: set, rng, valid):
    """A NoSolution from an interval cover of [0, 1]^n (derive.boxes) where every unknown is a
    beta and radicals defeat the solvers; None (undecided) otherwise. A symbol of A that the
    equations do not hold but the differences do (w once w2 -> w cancels it) gets a value too:
    a certificate at any admissible point of A refutes a constant mapping."""
    if not set(present) <= betas:
        return None
    missing = set().union(*(r.free_symbols for r in raw)) - set(present) - set(point)
    if missing:
        point = {**point, **admissible_point(missing, rng, lambda q: valid({**point, **q}))}
    found = boxes.refute(raw, present, point)
    if found is None:
        return None
    exprs, cover, why = found
    return NoSolution(point, present, exprs, why, boxes=cover)


def _solve_polynomial(eqs: list, present: list, point: dict):
    linear = _solve_linear(eqs, present, point)
    if linear is not None:
        return linear
    try:
        found = attempt(10.0, lambda: sp.solve(eqs, present, dict=True), fallback=None)
    except (NotImplementedError, sp.PolynomialError):
        return None
    return None if found is None else [{u: _readable(v) for u, v in f.items()} for f in found]


def _readable(v: sp.Expr) -> sp.Expr:
    """The shortest of v and its forms with radicals out of the denominator, factored over
    the square roots it holds (sp.solve leaves w*K/(K*(sqrt(10) - eta*w)) with K expanded):
    the same value, as a mapping is printed."""
    roots = sorted({a for a in v.atoms(sp.Pow) if a.is_number and not a.exp.is_Integer}, key=str)
    forms = [v]
    for make in (lambda: sp.radsimp(v), lambda: sp.factor(sp.radsimp(v), extension=roots)
                 if roots else None):
        try:
            form = attempt(0.5, make, fallback=None)
        except (NotImplementedError, sp.PolynomialError, TypeError, ValueError):
            form = None
        if form is not None:
            forms.append(form)
    return min(forms, key=sp.count_ops)


def _solve_linear(eqs: list, unknowns: list, point: dict):
    """The mapping from a linear system, without sp.solve (whose simplification of large
    coefficients is slow): pivot unknowns and independent rows are chosen at `point`, then
    solved exactly; unknowns without a pivot stay free. None when the system is not linear."""
    if not all(sp.Poly(e, *unknowns).total_degree() <= 1 for e in eqs):
        return None
    polys = [sp.Poly(e, *unknowns) for e in eqs]  # expanded in the unknowns only
    coeffs = [[p.coeff_monomial(u) for u in unknowns] for p in polys]
    numeric = sp.Matrix([[c.xreplace(point) for c in row] for row in coeffs])
    pivots = numeric.rref(simplify=True)[1]
    if not pivots:
        return [{}]
    solve_for = [unknowns[j] for j in pivots]
    rows, rhs, chosen = [], [], []
    for i, e in enumerate(eqs):
        trial = chosen + [[numeric[i, j] for j in pivots]]
        if sp.Matrix(trial).rank(simplify=True) > len(chosen):
            chosen = trial
            rows.append([coeffs[i][j] for j in pivots])
            rhs.append(-(polys[i].as_expr() - sum(c * u for c, u in zip(coeffs[i], unknowns)))
                       - sum(coeffs[i][j] * unknowns[j] for j in range(len(unknowns))
                             if j not in pivots))
        if len(rows) == len(pivots):
            break
    values = sp.Matrix(rows).LUsolve(sp.Matrix(rhs))
    return [{u: sp.factor(sp.cancel(v)) if sp.count_ops(v) < 400 else v
             for u, v in zip(solve_for, values)}]


def _refute_polynomial(at: list, present: list, point: dict, betas: set):
    """A NoSolution when the equations at the point have no admissible solution, else None. A
    point where an equation is undefined (lr=eta/lam at lam = 0 gives zoo) decides nothing."""
    if any(e.has(sp.zoo, sp.nan, sp.oo, -sp.oo) for e in at):
        return None
    if all(sp.Poly(e, *present).total_degree() <= 1 for e in at):
        why = _inconsistent(at, present)
        if why:
            return NoSolution(point, present, at, why)
    if len(present) == 1:
        u = present[0]
        why = _no_common_root(at, u, _domain(u, betas))
        if why:
            return NoSolution(point, present, at, why)
    return None


def _inconsistent(at: list, unknowns: list) -> str | None:
    """Why a linear system (exact coefficients) has no solution, or None. Rational coefficients
    are decided exactly (rank of the coefficient matrix below that of the augmented one);
    algebraic ones (square roots from Adam) from the least-squares residual at 80 digits, where
    SymPy's exact linear algebra over such fields can take minutes."""
    polys = [sp.Poly(e, *unknowns) for e in at]
    rows = [[p.coeff_monomial(u) for u in unknowns] for p in polys]
    rhs = [-p.coeff_monomial(1) for p in polys]
    if all(c.is_Rational for row in rows for c in row) and all(c.is_Rational for c in rhs):
        a, aug = sp.Matrix(rows), sp.Matrix([r + [b] for r, b in zip(rows, rhs)])
        if a.rank() < aug.rank():
            return (f"inconsistent linear system: the coefficient matrix has rank {a.rank()}, "
                    f"the augmented matrix rank {aug.rank()} (exact rational arithmetic)")
        return None
    with mpmath.workdps(80):
        a = mpmath.matrix([[mpmath.mpf(sp.N(c, 90)) for c in row] for row in rows])
        b = mpmath.matrix([mpmath.mpf(sp.N(c, 90)) for c in rhs])
        tiny = max(mpmath.mnorm(a, 1), mpmath.norm(b), mpmath.mpf(1)) * mpmath.mpf(10) ** -40
        u, sigma, _ = mpmath.svd_r(a)
        basis = [u[:, j] for j in range(len(sigma)) if sigma[j] > tiny]
        residual = b.copy()
        for column in basis:
            residual -= column * (column.T * b)[0]
        norm = mpmath.norm(residual)
        if norm > tiny:
            return (f"inconsistent linear system: least-squares residual "
                    f"{mpmath.nstr(norm, 5)} at 80 significant digits (tolerance 1e-40)")
    return None


def _no_common_root(at: list, u: sp.Symbol, domain: sp.Interval) -> str | None:
    """Why polynomials in one unknown (exact coefficients) share no root in the domain."""
    polys = [p for p in (sp.Poly(e, u) for e in at) if not p.is_zero]
    if not polys:
        return None
    if all(c.is_Rational for p in polys for c in p.all_coeffs()):
        g = polys[0]
        for p in polys[1:]:
            g = sp.gcd(g, p)
        if g.degree() <= 0:
            return "the equations' polynomials in the unknown have no common factor (exact gcd 1)"
        inside = [r for r in sp.Poly(g, u).real_roots() if r in domain]
        if not inside:
            return f"{DOMAIN} {domain}: the common factor {g.as_expr()} has none there"
        return None
    with mpmath.workdps(80):
        numeric = [[mpmath.mpf(sp.N(c, 90)) for c in p.all_coeffs()] for p in polys]
        first = min(numeric, key=len)
        if len(first) == 1:
            return "an equation is a non-zero constant" if abs(first[0]) > 1e-40 else None
        try:
            roots = mpmath.polyroots(first, maxsteps=200, extraprec=200)
        except mpmath.libmp.libhyper.NoConvergence:
            return None
        for root in roots:
            scale = [max(mpmath.mpf(1), max(abs(c) for c in co)) * max(1, abs(root)) ** len(co)
                     for co in numeric]
            if all(abs(mpmath.polyval(co, root)) <= s * mpmath.mpf(10) ** -40
                   for co, s in zip(numeric, scale)):
                return None  # a common root (complex included): let the exact solver say
        return ("no root of the lowest-degree equation solves the others (roots at 80 "
                "significant digits, tolerance 1e-40)")
