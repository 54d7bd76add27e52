"""The equivalence engine: the seed's claims, Loshchilov & Hutter's Propositions 1 and 2, and the
engine's honesty (no verdict without a proof or an exact witness)."""
from __future__ import annotations

import pytest
import sympy as sp
import torch

from optequiv.derive import symbols as Y
from optequiv.derive.compare import compare
from optequiv.derive.identity import zero_test
from optequiv.numeric.reference import torch_reference

eta, mu, lam, lr = Y.hyper("eta"), Y.hyper("mu"), Y.hyper("lam"), Y.hyper("lr")


def torch_closed_loop(spec_text: str, hyper: dict, theta0: float, steps: int) -> float:
    """theta_k of torch.optim on f(theta) = theta**2/2 (gradient theta), float64."""
    spec = __import__("optequiv.derive.spec", fromlist=["parse_spec"]).parse_spec(spec_text)
    spec = spec.substitute({Y.hyper(k): sp.Rational(v) for k, v in hyper.items()
                            if not k.endswith("_float")})
    cls, kwargs = torch_reference(spec)
    p = torch.nn.Parameter(torch.tensor([theta0], dtype=torch.float64))
    opt = cls([p], foreach=False, **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        (p * p / 2).sum().backward()
        opt.step()
    return float(p.detach()[0])


# -- the seed ------------------------------------------------------------------------------------

def test_seed_sgd_l2_equals_weight_decay():
    r = compare("sgd(lr=eta, weight_decay=2*wd)", "sgd(lr=eta, weight_decay=2*wd, decay=decoupled)")
    assert r.equivalent is True and r.verdict == "proven"
    assert r.induction.verdict == "proven"


def test_seed_momentum_l2_and_decay_differ():
    r = compare("sgd(lr=eta, momentum=mu, weight_decay=lam)",
                "sgd(lr=eta, momentum=mu, weight_decay=lam2, decay=decoupled)")
    assert r.equivalent is False
    assert r.first_divergent_step == 2
    # the difference is a constant multiple of lr * momentum * lambda * theta_0
    ratio = sp.simplify(r.difference / (eta * mu * lam * Y.theta(0)))
    assert ratio.is_number and ratio != 0
    assert {str(k) for c in r.conditions for k in c} == {"eta", "mu", "lam"}
    assert all(list(c.values()) == [0] for c in r.conditions)


def test_seed_ema_momentum_differs_as_well():
    r = compare("sgd(lr=eta, momentum=mu, dampening=mu, weight_decay=lam, buffer=zero)",
                "sgd(lr=eta, momentum=mu, dampening=mu, weight_decay=lam2, buffer=zero, "
                "decay=decoupled)")
    assert r.equivalent is False and r.first_divergent_step == 2


# -- Loshchilov & Hutter --------------------------------------------------------------------------

def test_proposition_1_sgd_decay_equals_l2_with_rescaled_coefficient():
    r = compare("sgd(lr=eta, weight_decay=lam)", "sgd(lr=eta, weight_decay=k, decay=independent)")
    assert r.equivalent is True
    assert r.mapping == {Y.hyper("k"): eta * lam}


def test_proposition_1_with_per_step_learning_rates_needs_a_scheduled_decay():
    constant = compare("sgd(lr=eta, weight_decay=lam)",
                       "sgd(lr=eta, weight_decay=k, decay=independent)", schedule=[eta])
    assert constant.equivalent is False and constant.first_divergent_step == 2
    assert {Y.stepped(eta, "t"): eta} in constant.conditions  # only a constant lr rescues it
    scheduled = compare("sgd(lr=eta, weight_decay=lam)",
                        "sgd(lr=eta, weight_decay=k, decay=independent)",
                        schedule=[eta, Y.hyper("k")])
    assert scheduled.equivalent is True
    assert scheduled.mapping == {Y.stepped(Y.hyper("k"), "t"): Y.stepped(eta, "t") * lam}


def test_proposition_2_adam_l2_has_no_decoupled_equivalent():
    r = compare("adam(weight_decay=lam)", "adamw(weight_decay=lam2)")
    assert r.equivalent is False and r.first_divergent_step == 1 and r.mapping is None
    assert {str(k) for c in r.conditions for k in c} == {"lam", "lr"}


def test_torch_adam_decoupled_flag_is_adamw():
    r = compare("adam(weight_decay=lam, decoupled_weight_decay=true)", "adamw(weight_decay=lam2)")
    assert r.equivalent is True and r.mapping == {Y.hyper("lam2"): lam}


def test_torch_adamw_versus_paper_convention():
    r = compare("adamw(lr=alpha, weight_decay=lam)", "adamw(lr=alpha, weight_decay=lp, "
                                                      "decay=independent)")
    assert r.equivalent is True and r.mapping == {Y.hyper("lp"): Y.hyper("alpha") * lam}


def test_ema_momentum_is_torch_momentum_with_a_smaller_lr():
    r = compare("sgd(lr=eta, momentum=mu, dampening=mu, buffer=zero)",
                "sgd(lr=eta2, momentum=mu)")
    assert r.equivalent is True
    assert sp.simplify(r.mapping[Y.hyper("eta2")] - eta * (1 - mu)) == 0


def test_from_a_general_state():
    r = compare("sgd(lr=eta, momentum=mu, weight_decay=lam)",
                "sgd(lr=eta, momentum=mu, weight_decay=lam2, decay=decoupled)", start="state")
    assert r.equivalent is False and r.first_divergent_step == 2
    assert compare("adamw(weight_decay=lam)", "adam(weight_decay=lam, decoupled_weight_decay=true)",
                   start="state").equivalent is True


# -- witnesses: counterexamples are exact, and torch reproduces them --------------------------------

@pytest.mark.parametrize("a, b", [
    ("sgd(lr=eta, momentum=mu, weight_decay=lam)", "sgd(lr=eta, momentum=mu, weight_decay=lam)"),
    ("adam(weight_decay=lam)", "adamw(weight_decay=lam)"),
])
def test_counterexample_is_reproduced_by_torch(a, b):
    b_decoupled = b if b.startswith("adamw") else b[:-1] + ", decay=decoupled)"
    r = compare(a, b_decoupled)
    ce = r.counterexample
    assert ce["loss"] == "theta**2/2"
    k, theta0 = ce["step"], float(sp.Rational(ce["theta_0"]))
    torch_a = torch_closed_loop(a, ce["hyperparameters"], theta0, k)
    assert torch_a == pytest.approx(ce["theta_A_float"], rel=1e-12)
    if b_decoupled.startswith("adamw"):
        torch_b = torch_closed_loop(b_decoupled, ce["hyperparameters"], theta0, k)
        assert torch_b == pytest.approx(ce["theta_B_float"], rel=1e-12)
    assert ce["theta_A"] != ce["theta_B"]


# -- honesty --------------------------------------------------------------------------------------

def test_a_budget_too_small_is_undecided_not_equivalent():
    r = compare("sgd(lr=eta, momentum=mu, weight_decay=lam)",
                "sgd(lr=eta, momentum=mu, weight_decay=lam, decay=decoupled)", steps=1)
    assert r.equivalent is None and r.verdict == "undecided"
    assert r.to_json()["first_divergent_step"] is None


def test_agreement_on_step_one_is_not_taken_for_equivalence():
    # AMSGrad equals Adam on step 1 from torch's start (vmax = v) and differs from step 2
    r = compare("adam", "adam(amsgrad=true)")
    assert r.trail[0].solutions == [{}]
    assert r.equivalent is False and r.first_divergent_step == 2


def test_induction_negative_control_catches_a_wrong_correspondence():
    # torch's buffer and the zero buffer agree from a general state only when both damp alike
    same = compare("sgd(momentum=mu)", "sgd(momentum=mu, buffer=zero)", start="state")
    assert same.equivalent is True
    differ = compare("sgd(momentum=mu, dampening=tau)", "sgd(momentum=mu, buffer=zero)",
                     start="state")
    assert differ.equivalent is False


def test_json_has_exactly_the_contract_keys():
    r = compare("sgd(weight_decay=lam)", "sgd(weight_decay=lam2, decay=decoupled)")
    assert list(r.to_json()) == ["verdict", "equivalent", "a", "b", "mapping", "valid_when",
                                 "first_divergent_step", "difference", "conditions",
                                 "counterexample", "reason", "certificate"]


def test_zero_test_verdicts():
    x = Y.hyper("x")
    assert zero_test(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1).verdict == "proven"
    refuted = zero_test(x * (1 - x))
    assert refuted.verdict == "refuted" and refuted.value != 0
    assert (x * (1 - x)).xreplace(refuted.point) == refuted.value


def test_a_mapping_must_leave_b_an_optimizer_torch_would_build():
    # momentum -> 0 would turn sgd(nesterov=true) into plain SGD, but torch refuses nesterov
    # without momentum: no admissible mapping, so they differ from step 1
    r = compare("sgd(lr=eta)", "sgd(lr=eta, momentum=mu, nesterov=true)")
    assert r.equivalent is False and r.first_divergent_step == 1
    assert sp.Rational(r.counterexample["hyperparameters"]["mu"]) > 0
