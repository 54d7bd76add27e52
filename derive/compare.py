"""The equivalence engine: do two update rules trace the same trajectory for every loss?

compare(A, B) looks for a constant mapping of the symbols that appear only in B (as expressions of
A's symbols) under which theta^B_k = theta^A_k for every k and every gradient function.

Why open loop suffices: if theta^A_j = theta^B_j for j < k, both runs evaluate the gradient at the
same points, so g_1 ... g_k are the same numbers in both; and any sequence of gradient values is
realised by some loss along a trajectory of distinct points. So the trajectories coincide for
every f exactly when the open-loop iterates theta_k(theta_0, g_1, ..., g_k) coincide for every k
as functions of independent g_i. Every stage is element-wise, so one scalar coordinate suffices.

"Every k" is proven by induction, not by checking a few steps:
  base  after step 1 (torch's start) or at step 0 (a general state), theta^A = theta^B and the
        relevant state of B equals phi(state of A);
  step  on a generic joint state (theta_{t-1}, g_t, state_{t-1}) satisfying that relation, one
        step of each rule gives equal theta_t and preserves the relation.
phi is the identity on shared state names, or a constant rescaling solved from step 1 (a buffer
kept in different units). "Relevant" state is what theta can depend on (a fixed point over the
generic step): with momentum 0 the buffer is irrelevant.
When the proof fails, the engine unrolls further: the first step at which no mapping makes steps
1..k coincide is `first_divergent_step`, proven by an inconsistent system of exact equations.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from . import symbols as Y
from .budget import OutOfTime, attempt, within
from .errors import UserError
from .identity import PROVEN, REFUTED, SUPPORTED, nonzero_number, random_point, simplest, zero_test
from .rules import Rule, build_rule
from .spec import Spec, as_spec
from .unroll import step_hyper

DEFAULT_STEPS = 4
# time budgets (seconds): past them the engine answers 'undecided' or leaves a part out
BUDGET, WITNESS_SECONDS, CONDITION_SECONDS, CANDIDATE_SECONDS = 30.0, 10.0, 15.0, 5.0
SOLVESET_SECONDS = 2.0
ELEMENTWISE = ("Every stage acts on one coordinate at a time, so one scalar coordinate suffices: "
               "a vector parameter is independent copies of it.")
NOT_ELEMENTWISE = ("A stage mixes coordinates: the scalar model does not cover vector parameters.")
NOTES = (
    "Open loop suffices: trajectories that agree up to step k-1 see the same gradients at step k, "
    "and any gradient sequence is realised by some loss along a trajectory of distinct points.",
)
LOSSES = (  # closed-loop losses tried for a counterexample: (text, gradient)
    ("theta**2/2", lambda th: th),
    ("(theta - 1)**2/2", lambda th: th - 1),
    ("theta**4/4", lambda th: th**3),
    # a minimum beyond theta_0, so that g and theta have opposite signs: where a step sees
    # only sign(g + lam*theta) (Adam's first step with eps = 0), rescaling g can flip it
    ("(theta - 3)**2/2", lambda th: th - 3),
)


@dataclass
class Induction:
    verdict: str  # proven | supported | refuted
    phi: dict  # B state name -> expression in A's generic state symbols
    relevant: tuple  # B's state names that theta depends on
    theta_a: sp.Expr  # one generic step of A and of B (B's state written through phi)
    theta_b: sp.Expr
    checks: list  # (what, difference, verdict)


@dataclass
class StepRecord:
    k: int
    difference: sp.Expr  # theta^B_k - theta^A_k, open loop, before any mapping
    solutions: list  # mappings that make steps 1..k coincide ([] when none exists)


@dataclass
class Comparison:
    a: Spec
    b: Spec
    equivalent: bool | None  # True proven, False refuted, None undecided or only supported
    verdict: str  # proven | refuted | supported | undecided
    mapping: dict | None = None
    first_divergent_step: int | None = None
    difference: sp.Expr | None = None
    conditions: list = field(default_factory=list)
    counterexample: dict | None = None
    witness: tuple | None = None  # exact (theta_A_k, theta_B_k) of the counterexample
    steps_checked: int = 0
    induction: Induction | None = None
    schedule: tuple = ()
    start: str = "start"
    notes: list = field(default_factory=lambda: list(NOTES))
    trail: list = field(default_factory=list)  # StepRecord per unrolled step, for explanations

    def to_json(self) -> dict:
        def strs(d):
            return {str(k): str(v) for k, v in sorted(d.items(), key=lambda kv: str(kv[0]))}

        return {
            "equivalent": self.equivalent,
            "mapping": None if self.mapping is None else strs(self.mapping),
            "first_divergent_step": self.first_divergent_step,
            "difference": None if self.difference is None else str(self.difference),
            "conditions": [strs(c) for c in self.conditions],
            "counterexample": self.counterexample,
        }


# -- pieces of the engine -----------------------------------------------------------------------

def _initial_free(rule_a: Rule, rule_b: Rule, start: str) -> set:
    if start != "state":
        return set()
    return {Y.state(n, 0) for n in set(rule_a.state_names) | set(rule_b.state_names)}


def _unknowns_at(base_unknowns, schedule, k) -> list:
    """B-only symbols in force up to step k: scheduled ones have one copy per step."""
    out = []
    for u in base_unknowns:
        out += [Y.stepped(u, i) for i in range(1, k + 1)] if u in schedule else [u]
    return out


def _equations(d: sp.Expr, free: list, unknowns: list, rng: random.Random) -> list:
    """Expressions in the hyperparameters and unknowns that must all vanish for d == 0 in `free`:
    coefficients when d is a rational function of `free`, else values at exact random points."""
    num = sp.numer(sp.together(d))
    if num == 0:
        return []
    if num.is_polynomial(*free):
        return [c for c in sp.Poly(sp.expand(num), *free).coeffs() if c != 0] if free else [num]
    eqs = []
    for _ in range(len(unknowns) + 3):
        point = random_point(free, rng)
        value = sp.numer(sp.together(d.xreplace(point)))
        if value != 0:
            eqs.append(value)
    return eqs


def _solve(eqs: list, unknowns: list, rng: random.Random):
    """Candidate mappings (list of dicts), [] when provably none, None when undecidable here."""
    if not eqs:
        return [{}]
    # only a refutation matters here (whether a mapping can exist); proofs come from induction
    present = [u for u in unknowns if any(e.has(u) for e in eqs)]
    if not present:  # the equations do not involve B's symbols: they must hold by themselves
        return [] if any(zero_test(e, prove=False).verdict == REFUTED for e in eqs) else [{}]
    others = set().union(*(e.free_symbols for e in eqs)) - set(present)
    point = random_point(others, rng)
    if not all(e.is_polynomial(*present) for e in eqs):
        # |g + lam*theta| or sqrt(v) around B's symbol: decidable here only for one unknown
        if len(present) != 1:
            return None
        roots = _surviving_roots(eqs, present[0], point)
        if not roots:
            return roots
        # a root that is the same number at another point of A's symbols is a constant mapping
        other = _surviving_roots(eqs, present[0], random_point(others, rng)) or []
        constant = [r for r in roots if r in other]
        return [{present[0]: r} for r in constant] or None
    # Cheap refutation first: at one rational point of A's hyperparameters a mapping would be a
    # number; if no number solves the equations there, no mapping exists.
    if others and _inconsistent_at(eqs, present, point):
        return []
    if others and len(present) == 1 and _no_common_root_at(eqs, present[0], point):
        return []
    linear = _solve_linear(eqs, present, point)
    if linear is not None:
        sols = linear
    else:
        try:
            sols = sp.solve(eqs, present, dict=True)
        except (NotImplementedError, sp.PolynomialError):
            return None
    # keep only solutions that really make every equation vanish (solve works generically)
    return [s for s in sols if all(zero_test(sp.together(e.xreplace(s)), prove=False) for e in eqs)]


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


def _surviving_roots(eqs: list, u: sp.Symbol, point: dict):
    """The values u >= 0 that solve every equation at a rational point of the other symbols:
    the real roots of the first solvable equation, found exactly (solveset over [0, oo), which
    splits |.| and squares roots), kept unless another equation is certainly non-zero there.
    None when that cannot be established (solveset gives up)."""
    for eq in eqs:
        try:
            roots = attempt(SOLVESET_SECONDS, sp.solveset, eq.xreplace(point), u,
                            sp.Interval(0, sp.oo))
        except (NotImplementedError, ValueError, TypeError):
            continue
        if roots is None:  # out of time: this equation is too hard, try the next
            continue
        if roots is sp.S.EmptySet:
            return []
        if not isinstance(roots, sp.FiniteSet):
            continue
        return [r for r in roots if not any(nonzero_number(other.xreplace(point).xreplace({u: r}))
                                            for other in eqs)]
    return None


def _extend(partials: list, d: sp.Expr, free: list, unknowns: list, rng):
    """Mappings that make steps 1..k coincide, from those for steps 1..k-1 (`partials`, each
    possibly leaving some unknowns free) and step k's difference d. Each partial mapping is
    substituted first, so only what step k adds is solved for. None: undecidable here."""
    out = []
    for sigma in partials:
        d_k = d.xreplace(sigma)
        rest = [u for u in unknowns if u not in sigma and d_k.has(u)]
        if not rest:  # nothing left to choose: a random exact point decides
            if zero_test(d_k, prove=False).verdict != REFUTED:
                out.append(sigma)
            continue
        found = _solve(_equations(d_k, free, rest, rng), rest, rng)
        if found is None:
            return None
        for sol in found:
            out.append({**{u: v.xreplace(sol) for u, v in sigma.items()}, **sol})
    return out


def _admissible(B: Spec, sigma: dict) -> bool:
    """A mapping counts only if B is still an optimizer under it: momentum -> 0 would make
    sgd(nesterov=true) match plain SGD, but torch refuses nesterov without momentum."""
    try:
        B.substitute(sigma)
    except UserError:
        return False
    return True


def _undefined_at(eqs: list, point: dict) -> bool:
    """A point where an equation is undefined (lr=eta/lam with a solved lam = 0 gives zoo)
    decides nothing: no mpf can be made of zoo (issue 13)."""
    return any(e.xreplace(point).has(sp.zoo, sp.nan, sp.oo, -sp.oo) for e in eqs)


def _inconsistent_at(eqs: list, unknowns: list, point: dict) -> bool:
    """Whether equations linear in `unknowns`, at a rational point of the other symbols, have no
    solution. Coefficients there are algebraic numbers (square roots from Adam); SymPy's exact
    linear algebra over such fields can take minutes, so consistency is decided from the
    least-squares residual at 80 significant digits, far above any rounding (the exact
    counterexample is produced separately). Non-linear systems are left to sp.solve."""
    if not all(sp.Poly(e, *unknowns).total_degree() <= 1 for e in eqs):
        return False
    if _undefined_at(eqs, point):
        return False
    with mpmath.workdps(80):
        rows, rhs = [], []
        for e in eqs:
            poly = sp.Poly(e.xreplace(point), *unknowns)  # expanded: coefficients are exact
            rows.append([mpmath.mpf(sp.N(poly.coeff_monomial(u), 90)) for u in unknowns])
            rhs.append(-mpmath.mpf(sp.N(poly.coeff_monomial(1), 90)))
        a, b = mpmath.matrix(rows), mpmath.matrix(rhs)
        tiny = max(mpmath.mnorm(a, 1), mpmath.norm(b), mpmath.mpf(1)) * mpmath.mpf(10) ** -40
        # residual of b after projecting onto the column space of a (rank read off the SVD)
        u, sigma, _ = mpmath.svd_r(a)
        basis = [u[:, j] for j in range(len(sigma)) if sigma[j] > tiny]
        residual = b.copy()
        for column in basis:
            residual -= column * (column.T * b)[0]
        return mpmath.norm(residual) > tiny


def _no_common_root_at(eqs: list, u: sp.Symbol, point: dict) -> bool:
    """For equations polynomial in one unknown (of any degree: momentum**2 from Nesterov), at a
    rational point of the other symbols: True when no root of the first equation (all of them,
    complex included, from its coefficients at 80 digits) makes every other equation vanish.
    Coefficients there are algebraic numbers, where SymPy's exact Groebner bases can take
    minutes; the exact witness comes separately, from the counterexample."""
    if _undefined_at(eqs, point):
        return False
    polys = [sp.Poly(e.xreplace(point), u) for e in eqs]
    polys = [p for p in polys if not p.is_zero]
    if not polys:
        return False
    with mpmath.workdps(80):
        numeric = [[mpmath.mpf(sp.N(c, 90)) for c in p.all_coeffs()] for p in polys]
        first = min(numeric, key=len)
        if len(first) == 1:  # a non-zero constant: inconsistent
            return abs(first[0]) > mpmath.mpf(10) ** -40
        try:
            roots = mpmath.polyroots(first, maxsteps=200, extraprec=200)
        except mpmath.libmp.libhyper.NoConvergence:
            return False
        for root in roots:
            scale = [max(mpmath.mpf(1), max(abs(c) for c in co)) * max(1, abs(root)) ** len(co)
                     for co in numeric]
            if all(abs(mpmath.polyval(co, root)) <= s * mpmath.mpf(10) ** -40
                   for co, s in zip(numeric, scale)):
                return False  # a common root: a mapping may exist, let the exact solver say
        return True


def _generic_mapping(sol: dict, schedule) -> dict:
    """A mapping solved at step 1 written for the generic step t: for a scheduled unknown,
    k_1 -> eta_1*lam becomes k_t -> eta_t*lam. An unscheduled unknown is one constant, so its
    value keeps eta_1 and the induction then fails unless eta is constant, as it must."""
    swap = {Y.stepped(s, 1): Y.stepped(s, "t") for s in schedule}
    out = {}
    for u, value in sol.items():
        generic = u.xreplace(swap)
        out[generic] = value.xreplace(swap) if generic != u else value
    return out


def _relevant(rule: Rule, theta_new: sp.Expr, state_new: dict, generic: dict) -> tuple:
    """State names theta can depend on: those in theta_t, closed under the state updates."""
    relevant, frontier = set(), {n for n, s in generic.items() if theta_new.has(s)}
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
    sa, _ = rule_a.step(rule_a.initial_state(start), th, g, ha1)
    sb, _ = rule_b.step(rule_b.initial_state(start), th, bend(g), hb1)
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


def _induction(rule_a, rule_b, ha, hb, sigma, schedule, start, bend) -> Induction:
    th, g = Y.theta("t-1"), Y.grad("t")
    ha_t = step_hyper(ha, schedule, "t")
    hb_t = {k: v.xreplace(sigma) for k, v in step_hyper(hb, schedule, "t").items()}
    sigma_1 = {u.xreplace({Y.stepped(s, "t"): Y.stepped(s, 1) for s in schedule}):
               v.xreplace({Y.stepped(s, "t"): Y.stepped(s, 1) for s in schedule})
               for u, v in sigma.items()}
    ha_1 = step_hyper(ha, schedule, 1)
    hb_1 = {k: v.xreplace(sigma_1) for k, v in step_hyper(hb, schedule, 1).items()}
    scale = _scale_factors(rule_a, rule_b, ha_1, hb_1, start, schedule, bend)

    generic_a = {n: Y.state(n, "t-1") for n in rule_a.state_names}
    generic_b = {n: Y.state(n, "t-1") for n in rule_b.state_names}
    # relevance is a property of B's own step, before phi is imposed
    own_b_state, own_b_theta = rule_b.step(generic_b, th, bend(g), hb_t)
    relevant = _relevant(rule_b, own_b_theta, own_b_state, generic_b)
    phi = {n: scale[n] * generic_a[n] for n in relevant if n in scale}
    checks = []
    missing = [n for n in relevant if n not in phi]
    if missing:  # B's theta depends on state A does not have: no correspondence to prove
        return Induction(REFUTED, phi, relevant, sp.nan, sp.nan,
                         [(f"state {n} of B has no counterpart in A", sp.nan, REFUTED)
                          for n in missing])

    new_a, theta_a = rule_a.step(generic_a, th, g, ha_t)
    new_b, theta_b = rule_b.step({**generic_b, **phi}, th, bend(g), hb_t)
    def check(what, diff):
        checks.append((what, diff, zero_test(diff).verdict))

    check("theta_t", theta_b - theta_a)
    for n in relevant:
        check(f"{n}_t", new_b[n] - phi[n].xreplace({generic_a[n]: new_a[n]}))

    # base case: the relation holds where the induction starts
    if start == "state":
        for n in relevant:
            ok = scale[n] == 1
            checks.append((f"{n}_0 (base)", sp.Integer(0) if ok else sp.nan,
                           PROVEN if ok else REFUTED))
    else:
        sa, ta = rule_a.step(rule_a.initial_state(start), Y.theta(0), Y.grad(1), ha_1)
        sb, tb = rule_b.step(rule_b.initial_state(start), Y.theta(0), bend(Y.grad(1)), hb_1)
        check("theta_1 (base)", tb - ta)
        for n in relevant:
            check(f"{n}_1 (base)", sb[n] - scale[n] * sa[n])

    verdicts = {v for _, _, v in checks}
    verdict = REFUTED if REFUTED in verdicts else SUPPORTED if SUPPORTED in verdicts else PROVEN
    return Induction(verdict, phi, relevant, theta_a, theta_b, checks)


def _run_closed(rule, hyper_at, state, theta0, gradient, k):
    theta = theta0
    for i in range(1, k + 1):
        state, theta = rule.step(state, theta, gradient(theta), hyper_at(i))
    return theta


def _counterexample(A, B, ra, rb, ha, hb, sigma, base_unknowns, schedule, k, start, bend):
    """Exact rational hyperparameters, a concrete loss and the two differing theta_k."""
    rng = random.Random(1)
    a_symbols = sorted(A.symbols(), key=lambda s: s.name)
    typical_trials = 2 * len(LOSSES)  # typical values (readable), each loss from two theta_0
    for trial in range(typical_trials + 12):
        typical = trial < typical_trials
        point = {}
        for s in a_symbols:
            copies = [Y.stepped(s, i) for i in range(1, k + 1)] if s in schedule else [s]
            for i, c in enumerate(copies):
                # a schedule that varies: the i-th step's copy gets the typical value / (i + 1)
                point[c] = _typical_value(A, s) / (i + 1) if typical else \
                    random_point([c], rng)[c]
        b_values = {}
        for u in base_unknowns:
            copies = [Y.stepped(u, i) for i in range(1, k + 1)] if u in schedule else [u]
            for c in copies:
                value = sigma.get(c)
                if value is None:
                    value = _same_key_value(A, B, u, point) if typical else \
                        random_point([c], rng)[c]
                b_values[c] = value.xreplace(point)
        full = {**point, **b_values}
        if not (_admissible(A, point) and _admissible(B, full)):
            continue  # e.g. nesterov with momentum 0: not an optimizer torch would build
        for c in bend(Y.grad(1)).free_symbols - {Y.grad(1)}:  # a transform's own symbol
            # both sides of 1: a scale below 1 can flip sign(c*g + lam*theta), one above not
            full[c] = (sp.Integer(2) if trial % 2 == 0 else sp.Rational(1, 10)) if typical \
                else random_point([c], rng)[c]
        loss, gradient = LOSSES[trial % len(LOSSES)]
        theta0 = (sp.Integer(1), sp.Integer(2), sp.Rational(-1, 2))[(trial // len(LOSSES)) % 3]
        state0 = {}
        if start == "state":
            state0 = random_point(_initial_free(ra, rb, start), rng)
        ia = {n: (v.xreplace(state0) if v is not None else None)
              for n, v in ra.initial_state(start).items()}
        ib = {n: (v.xreplace(state0) if v is not None else None)
              for n, v in rb.initial_state(start).items()}

        def at(h):
            return lambda i: {key: v.xreplace(full) for key, v in
                              step_hyper(h, schedule, i).items()}

        try:
            theta_a = _run_closed(ra, at(ha), ia, theta0, gradient, k)
            # the transform's own symbol (c in g -> c*g) takes its value from `full` too
            theta_b = _run_closed(rb, at(hb), ib, theta0,
                                  lambda th: bend(gradient(th)).xreplace(full), k)
        except (ZeroDivisionError, ValueError):
            continue
        if nonzero_number(theta_b - theta_a):
            shown = {str(s): str(v) for s, v in sorted(full.items(), key=lambda kv: kv[0].name)}
            out = {"loss": loss, "step": k, "theta_0": str(theta0), "hyperparameters": shown,
                   "theta_A": str(sp.radsimp(theta_a)), "theta_B": str(sp.radsimp(theta_b)),
                   "theta_A_float": float(sp.N(theta_a, 30)),
                   "theta_B_float": float(sp.N(theta_b, 30))}
            if state0:
                out["state_0"] = {str(s): str(v) for s, v in state0.items()}
            return out, (theta_a, theta_b)
    return None


TYPICAL = {"lr": sp.Rational(1, 10), "momentum": sp.Rational(9, 10), "dampening": sp.Rational(1, 2),
           "weight_decay": sp.Rational(1, 10), "beta1": sp.Rational(9, 10),
           "beta2": sp.Rational(999, 1000), "eps": sp.Rational(1, 10**8)}


def _typical_value(spec: Spec, s: sp.Symbol) -> sp.Rational:
    """Values a reader recognises for a counterexample: torch's betas and eps, lr 1/10."""
    for key, value in spec.hyper().items():
        if value == s and key in TYPICAL:
            return TYPICAL[key]
    return sp.Rational(1, 10)


def _same_key_value(A: Spec, B: Spec, u: sp.Symbol, point: dict) -> sp.Expr:
    """A natural value for a B-only symbol: A's value of the same key (lam2 gets lam's value)."""
    hb, ha = B.hyper(), A.hyper()
    for key, value in hb.items():
        if value == u and key in ha and ha[key] != 0:  # 0: a feature A does not use
            return ha[key].xreplace(point)
    return _typical_value(B, u)


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


def _conditions(A, B, steps, start, schedule, difference, free, base_unknowns, k,
                transform) -> list:
    """Restrictions of A's hyperparameters under which the two coincide, each verified by a full
    comparison (so only proven conditions are reported). Candidates: a symbol set to 0 (torch
    switches that feature off, which is why every candidate is re-run from the substituted spec),
    the roots of linear factors of the divergence equations, a scheduled symbol held constant."""
    a_syms = [s for s in Y.by_name(A.symbols()) if s not in schedule]
    unknowns = _unknowns_at(base_unknowns, schedule, k)
    candidates = [{s: sp.Integer(0)} for s in a_syms]
    num = sp.numer(sp.together(difference))
    if num.is_polynomial(*free):
        coefficients = sp.Poly(sp.expand(num), *free).coeffs() if free else [num]
        candidates += _roots(coefficients, a_syms, unknowns)
    found = []
    for cand in candidates:
        if cand in found:
            continue
        try:
            sub_a, sub_b = A.substitute(cand), B.substitute(cand)
        except ValueError:
            continue  # the condition leaves torch's valid range (a negative lr, a beta of 1)
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


# -- the engine ---------------------------------------------------------------------------------

def compare(a, b, steps: int = DEFAULT_STEPS, start: str = "start", schedule=(),
            want_conditions: bool = True, want_witness: bool = True,
            transform=None, seconds: float = BUDGET) -> Comparison:
    """Compare specs A and B. `transform`, if given, maps the gradient B receives (g -> c*g to
    ask whether a rule is invariant under gradient rescaling); c is then a universal symbol.
    Past `seconds` the answer is 'undecided', with a note saying so."""
    A, B = as_spec(a), as_spec(b)
    result = Comparison(A, B, None, "undecided", schedule=tuple(Y.by_name(schedule)), start=start)
    try:
        with within(seconds):
            return _compare(A, B, result, steps, start, want_conditions, want_witness, transform)
    except OutOfTime:
        result.verdict, result.equivalent = "undecided", None
        result.notes.append(f"time budget of {seconds:g} s exhausted at step "
                            f"{result.steps_checked}; the engine does not guess")
        return result


def _compare(A, B, result, steps, start, want_conditions, want_witness, transform):
    ra, rb = build_rule(A), build_rule(B)
    # the scalar model relies on this: say so, computed from the stages
    result.notes.insert(0, ELEMENTWISE if ra.elementwise and rb.elementwise else NOT_ELEMENTWISE)
    ha, hb = A.hyper(), B.hyper()
    schedule = result.schedule
    base_unknowns = Y.by_name(B.symbols() - A.symbols())
    rng = random.Random(0)
    bend = transform or (lambda g: g)

    state_a, state_b = ra.initial_state(start), rb.initial_state(start)
    theta_a = theta_b = Y.theta(0)
    sols, sigma_prev, free = [{}], {}, [Y.theta(0), *Y.by_name(_initial_free(ra, rb, start))]
    for k in range(1, steps + 1):
        g = Y.grad(k)
        free.append(g)
        state_a, theta_a = ra.step(state_a, theta_a, g, step_hyper(ha, schedule, k))
        state_b, theta_b = rb.step(state_b, theta_b, bend(g), step_hyper(hb, schedule, k))
        d = theta_b - theta_a
        result.steps_checked = k
        sols = _extend(sols, d, free, _unknowns_at(base_unknowns, schedule, k), rng)
        if sols:
            sols = [s for s in sols if _admissible(B, s)]
        result.trail.append(StepRecord(k, d, sols or []))
        if sols is None:
            result.notes.append(f"step {k}: B's own symbols appear inside |.|, sqrt or max in "
                                "the equations for a mapping; the engine solves such systems "
                                "exactly only for one symbol at a time, so it does not decide "
                                "this pair (it does not guess)")
            return result
        if not sols:
            result.verdict, result.equivalent = REFUTED, False
            result.first_divergent_step = k
            # only the reported comparison pays for a readable difference and a witness
            difference = d.xreplace(sigma_prev)
            result.difference = simplest(difference) if want_witness else difference
            if want_witness:
                found = attempt(WITNESS_SECONDS, _counterexample, A, B, ra, rb, ha, hb,
                                sigma_prev, base_unknowns, schedule, k, start, bend)
                if found:
                    result.counterexample, result.witness = found
            if want_conditions:
                result.conditions = attempt(CONDITION_SECONDS, _conditions, A, B, steps, start,
                                            schedule, difference, free, base_unknowns, k,
                                            transform, fallback=[])
            return result
        sigma_prev = sols[0]
        for sol in sols[:3]:
            generic = _generic_mapping(sol, schedule)
            proof = _induction(ra, rb, ha, hb, generic, schedule, start, bend)
            if proof.verdict == PROVEN:
                result.verdict, result.equivalent = PROVEN, True
                result.mapping, result.induction = generic, proof
                return result
            if proof.verdict == SUPPORTED and result.induction is None:
                result.verdict, result.mapping, result.induction = SUPPORTED, generic, proof
    return result
