"""derive.closed_loop: an open-loop gradient sequence as a polynomial loss, and the counterexamples
compare builds from it for piecewise rules (Lion's sign, Rprop's switches), checked in the exact
simulator (tests/exact_catalogue.py) by catalogue_checks.check_counterexample; the catalogue's
findings of such refutations without a counterexample are in test_verdict_oracle_catalogue.py.
Negative controls: a loss that does not separate is not reported, and state invariants refuse
the state a complex certificate sat at."""
from __future__ import annotations

import random

import pytest
import sympy as sp

from catalogue_checks import check_counterexample
from strategies_specs import H
from optequiv.derive import closed_loop as CL
from optequiv.derive import symbols as Y
from optequiv.derive import witness
from optequiv.derive.compare import compare
from optequiv.derive.domains import reachable, state_form
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import as_spec

Q = sp.Rational


def test_loss_through_interpolates_the_gradients():
    points, values = [Q(1), Q(9, 10), Q(-2)], [Q(3), Q(-1, 7), Q(5)]
    loss, grad = CL.loss_through(points, values)
    assert [grad.xreplace({CL.THETA: p}) for p in points] == values
    assert sp.expand(sp.diff(loss, CL.THETA) - grad) == 0
    assert all(c.is_Rational for c in sp.Poly(loss, CL.THETA).all_coeffs())
    at = CL.gradient_function(grad)
    assert [at(p) for p in points] == values
    loss1, grad1 = CL.loss_through([Q(2)], [Q(-3, 4)])  # one point: a linear loss
    assert (loss1, grad1) == (-3 * CL.THETA / 4, Q(-3, 4))


def test_visited_forces_the_gradient_of_a_point_seen_before():
    """Rprop stays put where the sign flips (that gradient counts as 0): step 3 evaluates the
    gradient where step 2 did, so the loss has only g_2 to give it, whatever g_3 was drawn."""
    spec = as_spec("rprop(lr=1/10, etas=(1/2, 6/5), step_sizes=(1/100, 50))")
    rule, h = build_rule(spec), spec.hyper()
    seen = CL.visited(rule, lambda i: h, rule.initial_state(), Q(1), [Q(1), Q(-1), Q(5)])
    assert seen == ([Q(1), Q(9, 10), Q(9, 10)], [Q(1), Q(-1), Q(-1)])
    adam = as_spec("adam(lr=1/10, betas=(9/10, 999/1000), eps=1/100000000)")
    rule = build_rule(adam)  # theta_2 reads sqrt(v_2/(1 - beta2**2)): irrational
    assert CL.visited(rule, lambda i: adam.hyper(), rule.initial_state(), Q(1),
                      [Q(1, 3), Q(2), Q(1)]) is None


LION = ("lion(lr=1, betas=(9/10, 1/2), weight_decay=1/10, maximize=true, decay=decoupled)",
        "lion(lr=1, betas=(1/2, 1/2), weight_decay=1/10, maximize=true, decay=decoupled)")
RPROP = ("rprop(lr=1/10, etas=(1/2, xetaplus), step_sizes=(1/100, 50))",
         "rprop(lr=1/10, etas=(1/2, xetaplus), step_sizes=(1/10, 50))")
# no conditions (not what is tested here), and a budget that a loaded machine does not exhaust
QUICK = {"want_conditions": False, "seconds": 300}
CONFIGS = {
    LION: ({"family": "lion", "lr": 1, "betas": (Q(9, 10), Q(1, 2)), "weight_decay": Q(1, 10),
            "maximize": True, "decay": "decoupled"},
           {"family": "lion", "lr": 1, "betas": (Q(1, 2), Q(1, 2)), "weight_decay": Q(1, 10),
            "maximize": True, "decay": "decoupled"}),
    RPROP: ({"family": "rprop", "lr": Q(1, 10), "etas": (Q(1, 2), H("xetaplus")),
             "step_sizes": (Q(1, 100), 50), "maximize": False},
            {"family": "rprop", "lr": Q(1, 10), "etas": (Q(1, 2), H("xetaplus")),
             "step_sizes": (Q(1, 10), 50), "maximize": False}),
}


@pytest.mark.parametrize("pair, k", [(LION, 2), (RPROP, 3)], ids=["lion", "rprop"])
def test_interpolated_counterexample_replays_in_the_simulator(pair, k):
    """No loss of witness.LOSSES parts these (Lion's sign arguments differ only when g_2 lies
    between -9g_1/2 and -g_1/2; Rprop's step sizes only after a flip, where it stays put); the
    loss through the certificate's gradients does, in the independent simulator too."""
    r = compare(*pair, steps=k + 1, **QUICK).to_json()
    assert r["verdict"] == "refuted" and r["first_divergent_step"] == k
    cx = r["counterexample"]
    assert cx and cx["loss"] not in [text for text, _ in witness.LOSSES]
    A, B = CONFIGS[pair]
    assert check_counterexample(A, B, r) == []


def test_a_loss_that_does_not_separate_is_not_reported(monkeypatch):
    """Negative control: with the interpolation planted to give the zero gradient (both Rprops
    stay at theta_0), the closed-loop replay refuses every loss and no counterexample comes."""
    monkeypatch.setattr(CL, "loss_through", lambda points, values: (sp.Integer(0),
                                                                    sp.Integer(0)))
    r = compare(*RPROP, steps=4, **QUICK)
    assert r.verdict == "refuted" and r.first_divergent_step == 3
    assert r.counterexample is None
    monkeypatch.undo()
    assert compare(*RPROP, steps=4, **QUICK).counterexample is not None


def test_state_invariant_reparametrises_centered_rmsprop():
    """v - gavg^2 >= 0 in every state centered RMSprop reaches: the state a certificate once sat
    at (v_0 = 5/17 < (26/19)**2, a complex difference) is refused, the image of the
    reparametrisation never is, and plain RMSprop has no such invariant."""
    centered, plain = as_spec("rmsprop(centered=true)"), as_spec("rmsprop")
    v, gavg = Y.state("v", 0), Y.state("gavg", 0)
    assert not reachable([centered], {v: Q(5, 17), gavg: Q(26, 19)})
    assert reachable([plain], {v: Q(5, 17), gavg: Q(26, 19)})
    form = state_form([plain, centered])
    assert set(form) == {v} and state_form([plain]) == {}
    rng = random.Random(0)
    for _ in range(20):
        point = {gavg: Q(rng.randint(-40, 40), 7)}
        point.update({c: Q(rng.randint(0, 40), 11) for c in form[v].free_symbols - {gavg}})
        assert reachable([centered], {gavg: point[gavg], v: form[v].xreplace(point)})
