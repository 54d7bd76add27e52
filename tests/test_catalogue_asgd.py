"""torch.optim.ASGD as a catalogue entry: the rule against an exact hand-written recurrence
(the old eta and mu, the copy while mu == 1, then the average), the generated optimizers against
torch.optim.ASGD (params and eta, mu, ax, step after every step), planted bugs in the order of
the updates, torch's messages, `list` and `compare`."""
from __future__ import annotations

from dataclasses import replace

import pytest
import sympy as sp
import torch

from entry_checks import (assert_float64_matches_torch, assert_refused_as_torch, cli,
                          default_dtype, distance, float32_runs, listed, normwise_ulp,
                          numpy_trajectory, ours, planted_distances, spec_text, torch_class,
                          trajectory, ulp)
from optequiv.derive.catalogue import asgd as A
from optequiv.derive.compare import compare
from optequiv.derive.rules import build_rule

R_ = sp.Rational
# torch's optim_db configurations on CPU, and three that average within 10 steps (t0 small)
CONFIGS = [{}, {"lambd": 0.1}, {"lr": 0.02}, {"t0": 100}, {"maximize": True},
           {"weight_decay": 0.1}, {"weight_decay": 0.1, "maximize": True}, {"t0": 2},
           {"t0": 3, "lambd": 0.1, "alpha": 0.5, "weight_decay": 0.1},
           {"t0": 0, "lr": 0.1, "lambd": 0.5, "maximize": True},
           # torch checks no sign of lambd, alpha or t0: a negative lambd (eta grows, then turns
           # negative past lambd*lr*t = -1 with an integer alpha), a negative alpha and t0
           {"t0": 2, "lr": 0.5, "lambd": -0.1, "alpha": 1},
           {"t0": -3, "lambd": -0.1, "alpha": -0.5}]


# -- symbolic ------------------------------------------------------------------------------------

def exact_asgd(theta, grads, lr, lambd, alpha, t0, wd=0, maximize=False):
    """Polyak-Juditsky averaging as torch 2.13's loop orders it, on exact numbers."""
    eta, mu, ax, out = lr, 1, 0, []
    for t, g in enumerate(grads, 1):
        g = -g if maximize else g
        g = g + wd * theta if wd else g
        theta = theta * (1 - lambd * eta) - eta * g  # the old eta
        ax = theta if mu == 1 else ax + mu * (theta - ax)  # the old mu
        eta = lr / (1 + lambd * lr * t) ** alpha
        mu = R_(1, max(1, t - t0))
        out.append((theta, ax, eta, mu))
    return out


@pytest.mark.parametrize("spec, alpha, t0, wd, maximize", [
    ("asgd", 1, 2, 0, False),
    ("asgd(weight_decay=0.1)", R_(3, 4), 3, R_(1, 10), False),
    ("asgd(maximize=true, weight_decay=0.1)", R_(1, 2), 0, R_(1, 10), True),
], ids=("alpha=1", "l2", "maximize"))
def test_the_rule_is_torchs_recurrence_exactly(spec, alpha, t0, wd, maximize):
    rule = build_rule(spec)
    h = {"lr": R_(1, 10), "lambd": R_(1, 5), "alpha": alpha, "t0": t0, "weight_decay": wd}
    grads = [R_(3, 7), R_(-1, 3), R_(2, 5), R_(5, 11), R_(-1, 9), R_(7, 3), R_(1, 2)]
    want = exact_asgd(R_(1, 2), grads, h["lr"], h["lambd"], alpha, t0, wd, maximize)
    state, theta = rule.initial_state("start", h), R_(1, 2)
    assert state == {"t": 0, "etat": R_(1, 10), "mut": 1, "ax": 0}  # torch's first values
    for g, (w_theta, w_ax, w_eta, w_mu) in zip(grads, want):
        state, theta = rule.step(state, theta, g, h)
        assert state["mut"] == w_mu
        for got, exact in ((theta, w_theta), (state["ax"], w_ax), (state["etat"], w_eta)):
            assert abs(sp.N(got - exact, 50)) < 1e-40
    assert any(mu != 1 for *_, mu in want[:-1])  # the average acts, not only the copy


def test_unroll_shows_the_copy_then_the_average():
    rc, out, err = cli("unroll", "asgd(t0=1)", "--steps", "4")
    assert rc == 0, err
    assert "mut_3 = 1/2" in out and "ax_4 = " in out
    assert "ax_1 = " in out and "Piecewise" not in out.split("step 4:")[0]


# -- numbers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", CONFIGS, ids=str)
def test_float64_params_and_state_match_torch_after_every_step(kw):
    # eta and mu are float32 0-dim tensors on both sides (torch's scalar dtype under the
    # float32 default), rounded identically when stored. torch's own foreach path is not its
    # loop: it computes the new eta as float32 tensor arithmetic on the float32 step count
    # (the loop in Python floats, rounded once), so the two differ by float32 roundings of
    # eta, about 1e-6 relative; the generated optimizer (foreach or not) follows the loop
    assert_float64_matches_torch("asgd", kw, torch_foreach=1e-4, with_numpy=False)


@pytest.mark.parametrize("kw", CONFIGS, ids=str)
def test_numpy_matches_torch_in_float64_default_dtype(kw):
    # numpy_step keeps eta and mu as Python floats (float64): compared against torch under a
    # float64 default dtype, where torch keeps them in float64 too
    with default_dtype(torch.float64):
        want = trajectory(torch_class("asgd"), kw, torch.float64)
    assert distance(numpy_trajectory(spec_text("asgd", kw)), want) <= 1e-12


@pytest.mark.parametrize("kw", CONFIGS, ids=str)
def test_float32_against_torchs_loop(kw):
    # the step is torch's two operations, param*(1 - lambd*eta) then add_(grad, alpha=-eta),
    # with maximize too (the printer starts a sum from the scaled parameter, as torch's
    # in-place chain): bit for bit (0 ulp). The fused kernel rounds alpha*grad before the sum
    # where torch's vectorised add_ fuses them; an element near 0 (theta*(1 - lambd*eta)
    # cancelling eta*g) then counts many ulp of a tiny value (measured up to 109), so it is
    # bounded normwise, in ulp of the parameter's largest magnitude: measured at most 0.86
    want, runs = float32_runs("asgd", kw)
    assert ulp(runs["eager"], want) == 0
    assert all(normwise_ulp(got, want) <= 2 for got in runs.values())


def _reordered(*order):
    def rule_for(spec):
        rule = build_rule(spec)
        head = tuple(s for s in rule.stages if s not in order)
        return replace(rule, stages=head + order)
    return rule_for


@pytest.mark.parametrize("order", [(A.SCHEDULE, A.ASGD_STEP, A.AVERAGE),
                                   (A.ASGD_STEP, A.SCHEDULE, A.AVERAGE)],
                         ids=("new eta in the step", "new mu in the average"))
def test_planted_bugs_are_caught(order):
    kw = {"t0": 2, "lr": 0.1, "lambd": 0.5}
    [d] = planted_distances("asgd", kw, _reordered(*order), with_numpy=False)
    assert d > 1e-6
    # the same order as the entry's is no bug: the harness itself is not what differs
    same = _reordered(A.ASGD_STEP, A.AVERAGE, A.SCHEDULE)
    assert planted_distances("asgd", kw, same, with_numpy=False) <= [1e-12]


# -- bad input, list, compare --------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{"lr": -1.0}, {"weight_decay": -0.1}], ids=str)
def test_torchs_messages_from_the_spec_and_the_constructor(kw):
    assert_refused_as_torch("asgd", kw, on_cli=True)


def test_every_argument_is_positional_as_in_torch():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = ours("asgd")([p], 0.05, 1e-3, 0.5, 7.0, 0.01, None, True)
    group = opt.param_groups[0]
    assert (group["lr"], group["lambd"], group["alpha"], group["t0"], group["weight_decay"],
            group["maximize"]) == (0.05, 1e-3, 0.5, 7.0, 0.01, True)


def test_list_shows_the_entry():
    info = listed("asgd", "torch.optim.ASGD")
    assert info["keys"]["t0"]["torch_default"] == "1e6"
    assert set(info["state"]) == {"step", "eta", "mu", "ax"}


def test_compare_proves_a_renamed_lr_and_refutes_another_lambd():
    r = compare("asgd(lr=a)", "asgd(lr=b)")
    assert r.verdict == "proven"
    r = compare("asgd(lambd=1/10)", "asgd(lambd=1/5)", steps=2)
    assert r.verdict == "refuted" and r.first_divergent_step == 1


def test_torchs_unchecked_values_are_admitted_and_compared():
    """torch takes lambd = -1/10 (and a negative alpha or t0): so does the spec language, and the
    engine assumes no sign there: B = A under lr -> a is an optimizer torch builds (the domain
    lambd >= 0 once refuted this pair as 'every solution is inadmissible')."""
    torch.optim.ASGD([torch.zeros(1, requires_grad=True)], lambd=-0.1, alpha=-1.0, t0=-3.0)
    for a, b in (("asgd(lr=a, lambd=-1/10, alpha=1)", "asgd(lr=b, lambd=-1/10, alpha=1)"),
                 ("asgd(lr=a, alpha=-1/2, t0=-3)", "asgd(lr=b, alpha=-1/2, t0=-3)")):
        r = compare(a, b, steps=2)
        assert r.verdict == "proven" and r.mapping == {sp.Symbol("b", nonnegative=True):
                                                       sp.Symbol("a", nonnegative=True)}, r.reason


def test_the_average_is_compared_as_theta_is():
    """ax is ASGD's output (State.output): t0 = 2 against t0 = 0 leaves theta alike at every step
    but parts ax at step 3 (from a mid-run state at step 2), and a renamed t0 must map back,
    though theta never reads it (before, the empty mapping was proven for both)."""
    a, b = "asgd(lr=a, lambd=1/10, alpha=1, t0=2)", "asgd(lr=a, lambd=1/10, alpha=1, t0=0)"
    for start, k in (("start", 3), ("state", 2)):
        r = compare(a, b, steps=3, start=start)
        assert r.verdict == "refuted" and r.first_divergent_step == k, (start, r.reason)
        assert r.quantity == "ax" and r.certificate["quantity"] == "ax"
        assert r.certificate["divergence"] == f"state 'ax' (torch's 'ax') differs from step {k}"
        ce = r.counterexample
        assert ce["quantity"] == "ax" and ce["theta_A"] == ce["theta_B"]
        assert sp.Rational(ce["value_A"]) != sp.Rational(ce["value_B"])
    r = compare("asgd(lr=a, t0=c)", "asgd(lr=a, t0=d)", steps=3)
    assert r.verdict == "proven" and {str(k): str(v) for k, v in r.mapping.items()} == {"d": "c"}
    assert "ax" in r.induction.relevant and "mut" in r.induction.relevant
    rc, out, _ = cli("compare", a, b, "--steps", "3")
    assert rc == 1 and "what differs: state 'ax' (torch's 'ax') differs from step 3" in out
