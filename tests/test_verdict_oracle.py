"""The differential oracle of issue 9: every verdict of derive.compare.compare, its mapping, first
divergent step and certificate, checked against the exact simulator of torch's algorithms
(tests/exact_torch.py, written from torch's documentation, never from derive's stages).

Three parts: the issue's example classes, each answered here by hand and by the simulator before
the engine's answer is checked; negative controls that plant a wrong mapping and an off-by-one
step in hand-made results and require the checks to fail; and hypothesis-drawn spec pairs.
"""
from __future__ import annotations

import inspect
import random
from fractions import Fraction
from types import SimpleNamespace

import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, given, settings

import exact_torch as X
from strategies_specs import H, R, render, spec_pairs, substitute
from verdict_checks import (check_counterexample, check_no_mapping, check_prefix, check_proven,
                            check_result, gradient_of, no_mapping_at, replay)

SECONDS = 10  # the engine's own budget per comparison, where its API takes one
UNDECIDED_FRACTION = 0.15  # of drawn pairs the engine may leave undecided (with a reason)
UNRESOLVED_FRACTION = 0.25  # of drawn pairs where this oracle's own solver may not decide

eta, e2, m2, mu, tau, lam, w, w2 = map(H, ("eta", "e2", "m2", "mu", "tau", "lam", "w", "w2"))
a, b1, b2, c2, e = map(H, ("a", "b1", "b2", "c2", "e"))


def engine(spec_a: str, spec_b: str, steps: int, start: str = "start"):
    from optequiv.derive.compare import compare
    kwargs = {"steps": steps, "start": start}
    if "seconds" in inspect.signature(compare).parameters:
        kwargs["seconds"] = SECONDS
    return compare(spec_a, spec_b, **kwargs)


def rng():
    return random.Random(9)


def assert_checks(A, B, result, start="start", steps=3):
    problems, _ = check_result(A, B, result, start, steps)
    assert problems == [], "\n".join(problems)


def cx_for(A, B, point, k, loss="theta**2/2", theta0=1):
    """A counterexample in the contract's form, computed by the simulator (hand-made results)."""
    ops = X.ops_for(A, B)
    grad = {"theta**2/2": lambda th: th}[loss]
    ta = X.run(substitute(A, point), theta0, grad, steps=k, ops=ops).theta[k]
    tb = X.run(substitute(B, point), theta0, grad, steps=k, ops=ops).theta[k]
    return {"loss": loss, "step": k, "theta_0": str(theta0),
            "hyperparameters": {str(s): str(v) for s, v in point.items()},
            "theta_A": str(ta), "theta_B": str(tb)}


def refutation(A, B, k, prefix, point, cx_point):
    cx = cx_for(A, B, cx_point, k)
    return SimpleNamespace(
        verdict="refuted", equivalent=False, mapping=None, valid_when=[], first_divergent_step=k,
        counterexample=cx, reason=None,
        certificate={"kind": "refutation", "step": k, "prefix_mapping": prefix,
                     "point": {str(s): str(v) for s, v in point.items()}, "counterexample": cx})


def proof(mapping, valid_when=()):
    return SimpleNamespace(verdict="proven", equivalent=True, mapping=mapping,
                           valid_when=list(valid_when), first_divergent_step=None,
                           counterexample=None, certificate=None, reason=None)


# -- the classes: the right answer, established here ------------------------------------

MAXIMIZE = ({"family": "sgd", "lr": eta, "maximize": True}, {"family": "sgd", "lr": e2})
SWITCH_OFF = ({"family": "sgd", "lr": eta},
              {"family": "sgd", "lr": 2 * eta, "momentum": m2, "dampening": R(Fraction(1, 2)),
               "buffer": "zero"})
SWITCH_ON = ({"family": "sgd", "lr": eta},
             {"family": "sgd", "lr": e2, "momentum": m2, "dampening": R(Fraction(1, 2)),
              "buffer": "zero"})
RENAME_BETA2 = ({"family": "adam", "lr": a, "betas": (b1, b2), "eps": e},
                {"family": "adam", "lr": a, "betas": (b1, c2), "eps": e})
ADAM_DEFAULTS = {"family": "adam", "lr": H("lr"), "betas": (H("beta1"), H("beta2")),
                 "eps": H("eps")}
RENAME_WD = (dict(ADAM_DEFAULTS, weight_decay=w), dict(ADAM_DEFAULTS, weight_decay=w2))
DEAD_BUFFER = ({"family": "sgd", "lr": H("lr"), "momentum": mu, "dampening": R(1),
                "buffer": "zero"}, {"family": "sgd", "lr": e2})
EMA = ({"family": "sgd", "lr": eta, "momentum": mu, "dampening": tau},
       {"family": "sgd", "lr": e2, "momentum": H("b"), "dampening": H("b"), "buffer": "zero"})


def amsgrad_pair(beta2):
    A = {"family": "adam", "lr": H("lr"), "betas": (R(Fraction(9, 10)), R(beta2)), "eps": H("eps")}
    return A, dict(A, amsgrad=True)


def test_my_answers_maximize_and_switch_off():
    """maximize: theta_1 = theta_0 + eta*g_1 against theta_0 - e2*g_1 needs e2 = -eta < 0.
    Switch-off: any m2 matches step 1 (lr 2*eta times the dampened first gradient g_1/2); at step 2
    m2 != 0 adds eta*m2*g_1 and m2 = 0 leaves plain SGD with lr 2*eta: refuted at step 2."""
    A, B = MAXIMIZE
    assert no_mapping_at(A, B, {eta: R(Fraction(1, 10))}, [e2], 1, "start", rng())[0] == "none"
    assert replay(A, B, {e2: -eta}, "start", rng(), 6) != []
    A, B = SWITCH_OFF
    at = {eta: R(Fraction(1, 10))}
    assert no_mapping_at(A, B, at, [m2], 1, "start", rng())[0] == "found"
    assert no_mapping_at(A, B, at, [m2], 2, "start", rng())[0] == "none"


def test_my_answers_switch_on_renamings_dead_buffer():
    """Switch-on: m2 = 0 (no buffer in torch) and e2 = eta; e2 = 2*eta (the m2 != 0 branch's
    step 1) fails with m2 = 0. The renamings are identities. A zero buffer with dampening 1 stays
    0, so theta never moves: B with lr 0."""
    A, B = SWITCH_ON
    assert replay(A, B, {m2: 0, e2: eta}, "start", rng(), 6) == []
    assert replay(A, B, {m2: 0, e2: 2 * eta}, "start", rng(), 6) != []
    assert replay(*RENAME_BETA2, {c2: b2}, "start", rng(), 6) == []
    assert replay(*RENAME_WD, {w2: w}, "state", rng(), 6) == []
    assert replay(*DEAD_BUFFER, {e2: 0}, "start", rng(), 6) == []


@pytest.mark.parametrize("beta2", [Fraction(99, 100), Fraction(999, 1000)])
def test_my_answers_amsgrad(beta2):
    """Step 1 coincides for every g_1 (vmax_1 = max(0, v_1) = v_1), as an exact identity; step 2
    differs at g = (1, 1e-3), where v_2 < v_1."""
    A, B = amsgrad_pair(beta2)
    g1 = sp.Symbol("g_1", real=True)
    one = [X.run(c, sp.Symbol("theta_0", real=True), [g1], ops=X.SYMPY).theta[1] for c in (A, B)]
    assert sp.simplify(one[0] - one[1]) == 0
    point = {H("lr"): R(Fraction(1, 10)), H("eps"): R(Fraction(1, 10**8))}
    ta, tb = (X.run(substitute(c, point), 1, [1, Fraction(1, 1000)], ops=X.MP).theta
              for c in (A, B))
    assert X.same(ta[1], tb[1]) and not X.same(ta[2], tb[2])


def test_my_answer_ema():
    """Zero-buffer EMA (momentum = dampening = b) against torch's buffer with dampening tau: step 1
    needs e2*(1 - b) = eta, step 2 then b = mu and 1 - tau = 1; b = 0 leaves plain SGD, which
    misses eta*mu*g_1. Refuted at step 2 for tau != 0."""
    A, B = EMA
    at = {eta: R(Fraction(1, 10)), mu: R(Fraction(1, 2)), tau: R(Fraction(1, 2))}
    unknowns = [e2, H("b")]
    assert no_mapping_at(A, B, at, unknowns, 1, "start", rng())[0] == "found"
    assert no_mapping_at(A, B, at, unknowns, 2, "start", rng())[0] == "none"


# -- the engine on the same examples --------------------------------------------------------------

def test_engine_maximize_not_equivalent_through_negative_lr():
    A, B = MAXIMIZE
    result = engine(render(A), render(B), 3)
    assert result.verdict == "refuted" and result.first_divergent_step == 1
    assert_checks(A, B, result)


def test_engine_switch_off_refuted_at_step_2():
    A, B = SWITCH_OFF
    result = engine(render(A), render(B), 3)
    assert result.verdict == "refuted" and result.first_divergent_step == 2
    assert_checks(A, B, result)


@pytest.mark.parametrize("pair", [SWITCH_ON, RENAME_BETA2, DEAD_BUFFER],
                         ids=["switch-on", "beta2", "dead-buffer"])
def test_engine_proves(pair):
    A, B = pair
    result = engine(render(A), render(B), 3)
    assert result.verdict == "proven", (result.verdict, getattr(result, "reason", None))
    assert_checks(A, B, result)


def test_engine_proves_weight_decay_renaming():
    A, B = RENAME_WD
    result = engine("adam(weight_decay=w)", "adam(weight_decay=w2)", 3)
    assert result.verdict == "proven", (result.verdict, getattr(result, "reason", None))
    assert_checks(A, B, result)


@pytest.mark.parametrize("beta2", ["0.99", "0.999"])
def test_engine_amsgrad_diverges_at_step_2(beta2):
    A, B = amsgrad_pair(Fraction(beta2))
    result = engine(f"adam(betas=(0.9, {beta2}))", f"adam(betas=(0.9, {beta2}), amsgrad=true)", 4)
    assert result.verdict == "refuted" and result.first_divergent_step == 2
    assert_checks(A, B, result, steps=4)


def test_engine_ema_refuted_with_certificate():
    A, B = EMA
    result = engine(render(A), render(B), 3)
    assert result.verdict == "refuted" and result.first_divergent_step == 2
    assert (getattr(result, "certificate", None) or {}).get("kind") == "refutation"
    assert_checks(A, B, result)


CONDITIONAL = ({"family": "sgd", "lr": eta, "weight_decay": lam},
               {"family": "sgd", "lr": e2, "weight_decay": H("k"), "decay": "after"})


def test_my_answer_conditional_mapping():
    """theta(1 - eta*lam) - eta*g against (theta - e2*g)(1 - e2*k): e2*k = eta*lam and
    e2 = eta/(1 - eta*lam), a valid lr only for eta*lam < 1; k = 0 (no decay) cannot shrink
    theta."""
    A, B = CONDITIONAL
    mapping = {e2: eta / (1 - eta * lam), H("k"): lam * (1 - eta * lam)}
    assert replay(A, B, mapping, "state", rng(), 6, valid_when=["eta*lam < 1"]) == []
    beyond = {eta: R(2), lam: R(1)}
    assert no_mapping_at(A, B, beyond, [e2, H("k")], 1, "start", rng())[0] == "none"


def test_engine_conditional_mapping_valid_when():
    A, B = CONDITIONAL
    result = engine(render(A), render(B), 3)
    assert result.verdict == "proven" and result.valid_when
    assert_checks(A, B, result)


# -- found by drawn pairs: each answer established here, then the engine's checked -------------

LOST_BRANCH = ({"family": "sgd", "lr": eta, "momentum": R(Fraction(9, 10))},
               {"family": "sgd", "lr": eta, "momentum": m2, "dampening": R(Fraction(1, 2)),
                "buffer": "zero"})
DAMPENING_2 = ({"family": "sgd", "lr": eta, "momentum": R(Fraction(1, 2)), "dampening": tau,
                "maximize": True},
               {"family": "sgd", "lr": e2, "momentum": R(Fraction(1, 2)), "dampening": H("d2")})
ASCENT = ({"family": "adam", "lr": eta, "betas": (R(Fraction(1, 2)), R(Fraction(1, 2))),
           "eps": R(Fraction(1, 10)), "weight_decay": R(Fraction(1, 10)), "maximize": True,
           "decay": "decoupled"},)
ASCENT += (dict(ASCENT[0], weight_decay=w2, amsgrad=True),)


def test_my_answer_lost_branch():
    """Step 1: torch's momentum 9/10 copies g_1; B's zero buffer gives g_1/2 for every m2 != 0,
    so only m2 = 0 (plain SGD) matches; step 2 then misses eta*9/10*g_1. Refuted at step 2, and
    the prefix mapping is m2 -> 0."""
    A, B = LOST_BRANCH
    at = {eta: R(Fraction(1, 10))}
    assert no_mapping_at(A, B, at, [m2], 1, "start", rng()) == ("found", {m2: 0})
    assert no_mapping_at(A, B, at, [m2], 2, "start", rng())[0] == "none"
    assert replay(A, B, {m2: 0}, "start", rng(), 1) == []


def test_engine_lost_branch_prefix_mapping():
    A, B = LOST_BRANCH
    result = engine(render(A), render(B), 3)
    assert result.verdict == "refuted" and result.first_divergent_step == 2
    assert_checks(A, B, result)


def test_engine_dampening_beyond_one():
    """Decided: torch builds SGD with any dampening, so d2 -> 2 - tau is admissible; d2 is a
    user's identifier, a nonnegative real, hence valid_when tau <= 2."""
    A, B = DAMPENING_2
    result = engine(render(A), render(B), 3, "state")
    assert_checks(A, B, result, "state")


def test_my_answer_ascent_counterexample():
    """Gradient ascent moves away from every minimum of the four losses, so |g| grows and
    AMSGrad's max stays put, unless the decoupled decay pulls theta in faster: theta**2/2 from
    theta_0 = 20 with lr 8 (w2 = 1/10, A's value) gives |g_2| < |g_1|/sqrt(2), v_2 < v_1."""
    A, B = ASCENT
    point = {eta: R(8), w2: R(Fraction(1, 10))}
    ta, tb = (X.run(substitute(c, point), 20, lambda th: th, steps=2, ops=X.MP).theta
              for c in (A, B))
    assert X.same(ta[1], tb[1]) and not X.same(ta[2], tb[2])


def test_engine_ascent_refutation_has_counterexample():
    A, B = ASCENT
    result = engine(render(A), render(B), 2)
    assert result.verdict == "refuted" and result.first_divergent_step == 2
    assert_checks(A, B, result, steps=2)


ASCENT_NO_DECAY = ({"family": "adamw", "lr": eta, "betas": (R(Fraction(1, 2)), b2),
                    "eps": R(Fraction(1, 10**8)), "weight_decay": R(0), "maximize": True},)
ASCENT_NO_DECAY += (dict(ASCENT_NO_DECAY[0], lr=e2, amsgrad=True),)


def test_my_answer_ascent_needs_a_concave_loss():
    """Without decay, ascent on the contract's four convex losses only grows |g| (v_2 >= v_1: no
    closed-loop counterexample among them, from any theta_0), yet the pair diverges at step 2
    (open loop, v_2 < v_1), and a concave loss realises it: -(theta - 3)**2/2 from theta_0 = 1
    with lr 3/2 climbs towards 3."""
    A, B = ASCENT_NO_DECAY
    point = {eta: R(Fraction(3, 2)), e2: R(Fraction(3, 2)), b2: R(Fraction(1, 2))}
    grad = gradient_of("-(theta - 3)**2/2")
    ta, tb = (X.run(substitute(c, point), 1, grad, steps=2, ops=X.MP).theta for c in (A, B))
    assert X.same(ta[1], tb[1]) and not X.same(ta[2], tb[2])
    for loss in ("theta**2/2", "(theta - 1)**2/2", "theta**4/4", "(theta - 3)**2/2"):
        for theta0 in (1, 2, Fraction(-1, 2), 20):
            run = X.run(substitute(B, point), theta0, gradient_of(loss), steps=2, ops=X.MP)
            assert run.states[2]["v"] >= run.states[1]["v"]  # the max never switches


def test_engine_ascent_without_decay_has_counterexample():
    """Ascent on a convex loss only grows |g|; the engine also tries a concave one."""
    A, B = ASCENT_NO_DECAY
    result = engine(render(A), render(B), 2)
    assert result.verdict == "refuted" and result.first_divergent_step == 2
    assert_checks(A, B, result, steps=2)


# -- negative controls: the checks fail on planted errors ----------------------------------------

L2_VS_DECOUPLED = ({"family": "sgd", "lr": eta, "weight_decay": lam},
                   {"family": "sgd", "lr": e2, "weight_decay": w2, "decay": "decoupled"})


def test_control_right_mapping_passes():
    assert check_proven(*L2_VS_DECOUPLED, proof({e2: eta, w2: lam}), "start", rng()) == []


@pytest.mark.parametrize("planted", [{e2: eta * R(Fraction(8, 7)), w2: lam},  # lr times 1 + 1/7
                                     {e2: eta, w2: lam * R(Fraction(8, 7))}])
def test_control_planted_wrong_mapping_is_caught(planted):
    assert check_proven(*L2_VS_DECOUPLED, proof(planted), "state", rng()) != []


def test_control_planted_inadmissible_or_branch_switching_mapping_is_caught():
    assert check_proven(*MAXIMIZE, proof({e2: -eta}), "start", rng()) != []
    assert check_proven(*SWITCH_ON, proof({e2: 2 * eta, m2: 0}), "start", rng()) != []


def _switch_off_refutation(k, prefix):
    A, B = SWITCH_OFF
    return refutation(A, B, k, prefix, {eta: R(Fraction(1, 10))},
                      {eta: R(Fraction(1, 10)), m2: R(Fraction(9, 10))})


def test_control_right_refutation_passes():
    A, B = SWITCH_OFF
    problems, status = check_result(A, B, _switch_off_refutation(2, {}), "start", 3)
    assert problems == [] and status == "refuted"


def test_control_planted_counterexample_values_are_caught():
    """A misreported theta_B is caught; so is a counterexample that does not separate (the loss
    (theta - 1)**2/2 from its minimum theta_0 = 1 moves neither run)."""
    A, B = SWITCH_OFF
    result = _switch_off_refutation(2, {})
    result.counterexample = dict(result.counterexample, theta_B="1/3")
    assert check_counterexample(A, B, result) != []
    result = _switch_off_refutation(2, {})
    result.counterexample = dict(result.counterexample, loss="(theta - 1)**2/2", theta_0="1",
                                 theta_A="1", theta_B="1")
    assert any("does not separate" in p for p in check_counterexample(A, B, result))


def test_control_planted_late_step_is_caught_by_prefix():
    """k + 1 reported: no mapping makes step 2 coincide, so the claimed prefix fails."""
    A, B = SWITCH_OFF
    assert check_counterexample(A, B, _switch_off_refutation(3, {})) == []  # consistent fake
    assert check_prefix(A, B, _switch_off_refutation(3, {}), "start", rng()) != []


def test_control_planted_early_step_is_caught_by_no_mapping():
    """k - 1 reported: step 1 coincides for every m2, so a mapping through step 1 is found."""
    A, B = SWITCH_OFF
    problems, status = check_no_mapping(A, B, _switch_off_refutation(1, {}), "start", rng())
    assert status == "found" and problems != []


def test_control_planted_step_without_own_symbols():
    """AMSGrad vs Adam reported at step 3: the prefix replay must reach v_2 < v_1 and fail."""
    A, B = amsgrad_pair(Fraction(99, 100))
    point = {H("lr"): R(Fraction(1, 10)), H("eps"): R(Fraction(1, 10))}
    assert check_prefix(A, B, refutation(A, B, 3, {}, point, point), "start", rng()) != []
    assert check_prefix(A, B, refutation(A, B, 2, {}, point, point), "start", rng()) == []


# -- drawn pairs ----------------------------------------------------------------------------------

def test_drawn_verdicts_agree_with_simulator():
    records = []

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(spec_pairs())
    def run(pair):
        A, B, start, steps = pair
        a_text, b_text = render(A), render(B)
        if (a_text, b_text, start, steps) in {r[:4] for r in records}:
            return  # hypothesis repeats examples: each pair is judged once
        try:
            result = engine(a_text, b_text, steps, start)
            problems, status = check_result(A, B, result, start, steps)
        except Exception as err:  # an engine crash is a finding, not a reason to stop drawing
            problems, status = [f"{type(err).__name__}: {err}"], "error"
        records.append((a_text, b_text, start, steps, status, problems))

    run()
    counts = {}
    for record in records:
        counts[record[4]] = counts.get(record[4], 0) + 1
    print(f"drawn pairs: {len(records)}, by status: {counts}")  # shown with -s
    lines = [f"{a} vs {b} from {start}, steps {k}: {status}: " + "; ".join(p)
             for a, b, start, k, status, p in records if p]
    assert not lines, f"{len(lines)} of {len(records)} drawn pairs fail:\n" + "\n".join(lines)
    for kinds, bound, who in ((("undecided", "supported"), UNDECIDED_FRACTION, "the engine"),
                              (("unresolved",), UNRESOLVED_FRACTION, "check_no_mapping")):
        left = [r for r in records if r[4] in kinds]
        assert len(left) <= bound * len(records), f"{who} left {len(left)} undecided:\n" + \
            "\n".join(f"{a} vs {b} from {s}, steps {k}: {st}" for a, b, s, k, st, _ in left)
