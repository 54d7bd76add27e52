"""Checks of one compare() result against the exact simulator (tests/exact_torch.py).

Each check is a plain function returning a list of problems (empty: the result passed), so the
negative controls can run it on hand-made results. Nothing here uses derive's rules: the engine's
answer is replayed on torch's algorithm as the simulator implements it.

  check_proven        the mapping, substituted into B (a 0 switches B's branch, as in torch),
                      leaves B an optimizer torch builds and gives exactly A's theta at every step,
                      at random admissible values of A's symbols (within `valid_when`), random
                      rational gradients and random initial states;
  check_counterexample  the refutation's closed-loop counterexample replays (its loss, any
                      polynomial in theta, differentiated here): theta_A_k != theta_B_k and both
                      equal the reported values;
  check_prefix        the certificate's prefix mapping makes steps 1..k-1 coincide;
  check_no_mapping    at a rational point of A's symbols, no admissible value of B's own symbols
                      makes steps 1..k coincide: exact equations from the simulator at a few
                      random gradient sequences, solved by a Groebner basis, every branch case
                      (B's momentum or weight decay set to 0) separately.
"""
from __future__ import annotations

import itertools
import random
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import sympy as sp

import exact_torch as X
from strategies_specs import (BRANCH_KEYS, H, parse, positions, random_grads, random_point,
                              random_state, substitute, symbols_of)

THETA = sp.Symbol("theta", real=True)


def gradient_of(loss: str):
    """The gradient of the counterexample's loss (the engine's text, e.g. "theta**4/4") as a
    function of theta in any of the simulator's arithmetics: a polynomial loss is evaluated by
    Horner's rule on its exact coefficients, so Fractions stay exact. None for another loss."""
    try:
        expr = parse(loss).xreplace({sp.Symbol("theta"): THETA, H("theta"): THETA})
        coeffs = sp.Poly(sp.diff(expr, THETA), THETA).all_coeffs()
    except (sp.PolynomialError, SyntaxError, TypeError, ValueError):
        return None
    if any(not c.is_Rational for c in coeffs):
        return None

    def grad(theta):
        out = 0
        for c in coeffs:
            out = out * theta + (c if isinstance(theta, sp.Basic) else _like(c, theta))
        return out
    return grad


def _like(c: sp.Rational, value):
    """c in the arithmetic of `value` (Fraction, mpmath or float)."""
    if isinstance(value, Fraction):
        return Fraction(int(c.p), int(c.q))
    return X.MP.num(c) if not isinstance(value, float) else float(c)


REPLAY_STEPS = 6


def view(result) -> dict:
    """The contract's fields, tolerant of an engine that lacks some of them yet."""
    names = ("verdict", "equivalent", "mapping", "valid_when", "first_divergent_step",
             "counterexample", "certificate", "reason")
    out = {n: getattr(result, n, None) for n in names}
    out["valid_when"] = out["valid_when"] or []
    return out


@contextmanager
def time_limit(seconds: float):
    """A wall-clock limit for sympy's Groebner and solve (which cannot be told one)."""
    def expire(signum, frame):
        raise TimeoutError(f"over {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _holds(condition: str, point: dict) -> bool:
    value = parse(condition).xreplace(point)
    if value not in (sp.true, sp.false):
        raise ValueError(f"valid_when {condition!r} is not decided at {point}")
    return value == sp.true


def _mapping(raw) -> dict:
    return {(k if isinstance(k, sp.Symbol) else H(str(k))): parse(v)
            for k, v in (raw or {}).items()}


def admissible_point(A, where, rng, valid_when=(), tries=60):
    """Random rational values of A's symbols at which torch builds A and valid_when holds."""
    for _ in range(tries):
        point = random_point(symbols_of(A), where, rng)
        if X.torch_refusal(substitute(A, point)) is None \
                and all(_holds(c, point) for c in valid_when):
            return point
    return None


def replay(A, B, mapping, start, rng, steps, points=4, sequences=3, valid_when=()) -> list:
    """B under `mapping` must equal A exactly at steps 1..steps (see check_proven)."""
    return replay_mapping(SIMULATOR, A, B, mapping, rng, steps, start, points, sequences,
                          valid_when)


def check_proven(A, B, result, start, rng) -> list:
    r = view(result)
    if r["equivalent"] is not True:
        return [f"verdict proven with equivalent={r['equivalent']!r}"]
    if r["mapping"] is None:
        return ["proven without a mapping"]
    try:
        return replay(A, B, _mapping(r["mapping"]), start, rng, REPLAY_STEPS,
                      valid_when=r["valid_when"])
    except ValueError as err:
        return [str(err)]


def check_counterexample(A, B, result) -> list:
    r = view(result)
    cx = r["counterexample"]
    if not cx:
        return ["refuted without a counterexample"]
    k = int(cx.get("step", -1))
    problems = [] if k == r["first_divergent_step"] else [
        f"counterexample at step {k}, first_divergent_step {r['first_divergent_step']}"]
    grad = gradient_of(str(cx.get("loss")))
    if grad is None:
        return problems + [f"counterexample loss {cx.get('loss')!r} is not a polynomial in theta"]
    point = {H(n): parse(v) for n, v in cx.get("hyperparameters", {}).items()}
    unset = (symbols_of(A) | symbols_of(B)) - set(point)
    if unset:
        return problems + [f"counterexample leaves {sorted(map(str, unset))} unset"]
    a_num, b_num = substitute(A, point), substitute(B, point)
    for name, c in (("A", a_num), ("B", b_num)):
        if X.torch_refusal(c):
            problems.append(f"counterexample's {name} is not an optimizer torch builds: "
                            f"{X.torch_refusal(c)}")
    state0 = cx.get("state_0")
    if state0 is not None:
        state0 = {n: (int(parse(v)) if n.startswith("t_") else parse(v)) for n, v in state0.items()}
    ops = X.ops_for(A, B)
    theta0 = parse(cx["theta_0"])
    ta = X.run(a_num, theta0, grad, steps=k, state0=state0, ops=ops).theta[k]
    tb = X.run(b_num, theta0, grad, steps=k, state0=state0, ops=ops).theta[k]
    if X.same(ta, tb, ops):
        problems.append(f"counterexample does not separate: theta_A_{k} = theta_B_{k} = {ta}")
    for name, mine in (("theta_A", ta), ("theta_B", tb)):
        if name in cx and not X.same(ops.num(parse(cx[name])), mine, ops):
            problems.append(f"counterexample's {name} = {cx[name]}, simulator {mine}")
    return problems


def check_prefix(A, B, result, start, rng) -> list:
    """Steps 1..k-1 coincide under the certificate's prefix mapping (B without own symbols: the
    empty mapping, no certificate needed)."""
    r = view(result)
    k = r["first_divergent_step"]
    own = symbols_of(B) - symbols_of(A)
    cert = r["certificate"] or {}
    if own and "prefix_mapping" not in cert:
        return ["refutation without a certificate's prefix_mapping"]
    return replay(A, B, _mapping(cert.get("prefix_mapping")), start, rng, k - 1)


# -- no mapping through step k ------------------------------------------------------------------

class _Poly:
    """Arithmetic for exact equations: every square root becomes a new symbol s with s**2 = x
    (s >= 0 is left to the verification by simulation), and so does a max of values that are not
    both numbers, so the equations are polynomials over the rationals."""

    def __init__(self):
        self.roots, self.equations = {}, []

    def sqrt(self, x):
        x = sp.cancel(sp.sympify(x))
        if x.is_Rational and sp.sqrt(x).is_Rational:
            return sp.sqrt(x)
        if x not in self.roots:
            s = sp.Symbol(f"_s{len(self.roots)}", real=True)
            self.roots[x] = s
            num, den = sp.fraction(x)
            self.equations.append(sp.expand(s ** 2 * den - num))
        return self.roots[x]

    def max(self, a, b):
        d = sp.sympify(a - b)
        if d.is_number and not d.free_symbols:
            return a if d >= 0 else b
        # z is one of the two, (z - a)(z - b) = 0: solutions of this relaxation include every
        # true one, and z >= a, b is left to the verification by simulation
        z = sp.Symbol(f"_z{len(self.equations)}", real=True)
        self.equations.append(sp.expand(sp.numer(sp.together((z - a) * (z - b)))))
        return z

    def ops(self) -> X.Ops:
        return X.Ops("poly", X._sympy, self.sqrt, self.max, X._sympy_zero)


def _candidates(equations, unknowns, seconds):
    """Solutions of the polynomial system (dicts over unknowns and root symbols) or [] when a
    Groebner basis is {1}; raises when it cannot decide. `solve` on the basis is trusted to list
    every solution of the small systems met here (degree <= steps in B's unknowns); a solution it
    leaves in terms of other variables is a family, which the caller does not decide."""
    variables = sorted(set().union(*(e.free_symbols for e in equations)), key=str)
    if not variables:  # numbers only: consistent exactly when all vanish
        return [] if any(e != 0 for e in equations) else [{}]
    with time_limit(seconds):
        basis = sp.groebner(equations, *variables, order="grevlex")
        if list(basis.exprs) == [1]:
            return []
        return sp.solve(list(basis.exprs), variables, dict=True)


SHAPES = ("falling", "rising", "mixed")


def no_mapping_at(A, B, point, unknowns, k, start, rng, n_sequences=None, seconds=8.0):
    """('none', why) when no admissible values of `unknowns` make steps 1..k of B equal A's at
    this point of A's symbols; ('found', values) with values that do; ('unknown', why)."""
    # Adam's square roots add a symbol each: two sequences keep the Groebner basis affordable
    n_sequences = n_sequences or (2 if X.needs_sqrt(A) or X.needs_sqrt(B) else 3)
    return search_no_mapping(SIMULATOR, A, B, point, unknowns, k, start, rng, n_sequences,
                             battery=24, seconds=seconds)


def check_no_mapping(A, B, result, start, rng) -> tuple:
    """(problems, status): status 'none' confirmed, 'found' contradicted, 'unknown', or 'n/a'
    when B has no symbols of its own (the counterexample is then the whole proof)."""
    r = view(result)
    k = r["first_divergent_step"]
    unknowns = symbols_of(B) - symbols_of(A)
    if not unknowns:
        return [], "n/a"
    cert = r["certificate"] or {}
    problems = []
    if "point" not in cert:
        problems.append("refutation without a certificate's point")
    given = {H(n): parse(v) for n, v in cert.get("point", {}).items()}
    # symbols the certificate leaves out (its equations hold for all of them): any value will do
    point = {**(admissible_point(A, positions(A), rng) or {}), **given}
    if X.torch_refusal(substitute(A, point)):
        problems.append(f"certificate's point {cert.get('point')} is not admissible for A")
    status, detail = no_mapping_at(A, B, point, sorted(unknowns, key=str), k, start, rng)
    if status == "found":
        problems.append(f"at {point}, B's {detail} make steps 1..{k} coincide: not refuted at "
                        f"step {k}")
    return problems, status


def check_result(A, B, result, start, steps, seed=0) -> tuple:
    """(problems, status) for one compare() result; status is the verdict, or 'unresolved'
    when check_no_mapping could not decide."""
    rng = random.Random(seed)
    r = view(result)
    verdict = r["verdict"]
    if verdict == "proven":
        return check_proven(A, B, result, start, rng), verdict
    if verdict == "refuted":
        k = r["first_divergent_step"]
        if r["equivalent"] is not False or not isinstance(k, int) or not 1 <= k <= steps:
            return [f"refuted with equivalent={r['equivalent']!r}, step {k!r}"], verdict
        problems = check_counterexample(A, B, result) + check_prefix(A, B, result, start, rng)
        more, status = check_no_mapping(A, B, result, start, rng)
        return problems + more, "unresolved" if status == "unknown" else verdict
    if verdict in ("undecided", "supported"):
        return ([] if r["reason"] else [f"{verdict} without a reason"]), verdict
    return [f"unknown verdict {verdict!r}"], verdict


# -- shared with tests/catalogue_checks.py: each passes its own simulator -------------------------

@dataclass(frozen=True)
class Simulator:
    """What the replay of a mapping and the search for one need of an exact simulator and of the
    strategies module that draws its inputs. This file makes one for SGD/Adam
    (tests/exact_torch.py), tests/catalogue_checks.py one for the catalogue
    (tests/exact_catalogue.py)."""
    substitute: Callable  # (config, {symbol: value}) -> config
    symbols_of: Callable  # config -> its symbols
    positions: Callable  # config -> {symbol: where it stands}, as random_point reads it
    random_point: Callable  # (symbols, where, rng) -> {symbol: an admissible random value}
    admissible_point: Callable  # (A, rng, valid_when) -> a point where torch builds A, or None
    refusal: Callable  # config -> why torch refuses it, None where torch builds it
    draw_state: Callable  # (A, B, rng, start) -> a mid-run state for both (start="state") or None
    runs: Callable  # (A, B, theta0, grads, steps, state0) -> ([(theta_k, state_k)] of A, of B,
    #                 same(a, b)): exact runs and the exact comparison of their values
    poly_runs: Callable  # (config, theta0, grads, state0, _Poly) -> [(theta_k, state_k or None)]
    #                      as polynomials
    branch: Callable  # (B, where, unknowns) -> the unknowns whose value 0 is a branch of B
    failures: tuple  # what a run raises where torch gives NaN or at a state torch never reaches
    undecidable: tuple = ()  # what building the equations raises where they are not polynomial
    nonnegative: bool = False  # every hyperparameter value is >= 0
    # (A, B) -> state keys that are results in their own right (ASGD's average ax): wherever
    # both runs hold one, it must coincide as theta must
    outputs: Callable = lambda A, B: ()


def _outputs_part(sim: Simulator, A, B, sa, sb, same) -> list:
    """The output keys both states hold whose values differ."""
    return [key for key in sim.outputs(A, B)
            if sa and sb and key in sa and key in sb and not same(sa[key], sb[key])]


def _branch_mapping(mapping: dict, branches, point: dict) -> dict:
    """The certificate's own mapping where the point is one of A's branch values (momentum 0)."""
    for b in branches or ():
        case = {H(k): parse(v) for k, v in b.get("case", {}).items()}
        if case and b.get("verdict") == "proven" \
                and all(point.get(s) == v for s, v in case.items()):
            return _mapping(b.get("mapping"))
    return mapping


def replay_mapping(sim: Simulator, A, B, mapping, rng, steps, start, points, sequences,
                   valid_when=(), branches=(), states=None) -> list:
    """B under `mapping` (or the certificate's branch mapping at A's branch values) equals A
    exactly at steps 1..steps: at `points` admissible points of A's symbols (B's symbols the
    mapping leaves free drawn too, until torch builds B), `sequences` drawn gradient sequences
    each. `states(sa, sb, values, k)`: the problems of the two states at step k, where the
    mapping itself applies."""
    if steps < 1:
        return []
    free_b = sim.symbols_of(B) - sim.symbols_of(A) - set(mapping)
    where_b = sim.positions(B)
    ran = 0
    for _ in range(points):
        point = sim.admissible_point(A, rng, valid_when)
        if point is None:
            return [f"no admissible point of A's symbols satisfies {valid_when}"]
        here = _branch_mapping(mapping, branches, point)
        # B's symbols the mapping leaves free (or expresses others by): some admissible choice
        # must exist; a mapping may confine them, as b -> (e2 - eta)/e2 needs e2 >= eta
        refusal = None
        for _ in range(1 if not free_b else 30):
            b_point = {**point, **sim.random_point(free_b - set(here), where_b, rng)}
            b_num = sim.substitute(sim.substitute(B, here), b_point)
            refusal = sim.refusal(b_num)
            if not refusal:
                break
        if refusal:
            return [f"at {point}, B under the mapping {here} is not an optimizer torch builds: "
                    f"{refusal}"]
        a_num = sim.substitute(A, point)
        for _ in range(sequences):
            theta0, grads = random_grads(1, rng)[0], random_grads(steps, rng)
            state0 = sim.draw_state(a_num, b_num, rng, start)
            inputs = f"theta_0 {theta0}, g {grads}, state_0 {state0}"
            try:
                ra, rb, same = sim.runs(a_num, b_num, theta0, grads, None, state0)
            except sim.failures:  # eps = 0 with v = 0: torch's NaN, not a comparison
                continue
            ran += 1
            for k in range(1, steps + 1):
                (ta, sa), (tb, sb) = ra[k], rb[k]
                if not same(ta, tb):
                    return [f"replay differs at step {k}: point {point}, B values {b_point}, "
                            f"{inputs}: theta_A {ta}, theta_B {tb}"]
                parted = _outputs_part(sim, a_num, b_num, sa, sb, same)
                if parted:
                    return [f"replay differs at step {k} in the output state {parted[0]!r}: "
                            f"point {point}, B values {b_point}, {inputs}: A's "
                            f"{sa[parted[0]]}, B's {sb[parted[0]]}"]
                bad = states(sa, sb, {**b_point, **here}, k) \
                    if states is not None and here is mapping else []
                if bad:
                    return [f"{p} (point {point}, B values {b_point}, {inputs})" for p in bad]
    return [] if ran else ["every replay divided by zero: nothing compared"]


def _sequences(sim: Simulator, n, k, start, rng, A, B):
    """(theta_0, g_1..g_k, state_0) triples, their gradient shapes in turn: a falling sequence
    reaches AMSGrad's switch (v_2 < v_1), a rising one the other side."""
    return [(random_grads(1, rng)[0], random_grads(k, rng, SHAPES[i % 3]),
             sim.draw_state(A, B, rng, start)) for i in range(n)]


def _verify(sim: Simulator, A_num, B_case, values, battery, k) -> bool:
    """`values` of B's unknowns are admissible and make steps 1..k of B equal A's on every run
    of the battery."""
    if any(not v.is_real or v.free_symbols for v in values.values()):
        return False
    if sim.nonnegative and any(v < 0 for v in values.values()):
        return False
    b_num = sim.substitute(B_case, values)
    if sim.refusal(b_num):
        return False
    for theta0, grads, state0 in battery:
        try:
            ra, rb, same = sim.runs(A_num, b_num, theta0, grads, k, state0)
        except sim.failures + (TypeError,):
            return False
        if not all(same(ra[j][0], rb[j][0])
                   and not _outputs_part(sim, A_num, b_num, ra[j][1], rb[j][1], same)
                   for j in range(1, k + 1)):
            return False
    return True


def search_no_mapping(sim: Simulator, A, B, point, unknowns, k, start, rng, n_sequences,
                      battery, seconds) -> tuple:
    """('none', why) when no admissible values of `unknowns` make steps 1..k of B equal A's at
    this point of A's symbols, each of B's branch values (an unknown at momentum or
    weight_decay set to 0) a case of its own; ('found', values) with values that do (checked
    on `battery` more exact runs, of every shape: the equations see only where their
    `n_sequences` sequences go); ('unknown', why) when the equations cannot be decided."""
    where = sim.positions(B)
    A_num, B_at = sim.substitute(A, point), sim.substitute(B, point)
    branch = sim.branch(B_at, where, unknowns)
    sequences = _sequences(sim, n_sequences, k, start, rng, A_num, B_at)
    battery = sequences + _sequences(sim, battery, k, start, rng, A_num, B_at)
    why = []
    for r in range(len(branch) + 1):
        for zeros in itertools.combinations(branch, r):
            fixed = dict.fromkeys(zeros, sp.Integer(0))
            B_case = sim.substitute(B_at, fixed)
            rest = sorted(set(unknowns) - set(zeros), key=str)
            poly = _Poly()
            equations = []
            try:
                for theta0, grads, state0 in sequences:
                    ra = sim.poly_runs(A_num, theta0, grads, state0, poly)
                    rb = sim.poly_runs(B_case, theta0, grads, state0, poly)
                    last_a, last_b = ra[-1][1] or {}, rb[-1][1] or {}
                    outs = [key for key in sim.outputs(A_num, B_case)
                            if key in last_a and key in last_b]
                    for j in range(1, k + 1):
                        for diff in [rb[j][0] - ra[j][0],
                                     *(rb[j][1][key] - ra[j][1][key] for key in outs)]:
                            num = sp.expand(sp.numer(sp.together(diff)))
                            if num != 0:
                                equations.append(num)
                equations += poly.equations
                found = _candidates(equations, rest, seconds) if equations else [{}]
            except (NotImplementedError, TimeoutError, sp.PolynomialError) + sim.undecidable \
                    as err:
                return "unknown", f"case {fixed}: {type(err).__name__}: {err}"
            if not found:
                why.append(f"case {fixed}: Groebner basis is [1]")
                continue
            for sol in found:
                free = [u for u in rest if u not in sol]
                if any(sol[u].free_symbols - set(free) for u in rest if u in sol):
                    return "unknown", f"case {fixed}: a solution in terms of other symbols {sol}"
                for _ in range(20 if free else 1):
                    chosen = sim.random_point(free, where, rng)
                    values = {u: sp.nsimplify(sol[u]) if sol[u].is_Float
                              else sol[u].xreplace(chosen) for u in rest if u in sol}
                    values.update(chosen)
                    values.update(fixed)
                    if _verify(sim, A_num, B_case, values, battery, k):
                        return "found", values
                if free:
                    return "unknown", f"case {fixed}: a family of solutions {sol}"
            why.append(f"case {fixed}: its solutions {found} are not admissible or fail the "
                       "exact replay")
    return "none", "; ".join(why)


def _exact_runs(A, B, theta0, grads, steps, state0):
    ops = X.ops_for(A, B)
    ra = X.run(A, theta0, grads, steps=steps, state0=state0, ops=ops).theta
    rb = X.run(B, theta0, grads, steps=steps, state0=state0, ops=ops).theta
    return [(t, None) for t in ra], [(t, None) for t in rb], \
        lambda a, b: X.same(a, b, ops)


SIMULATOR = Simulator(
    substitute=substitute, symbols_of=symbols_of, positions=positions, random_point=random_point,
    admissible_point=lambda A, rng, valid_when: admissible_point(A, positions(A), rng,
                                                                 valid_when),
    refusal=X.torch_refusal,
    draw_state=lambda A, B, rng, start: random_state(rng) if start == "state" else None,
    runs=_exact_runs,
    poly_runs=lambda c, theta0, grads, state0, poly: [(t, None) for t in X.run(
        c, theta0, grads, state0=state0, ops=poly.ops()).theta],
    branch=lambda B, where, unknowns: [u for u in unknowns
                                       if where.get(u, set()) & set(BRANCH_KEYS)],
    failures=(ZeroDivisionError,))
