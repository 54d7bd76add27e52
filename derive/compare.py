"""The equivalence engine: do two update rules trace the same trajectory for every loss?

compare(A, B) looks for a constant mapping of the symbols that appear only in B (as expressions of
A's symbols) under which theta^B_k = theta^A_k for every k and every gradient function, and under
which B is an optimizer torch would build. A state the catalogue declares an output (ASGD's
average ax, the iterate ASGD exists to produce) is a result as theta is: where both hold it, it
must coincide at every step too, although nothing feeds it back into theta, and a refutation
says which quantity parts (certificate["quantity"]: "theta" or the state's name).

Why open loop suffices: if theta^A_j = theta^B_j for j < k, both runs evaluate the gradient at the
same points, so g_1 ... g_k are the same numbers in both; and any sequence of gradient values is
realised by some loss along a trajectory of distinct points. So the trajectories coincide for
every f exactly when the open-loop iterates theta_k(theta_0, g_1, ..., g_k) coincide for every k
as functions of independent g_i. Every stage is element-wise, so one scalar coordinate suffices.

What makes a verdict a proof:
  - branches are cases: a value of B's symbols at which torch takes another branch (momentum 0:
    no buffer at all) is a case of its own, with B rebuilt for it; a mapping never switches a
    branch of the rule it was solved on;
  - every mapping is verified by substituting it back symbolically (derive.solving), and counts
    only where B under it is admissible (derive.domains), with the conditions said (valid_when);
  - "steps coincide" is a symbolic zero on every region of the piecewise atoms (derive.regions);
  - equivalence is proven by induction (derive.induction); a refutation at step k carries a
    certificate: an exact point where the equations for a mapping have no admissible solution,
    and a concrete counterexample at the best-matching values of B's symbols (derive.witness).
Whatever cannot be established is 'undecided', with the reason.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import sympy as sp

from . import symbols as Y
from .boxes import boxes_json
from .budget import OutOfTime, attempt, within
from .branches import a_branch_conditions, branch_cases, signature, strs
from .conditions import conditions as find_conditions, unknowns_at
from .errors import UserError
from .domains import (admissibility, beta_symbols, model_conditions, reachable, state_form,
                      tightest)
from .identity import PROVEN, REFUTED, SUPPORTED, simplest
from .induction import Induction, generic_mapping, induction, outputs
from .regions import coincide
from .rules import build_rule
from .solving import NoSolution, Solutions, admissible_point, equations, solve_step
from .spec import Spec, as_spec
from .unroll import step_hyper
from .witness import counterexample, initial_free

DEFAULT_STEPS = 4
# time budgets (seconds): past them the engine answers 'undecided' or leaves a part out
BUDGET, WITNESS_SECONDS, CONDITION_SECONDS = 30.0, 10.0, 15.0
UNDECIDED = "undecided"
ELEMENTWISE = ("Every stage acts on one coordinate at a time, so one scalar coordinate suffices: "
               "a vector parameter is independent copies of it.")
NOT_ELEMENTWISE = ("A stage mixes coordinates: the scalar model does not cover vector parameters.")
NOTES = (
    "Open loop suffices: trajectories that agree up to step k-1 see the same gradients at step k, "
    "and any gradient sequence is realised by some loss along a trajectory of distinct points.",
)


@dataclass
class StepRecord:
    k: int
    difference: sp.Expr  # theta^B_k - theta^A_k, open loop, before any mapping
    solutions: list  # mappings that make steps 1..k coincide ([] when none exists)
    outputs: dict = field(default_factory=dict)  # output state name -> its difference B - A


THETA = "theta"


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
    witness: tuple | None = None  # exact (A's, B's) value of `quantity` at the counterexample
    quantity: str = THETA  # what parts at first_divergent_step: theta or an output state's name
    steps_checked: int = 0
    induction: Induction | None = None
    schedule: tuple = ()
    start: str = "start"
    notes: list = field(default_factory=lambda: list(NOTES))
    trail: list = field(default_factory=list)  # StepRecord per unrolled step, for explanations
    valid_when: list = field(default_factory=list)  # conditions on A's symbols (sympy relations)
    reason: str | None = None  # why the verdict is 'undecided' or only 'supported'
    certificate: dict | None = None
    case: dict = field(default_factory=dict)  # the branch of B the verdict was reached in
    branches: list = field(default_factory=list)  # A's branch values, compared on their own

    def derivation(self):
        """The side-by-side derivation (derive.narrate), as `compare --format` prints it."""
        from .narrate import comparison_derivation

        return comparison_derivation(self)

    def _repr_markdown_(self) -> str:  # Jupyter
        return self.derivation()._repr_markdown_()

    def _repr_latex_(self) -> str:
        return self.derivation()._repr_latex_()

    def to_json(self) -> dict:
        return {
            "verdict": self.verdict,
            "equivalent": self.equivalent,
            "a": str(self.a),
            "b": str(self.b),
            "mapping": None if self.mapping is None else strs(self.mapping),
            "valid_when": [str(c) for c in self.valid_when],
            "first_divergent_step": self.first_divergent_step,
            "difference": None if self.difference is None else str(self.difference),
            "conditions": [strs(c) for c in self.conditions],
            "counterexample": self.counterexample,
            "reason": self.reason,
            "certificate": self.certificate,
        }


def _slices(sigma: dict, base_unknowns, schedule, k) -> list:
    """sigma as substitutions of B's base symbols, one per step for scheduled ones."""
    out = []
    for i in range(1, k + 1):
        out.append({u: sigma[Y.stepped(u, i) if u in schedule else u]
                    for u in base_unknowns if (Y.stepped(u, i) if u in schedule else u) in sigma})
    return out or [{}]


def _judge(A, B, sigma, base_unknowns, schedule, k):
    """(admissible conditions or None when inadmissible, switches-a-branch)."""
    base = signature(B)
    conds = []
    for piece in _slices(sigma, base_unknowns, schedule, k):
        verdict = admissibility(B, piece, A)
        if not verdict.ok:
            return None, False
        try:
            if signature(B.substitute(piece)) != base:
                return None, True
        except ValueError:
            return None, False
        conds += [c for c in verdict.valid_when if c not in conds]
    return conds, False


def same_position(A: Spec, B: Spec, unknowns: list, schedule, k) -> list:
    """The identity candidate: each of B's symbols solved from B's value = A's value in the same
    position (c2 in betas[1] against A's b2 gives c2 -> b2; 2*e2 against eta gives e2 -> eta/2)."""
    ha, hb = A.hyper(), B.hyper()
    cand = {}
    for key, vb in hb.items():
        if key not in ha:
            continue
        own = [u for u in unknowns if vb.has(u)]
        if len(own) != 1 or not vb.is_polynomial(own[0]) or sp.degree(vb, own[0]) != 1:
            continue
        u = own[0]
        root = sp.cancel((ha[key] - vb.coeff(u, 0)) / vb.coeff(u, 1))
        for i in range(1, k + 1):
            swap = {s: Y.stepped(s, i) for s in schedule}
            cand.setdefault(Y.stepped(u, i) if u in schedule else u, root.xreplace(swap))
    return [cand] if cand else []


# -- one case -----------------------------------------------------------------------------------

@dataclass
class Partial:
    mapping: dict
    valid_when: list


@dataclass
class CaseResult:
    verdict: str
    k: int  # steps decided
    mapping: dict | None = None
    valid_when: list = field(default_factory=list)
    proof: Induction | None = None
    nosolution: list = field(default_factory=list)
    prefix: dict = field(default_factory=dict)  # best-matching mapping of steps 1..k-1
    difference: sp.Expr | None = None
    quantity: str = THETA  # whose difference `difference` is
    reason: str | None = None
    trail: list = field(default_factory=list)


def _covered(sigma: dict, cases: list) -> bool:
    """Whether a branch-switching mapping lies in one of the enumerated branch cases."""
    return any(sub and all(u in sigma and sp.simplify(sigma[u] - v.xreplace(sigma)) == 0
                           for u, v in sub.items()) for sub in cases)


def _run_case(A, B, steps, start, schedule, bend, covered=()) -> CaseResult:
    ra, rb = build_rule(A), build_rule(B)
    ha, hb = A.hyper(), B.hyper()
    base_unknowns = Y.by_name(B.symbols() - A.symbols())
    betas = beta_symbols(A) | beta_symbols(B)
    rng = random.Random(0)
    state_a = ra.initial_state(start, step_hyper(ha, schedule, 1))
    state_b = rb.initial_state(start, step_hyper(hb, schedule, 1))
    theta_a = theta_b = Y.theta(0)
    partials, complete = [Partial({}, [])], True
    free = [Y.theta(0), *Y.by_name(initial_free(ra, rb, start))]
    observed = outputs(ra, rb)
    supported = None
    trail = []
    for k in range(1, steps + 1):
        g = Y.grad(k)
        free.append(g)
        state_a, theta_a = ra.step(state_a, theta_a, g, step_hyper(ha, schedule, k))
        state_b, theta_b = rb.step(state_b, theta_b, bend(g), step_hyper(hb, schedule, k))
        d = theta_b - theta_a
        # the outputs both hold, theta first: every one must vanish under the mapping
        outs = {n: state_b[n] - state_a[n] for n in observed
                if state_a[n] is not None and state_b[n] is not None}
        quantities = [(THETA, d), *outs.items()]
        unknowns = unknowns_at(base_unknowns, schedule, k)
        extended, nosol = [], []
        for p in partials:
            ds = [(q, e.xreplace(p.mapping)) for q, e in quantities]
            rest = [u for u in unknowns if u not in p.mapping and any(e.has(u) for _, e in ds)]
            if not rest:
                parted, open_ = None, False
                for q, e in ds:
                    v = _coincide_in_domain(A, e, B)
                    if v.verdict == REFUTED:
                        of = "" if q == THETA else f" of {_quantity_text(q)}"
                        parted = NoSolution(v.point, [], [v.value], "with B's symbols fixed by "
                                            f"the mapping of the earlier steps, the difference{of}"
                                            " is non-zero at this exact point", p.mapping,
                                            quantity=q)
                        break
                    open_ = open_ or v.verdict != PROVEN
                if parted:
                    nosol.append(parted)
                elif not open_:
                    extended.append(p)
                else:
                    return CaseResult(UNDECIDED, k, trail=trail, reason=(
                        f"step {k}: neither a symbolic zero on every region of the piecewise "
                        "atoms nor an exact point where the difference is non-zero was found"))
                continue
            # theta's equations, and an output's only where it holds a symbol theta's do not
            # (more equations of max and powers slow the solver down): every mapping found is
            # then verified on every quantity (_through_outputs)
            eqs, raw, held, solved = [], [], set(), []
            for q, e in ds:
                own = {u for u in rest if e.has(u)}
                if q == THETA or own - held:
                    more, more_raw = equations(e, free, rest, rng)
                    eqs, raw, held = eqs + more, raw + more_raw, held | own
                    solved.append(e)
            found = solve_step(eqs, raw, rest, rng,
                               same_position(A, B, rest, schedule, k), betas, solved,
                               lambda point: _a_valid_at(A, point))
            if isinstance(found, Solutions) and len(ds) > 1:
                found, parted = _through_outputs(A, B, found, ds, rest, p.mapping)
                if parted:
                    nosol.append(parted)
                    continue
            if found is None:
                return CaseResult(UNDECIDED, k, trail=trail, reason=(
                    f"step {k}: the equations for B's symbols {', '.join(map(str, rest))} "
                    "(inside |.|, sqrt or max, or several at once) could be neither solved "
                    "exactly nor shown to have no solution"))
            if isinstance(found, NoSolution):
                found.prefix = p.mapping
                nosol.append(found)
                continue
            complete = complete and found.complete
            rejected = []
            for sol in found.mappings:
                merged = {**{u: v.xreplace(sol) for u, v in p.mapping.items()}, **sol}
                conds, switches = _judge(A, B, merged, base_unknowns, schedule, k)
                if conds is None:
                    rejected.append((sol, switches))
                    # sound only if the branch it switches to is one of the cases decided
                    complete = complete and (not switches or _covered(merged, covered))
                    continue
                # recomputed for the merged mapping: a condition on a symbol of B that this
                # step fixed (m2 > 0 from e2 -> eta*mu/m2) is decided now
                extended.append(Partial(merged, conds))
            if rejected and not extended:
                nosol.append(_rejected(A, rejected, eqs, rest, rng, p.mapping))
        trail.append(StepRecord(k, d, [p.mapping for p in extended], outs))
        if not extended:
            if not complete:
                return CaseResult(UNDECIDED, k, trail=trail, reason=(
                    f"step {k}: no mapping found makes steps 1..{k} coincide, but not every "
                    "mapping of the earlier steps could be enumerated, so none is not proven"))
            best = partials[0].mapping
            quantity = _parting(A, B, quantities, best, nosol)
            return CaseResult(REFUTED, k, nosolution=nosol, prefix=best,
                              difference=dict(quantities)[quantity].xreplace(best),
                              quantity=quantity, trail=trail)
        partials = extended
        for p in partials[:3]:
            generic = generic_mapping(p.mapping, schedule)
            proof = induction(ra, rb, ha, hb, generic, schedule, start, bend)
            if proof.verdict == PROVEN:
                return CaseResult(PROVEN, k, generic, p.valid_when, proof, trail=trail)
            if proof.verdict == SUPPORTED and supported is None:
                supported = CaseResult(SUPPORTED, k, generic, p.valid_when, proof, trail=trail,
                                       reason="the induction step holds at every random point "
                                              "tried but has no symbolic proof")
    if supported:
        return supported
    return CaseResult(UNDECIDED, steps, trail=trail, reason=(
        f"steps 1..{steps} coincide under a mapping, but the induction step fails for it; "
        "no divergence up to --steps and no proof for every step (raise --steps)"))


def _through_outputs(A: Spec, B: Spec, found: Solutions, ds: list, rest: list,
                     prefix: dict) -> tuple:
    """(the mappings found, kept where every quantity's difference vanishes under them, the
    certificate when an output refutes them all): a mapping that leaves one of B's symbols in
    a difference, or a difference neither proven zero nor refuted, makes the list incomplete."""
    kept, complete, refuted = [], found.complete, None
    for sol in found.mappings:
        left = [(q, e.xreplace(sol)) for q, e in ds]
        if any(e.has(*rest) for _, e in left):
            complete = False
            continue
        verdicts = [(q, _coincide_in_domain(A, e, B)) for q, e in left]
        bad = next(((q, v) for q, v in verdicts if v.verdict == REFUTED), None)
        if bad:
            refuted = refuted or NoSolution(
                bad[1].point, [], [bad[1].value], f"the mapping {strs(sol)} that makes theta "
                f"coincide leaves the difference of {_quantity_text(bad[0])} non-zero at this "
                "exact point", prefix, quantity=bad[0])
        elif all(v.verdict == PROVEN for _, v in verdicts):
            kept.append(sol)
        else:
            complete = False
    parted = refuted if not kept and complete and found.mappings else None
    return Solutions(kept, complete), parted


def _parting(A: Spec, B: Spec, quantities: list, best: dict, nosol: list) -> str:
    """The quantity that parts at the refuted step: the one the certificate found non-zero, else
    (B's own symbols: no mapping makes them all vanish) the first not identically zero under the
    best mapping of the earlier steps, theta first."""
    named = [n.quantity for n in nosol if n.quantity]
    if named or len(quantities) == 1:
        return named[0] if named else THETA
    for q, e in quantities:
        if _coincide_in_domain(A, e.xreplace(best), B).verdict != PROVEN:
            return q
    return THETA


def _quantity_text(quantity: str) -> str:
    return quantity if quantity == THETA else f"state {quantity!r}"


def _domain_form(A: Spec) -> dict:
    """A's symbols that stand alone for a bounded scalar, each as the image of a fresh c >= 0
    (c > 0 at a strict lower bound) onto its domain: lo + c, or lo + (hi - lo)*c/(1 + c) below
    a strict upper bound (betas). Zero on the image is zero on the domain, and a witness drawn
    for c lies where torch builds A (etaplus > 1, beta < 1)."""
    h, out, seen = A.hyper(), {}, set()
    for s in A.entry.scalars:
        v = h[s.name]
        if not isinstance(v, sp.Symbol) or v in seen:
            out.pop(v, None)  # one symbol for two keys: two domains, left as it is
            seen.add(v)
            continue
        seen.add(v)
        if s.low is None or (s.high is not None and not s.high_strict):
            continue
        c = sp.Dummy(f"c_{v.name}", positive=True) if s.low_strict else \
            sp.Dummy(f"c_{v.name}", nonnegative=True)
        lo = sp.Rational(s.low)
        if s.high is None:
            if lo != 0 or s.low_strict:
                out[v] = lo + c
        else:
            out[v] = lo + (sp.Rational(s.high) - lo) * c / (1 + c)
    return out


def _coincide_in_domain(A: Spec, d: sp.Expr, B: Spec | None = None):
    """regions.coincide over A's domain and the mid-run states both rules reach (v_0 >=
    gavg_0**2 in centered RMSprop: domains.state_form): on the reparametrised difference, its
    witness mapped back to A's symbols and the states (and only accepted where A is an
    optimizer torch builds, from a state it reaches)."""
    specs = (A,) if B is None else (A, B)
    form = {u: e for u, e in {**_domain_form(A), **state_form(specs)}.items() if d.has(u)}
    v = coincide(d.xreplace(form), valid=lambda point: _a_valid_at(A, _back(form, point))
                 and reachable(specs, _back(form, point)))
    if v.verdict == REFUTED:
        v = replace(v, point=_back(form, v.point))
    return v


def _back(form: dict, point: dict) -> dict:
    # the fresh c's only: a state's image (gavg_0**2 + c) also reads a symbol that stays
    dummies = {c for e in form.values() for c in e.free_symbols if isinstance(c, sp.Dummy)}
    out = {s: x for s, x in point.items() if s not in dummies}
    # a c the reparametrised difference lost (sign(g/(1 + c)) is sign(g)) takes any value of
    # its domain: 1 (beta1 = 1/2)
    point = {**dict.fromkeys(dummies, sp.Integer(1)), **point}
    out.update({u: e.xreplace(point) for u, e in form.items()})
    return out


def _a_valid_at(A: Spec, point: dict) -> bool:
    """A at a point of its symbols (others, such as gradients, ignored) is an optimizer."""
    own = {s: v for s, v in point.items() if s in A.symbols()}
    return admissibility(A, own, A).ok


def _rejected(A, rejected, eqs, rest, rng, prefix) -> NoSolution:
    """The certificate when every solution leaves torch's domain or switches a branch: the
    equations at a point where A is admissible, and the solutions with why each is refused."""
    shown = "; ".join(", ".join(f"{u} -> {v}" for u, v in sol.items()) +
                      (" (switches a torch branch: decided as a case of its own)" if switch
                       else " (not an optimizer torch would build)") for sol, switch in rejected)
    others = set().union(*(e.free_symbols for e in eqs)) - set(rest) if eqs else set()
    point = admissible_point(others, rng, lambda q: _a_valid_at(A, q))
    return NoSolution(point, rest, [sp.expand(e.xreplace(point)) for e in eqs],
                      f"every solution is inadmissible: {shown}", prefix)


# -- combining the cases ------------------------------------------------------------------------

def compare(a, b, steps: int = DEFAULT_STEPS, start: str = "start", schedule=(),
            want_conditions: bool = True, want_witness: bool = True,
            transform=None, seconds: float = BUDGET) -> Comparison:
    """Compare specs A and B. `transform`, if given, maps the gradient B receives (g -> c*g to
    ask whether a rule is invariant under gradient rescaling); c is then a universal symbol.
    Past `seconds` the answer is 'undecided', with the reason."""
    A, B = as_spec(a), as_spec(b)
    result = Comparison(A, B, None, UNDECIDED, schedule=tuple(Y.by_name(schedule)), start=start)
    try:
        with within(seconds):
            return _compare(A, B, result, steps, start, want_conditions, want_witness, transform)
    except OutOfTime:
        result.verdict, result.equivalent = UNDECIDED, None
        result.reason = (f"time budget of {seconds:g} s exhausted at step "
                         f"{result.steps_checked}; the engine does not guess")
        result.notes.append(result.reason)
        return result
    except (ArithmeticError, NotImplementedError, TypeError, ValueError, RecursionError,
            sp.PolynomialError) as error:
        if isinstance(error, UserError):
            raise
        # SymPy could not carry out a step (a Poly of exp(e2), a comparison of a non-real):
        # what was not established is undecided, never a verdict (exit 3, not 1)
        return Comparison(A, B, None, UNDECIDED, schedule=result.schedule, start=start,
                          reason=f"SymPy could not carry out a step ({type(error).__name__}: "
                                 f"{' '.join(str(error).split())[:200]}); the engine does not "
                                 "guess")


def _compare(A, B, result, steps, start, want_conditions, want_witness, transform):
    for spec in (A, B):
        if model_conditions(spec) is None:  # torch builds it, but the model is not its rule
            result.reason = (f"{spec} lies outside the domain where optequiv's model of "
                             f"{spec.entry.class_name} holds ({spec.entry.model_reason}); the "
                             "engine does not guess")
            return result
    ra, rb = build_rule(A), build_rule(B)
    result.notes.insert(0, ELEMENTWISE if ra.elementwise and rb.elementwise else NOT_ELEMENTWISE)
    bend = transform or (lambda g: g)
    schedule = result.schedule
    outcomes = []
    cases = branch_cases(A, B)
    for sub, case_b in cases:
        outcome = _run_case(A, case_b, steps, start, schedule, bend,
                            [s for s, _ in cases if s and not (set(s) <= set(sub))])
        outcomes.append((sub, case_b, outcome))
        result.steps_checked = max(result.steps_checked, outcome.k)
        if outcome.verdict == PROVEN:
            break
    proven = [o for o in outcomes if o[2].verdict == PROVEN]
    if proven:
        return _proven(A, B, result, *min(proven, key=lambda o: len(o[2].valid_when)), steps, start)
    open_ = [o for o in outcomes if o[2].verdict in (UNDECIDED, SUPPORTED)]
    if open_:
        sub, case_b, outcome = open_[0]
        result.verdict, result.reason, result.trail = outcome.verdict, outcome.reason, outcome.trail
        if outcome.verdict == SUPPORTED:
            result.mapping = {**sub, **outcome.mapping}
            result.induction = outcome.proof
            result.valid_when = tightest(outcome.valid_when + [
                c for c in model_conditions(A) if c not in outcome.valid_when])
        if len(outcomes) > 1:
            result.reason += _case_text(sub)
        return result
    return _refuted(A, B, result, outcomes, steps, start, want_conditions, want_witness,
                    transform, bend)


def _case_text(sub: dict) -> str:
    return f" (in the case {', '.join(f'{u} = {v}' for u, v in sub.items())})" if sub else ""


def _proven(A, B, result, sub, case_b, outcome, steps, start):
    result.verdict, result.equivalent = PROVEN, True
    result.mapping = {**sub, **outcome.mapping}
    result.induction, result.trail, result.case = outcome.proof, outcome.trail, sub
    # A's own symbols where its model holds (RMSprop's alpha <= 1), then A's branch values
    inside = model_conditions(A)
    result.valid_when = list(outcome.valid_when) + [
        c for c in inside if c not in outcome.valid_when]
    if inside:
        result.notes.append(f"valid_when includes {' and '.join(map(str, inside))}: where "
                            f"optequiv's model of {A.entry.class_name} holds "
                            f"({A.entry.model_reason})")
    result.valid_when = tightest(result.valid_when + [
        c for c in a_branch_conditions(compare, A, B, case_b, outcome.mapping, result,
                                       steps, start)
        if c not in result.valid_when])
    proof = outcome.proof
    result.certificate = {
        "kind": "induction",
        "case": strs(sub),
        "mapping": strs(result.mapping),
        "state_map": strs(proof.phi),
        "checks": [{"what": w, "difference": "0" if v == PROVEN else str(d), "verdict": v}
                   for w, d, v in proof.checks],
        "valid_when": [str(c) for c in result.valid_when],
        # A's branch values, each compared as a case of its own (with its own mapping)
        "branches": result.branches,
    }
    return result


def _refuted(A, B, result, outcomes, steps, start, want_conditions, want_witness, transform,
             bend):
    sub, case_b, outcome = max(outcomes, key=lambda o: o[2].k)
    k = outcome.k
    result.verdict, result.equivalent = REFUTED, False
    result.first_divergent_step, result.trail, result.case = k, outcome.trail, sub
    result.difference = simplest(outcome.difference) if want_witness else outcome.difference
    result.quantity = outcome.quantity
    base_unknowns = Y.by_name(B.symbols() - A.symbols())
    prefix = {**sub, **outcome.prefix}
    if want_witness:
        ra, rb = build_rule(A), build_rule(case_b)
        # the certificate's open-loop point: a loss through its gradients where no fixed one
        # separates (derive.closed_loop)
        hint = outcome.nosolution[0].point if outcome.nosolution else None
        found = attempt(WITNESS_SECONDS, counterexample, A, case_b, ra, rb, A.hyper(),
                        case_b.hyper(), outcome.prefix, Y.by_name(case_b.symbols() - A.symbols()),
                        result.schedule, k, start, bend, sub, hint, outputs(ra, rb))
        if found:
            result.counterexample, result.witness = found
    result.certificate = {
        "kind": "refutation",
        "step": k,
        # what parts first: theta, or an output state (by its symbol's name) while theta agrees
        "quantity": outcome.quantity,
        "divergence": f"{_parts_text(case_b, outcome.quantity)} differs from step {k}",
        **_nosolution_json(outcome.nosolution[0] if outcome.nosolution else None),
        # after the case's own fields: the mapping of steps 1..k-1 includes the branch case
        "prefix_mapping": strs(prefix),
        "counterexample": result.counterexample,
        "cases": [{"case": strs(s), "first_divergent_step": o.k,
                   "prefix_mapping": strs({**s, **o.prefix}),
                   "alternatives": [_nosolution_json(n) for n in o.nosolution]}
                  for s, _, o in outcomes],
    }
    if not base_unknowns:
        result.certificate["why"] = ("B has no symbols of its own: the exact closed-loop "
                                     "counterexample shows the divergence")
    if want_conditions:
        free = [Y.theta(0), *Y.by_name(initial_free(build_rule(A), build_rule(case_b), start)),
                *[Y.grad(i) for i in range(1, k + 1)]]
        result.conditions = attempt(CONDITION_SECONDS, find_conditions, compare, A, B, steps,
                                    start, result.schedule, outcome.difference, free,
                                    base_unknowns, k, transform, fallback=[])
    return result


def _parts_text(B: Spec, quantity: str) -> str:
    if quantity == THETA:
        return THETA
    return f"state {quantity!r} (torch's {B.entry.state(quantity).key!r})"


def _nosolution_json(n: NoSolution | None) -> dict:
    if n is None:
        return {"point": {}, "unknowns": [], "equations": [], "why": ""}
    return {"point": strs(n.point or {}), "unknowns": [str(u) for u in n.unknowns],
            "equations": [str(e) for e in n.equations[:12]], "why": n.why,
            "prefix_mapping": strs(n.prefix),
            **({"boxes": boxes_json(n.boxes)} if n.boxes else {})}


__all__ = ["Comparison", "compare", "DEFAULT_STEPS", "Solutions"]
