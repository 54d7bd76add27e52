"""Sound verdicts: one test per class of unsound answer the engine used to give (issue 9).

Each expected answer was derived by hand from torch's algorithms (REFERENCE.md) and is replayed
here in exact arithmetic by the tests' own simulator (exact_torch.py, written from torch's
documentation, not from derive's stages); the differential test over drawn pairs lives in
test_verdict_oracle.py.
"""
from __future__ import annotations

from fractions import Fraction as F

import sympy as sp

import exact_torch as X

from optequiv.derive import symbols as Y
from optequiv.derive.compare import compare
from optequiv.derive.domains import admissibility, constraint
from optequiv.derive.regions import coincide, regions
from optequiv.derive.spec import parse_spec


def torch_sgd(lr, grads, momentum=0, dampening=0, buffer="torch", wd=0, theta0=F(1)):
    """theta_1 ... theta_k of torch's SGD on exact numbers, from the tests' own simulator."""
    config = {"family": "sgd", "lr": lr, "momentum": momentum, "dampening": dampening,
              "weight_decay": wd, "buffer": buffer}
    return X.run(config, theta0, grads, ops=X.FRACTION).theta[1:]


# -- class 1: a mapping that leaves B an optimizer torch would not build ------------------------

def test_negative_lr_mapping_is_refused():
    r = compare("sgd(lr=eta, maximize=true)", "sgd(lr=e2)")
    assert r.verdict == "refuted" and r.first_divergent_step == 1
    cert = r.certificate
    assert cert["kind"] == "refutation" and cert["point"] and cert["equations"]
    assert "admissible" in cert["why"] or "no" in cert["why"]


def test_negative_weight_decay_mapping_is_refused():
    r = compare("sgd(lr=eta, weight_decay=lam, maximize=true)", "sgd(lr=eta, weight_decay=w2)")
    assert r.verdict == "refuted"


def test_conditional_mapping_says_when_it_holds():
    """Decay after the step is L2 with e2 = eta/(1 - eta*lam): only for eta*lam < 1."""
    r = compare("sgd(lr=eta, weight_decay=lam)", "sgd(lr=e2, weight_decay=k, decay=after)")
    assert r.verdict == "proven"
    assert [str(c) for c in r.valid_when] == ["eta*lam < 1"]
    assert r.to_json()["valid_when"] == ["eta*lam < 1"]
    # replay: at eta = 1/2, lam = 1 (eta*lam < 1) B under the mapping follows A exactly
    eta, lam = F(1, 2), F(1)
    e2, k = eta / (1 - eta * lam), lam * (1 - eta * lam)
    grads = [F(3), F(-1, 7), F(2, 5)]
    a = torch_sgd(eta, grads, wd=lam)
    theta, b = F(1), []
    for g in grads:  # decay after: the step first, then theta -= lr*k*theta
        theta = theta - e2 * g
        theta = theta - e2 * k * theta
        b.append(theta)
    assert a == b


def test_constraint_signs():
    eta, lam = Y.hyper("eta"), Y.hyper("lam")
    assert constraint(-eta, False, set()) is False
    assert constraint(2 * eta, False, set()) is True
    assert str(constraint(eta / (1 - eta * lam), False, set())) == "eta*lam < 1"
    b = Y.hyper("b")
    assert constraint(1 - b, True, {b}) is True  # a beta lies in [0, 1)


def test_admissibility_of_nesterov_needs_momentum():
    A, B = parse_spec("sgd(lr=eta)"), parse_spec("sgd(lr=eta, momentum=m2, nesterov=true)")
    assert not admissibility(B, {Y.hyper("m2"): sp.Integer(0)}, A).ok


# -- class 2: branches are cases ------------------------------------------------------------------

def test_momentum_zero_is_a_branch_not_a_value():
    """sgd vs 2*eta with a dampened zero buffer: m2 -> 0 makes B plain SGD with lr 2*eta."""
    r = compare("sgd(lr=eta)", "sgd(lr=2*eta, momentum=m2, dampening=1/2, buffer=zero)")
    assert r.verdict == "refuted" and r.first_divergent_step == 2
    # step 1 coincides for any m2 (the dampened buffer halves the doubled lr), step 2 needs m2 = 0
    g = [F(1), F(2)]
    a = torch_sgd(F(1, 10), g)
    b = torch_sgd(F(2, 10), g, momentum=F(1, 3), dampening=F(1, 2), buffer="zero")
    assert a[0] == b[0] and a[1] != b[1]
    assert torch_sgd(F(2, 10), g)[0] != a[0]  # and the branch m2 = 0 differs from step 1
    assert r.counterexample is not None


def test_the_branch_case_gives_the_mapping():
    r = compare("sgd(lr=eta)", "sgd(lr=e2, momentum=m2, dampening=1/2, buffer=zero)")
    assert r.verdict == "proven"
    assert r.mapping == {Y.hyper("e2"): Y.hyper("eta"), Y.hyper("m2"): 0}
    assert r.certificate["case"] == {"m2": "0"}


def test_a_buffer_that_is_always_zero_is_decided():
    """dampening 1 with a zero buffer: buf stays 0, theta never moves; at mu = 0 torch has no
    buffer and plain SGD moves, so the equivalence holds for mu > 0 only."""
    r = compare("sgd(momentum=mu, dampening=1, buffer=zero)", "sgd(lr=0)")
    assert r.verdict == "proven" and [str(c) for c in r.valid_when] == ["mu > 0"]
    assert torch_sgd(F(1, 10), [F(1), F(3)], momentum=F(1, 2), dampening=1, buffer="zero") \
        == [F(1), F(1)]


# -- class 3: spurious roots ----------------------------------------------------------------------

def test_renaming_beta2_is_the_identity_mapping():
    r = compare("adam(lr=a, betas=(b1,b2), eps=e)", "adam(lr=a, betas=(b1,c2), eps=e)")
    assert r.verdict == "proven" and r.mapping == {Y.hyper("c2"): Y.hyper("b2")}


def test_renaming_weight_decay_is_decided():
    r = compare("adam(weight_decay=w)", "adam(weight_decay=w2)")
    assert r.verdict == "proven" and r.mapping == {Y.hyper("w2"): Y.hyper("w")}


# -- class 4: the first divergent step is never decided at random points --------------------------

def test_amsgrad_diverges_at_step_2():
    for betas in ("(0.9, 0.99)", "(0.9, 0.999)"):
        r = compare(f"adam(amsgrad=true, betas={betas})", f"adam(betas={betas})")
        assert r.verdict == "refuted" and r.first_divergent_step == 2, betas
        assert r.counterexample is not None


def test_regions_split_the_max():
    x, y = sp.Symbol("x", real=True), sp.Symbol("y", real=True)
    d = sp.Max(x**2, y**2 / 1000) - x**2  # zero except where |y| > 31.6|x|
    verdict = coincide(d)
    assert verdict.verdict == "refuted" and d.xreplace(verdict.point) != 0
    assert coincide(sp.Max(x, y) - sp.Max(y, x)).verdict == "proven"
    assert coincide(sp.Abs(x) ** 2 - x**2).verdict == "proven"
    assert len(regions(sp.Max(x, y) + sp.Abs(x))) == 4


# -- certificates and reasons ---------------------------------------------------------------------

def test_every_refutation_carries_a_certificate():
    r = compare("sgd(lr=eta, momentum=mu, dampening=tau)",
                "sgd(lr=e2, momentum=m2, dampening=d2, buffer=zero)")
    assert r.verdict == "refuted" and r.first_divergent_step == 2
    cert = r.certificate
    assert cert["point"] and cert["unknowns"] and cert["equations"] and cert["why"]
    assert cert["prefix_mapping"]  # the mapping that makes step 1 coincide
    assert r.counterexample is not None


def test_certificate_equations_are_inconsistent_as_stated():
    """The reader's check: at the certificate's point, the stated linear equations in B's
    unknowns have no solution (exact rank test, independent of the engine's own solver)."""
    r = compare("sgd(lr=eta, momentum=mu, dampening=tau)",
                "sgd(lr=e2, momentum=m2, dampening=d2, buffer=zero)")
    cert = r.certificate
    unknowns = [Y.hyper(u) for u in cert["unknowns"]]
    local = {u.name: u for u in unknowns}
    eqs = [sp.parse_expr(e, local_dict=local) for e in cert["equations"]]
    assert not sp.solve(eqs, unknowns, dict=True)


def test_undecided_always_has_a_reason():
    r = compare("adam(amsgrad=true, weight_decay=lam)", "adam(lr=e2)", steps=1)
    assert r.verdict in ("refuted", "undecided")
    if r.verdict == "undecided":
        assert r.reason
    timed_out = compare("adam(amsgrad=true, weight_decay=lam)", "adam(weight_decay=w2)",
                        seconds=0.01)
    assert timed_out.verdict == "undecided" and "time budget" in timed_out.reason
