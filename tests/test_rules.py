"""Every torch branch in the stage composition, checked on symbols.

The numeric agreement with torch.optim is tested in test_step_vs_torch; here the structure:
which stages run in which order, and the exact form of each branch.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.derive.unroll import grad_f, unroll

th, g1, g2 = Y.theta(0), Y.grad(1), Y.grad(2)
lr, mu, tau, lam = Y.hyper("lr"), Y.hyper("mu"), Y.hyper("tau"), Y.hyper("lam")
b1, b2, eps = Y.hyper("beta1"), Y.hyper("beta2"), Y.hyper("eps")


def one_step(text, start="start"):
    spec = parse_spec(text)
    rule = build_rule(spec)
    return rule.step(rule.initial_state(start), th, g1, spec.hyper())


def stages(text):
    return build_rule(parse_spec(text)).stage_names()


def test_decay_is_the_position_of_one_stage():
    assert stages("sgd(weight_decay=lam)") == ("decay", "scale_lr", "apply")
    assert stages("sgd(weight_decay=lam, decay=independent)") == ("scale_lr", "decay", "apply")
    assert stages("adam(weight_decay=lam)") == ("count", "decay", "moments", "adam_direction",
                                               "scale_lr", "apply")
    assert stages("adamw") == ("count", "moments", "adam_direction", "decay", "scale_lr", "apply")
    assert stages("adamw(decay=independent)") == ("count", "moments", "adam_direction",
                                                  "scale_lr", "decay", "apply")
    assert stages("adamw(decay=after)")[-2:] == ("apply", "decay_after")


def test_sgd_plain_l2_and_maximize():
    _, theta = one_step("sgd(weight_decay=lam, maximize=true)")
    # maximize negates the gradient first; L2 is added afterwards
    assert sp.expand(theta - (th - lr * (-g1 + lam * th))) == 0


def test_sgd_momentum_first_step_copies_then_damps():
    u = unroll("sgd(momentum=mu, dampening=tau)", 2)
    assert u.steps[0].state["buf"] == g1
    assert sp.expand(u.steps[1].state["buf"] - (mu * g1 + (1 - tau) * g2)) == 0


def test_zero_buffer_damps_from_the_first_step():
    state, _ = one_step("sgd(momentum=mu, dampening=mu, buffer=zero)")
    assert sp.expand(state["buf"] - (1 - mu) * g1) == 0


def test_nesterov_direction():
    _, theta = one_step("sgd(momentum=mu, nesterov=true)")
    assert sp.expand(theta - (th - lr * (g1 + mu * g1))) == 0


def test_adam_bias_correction_and_eps_outside_the_sqrt():
    state, theta = one_step("adam", start="state")
    t = Y.state("t", 0) + 1
    m = b1 * Y.state("m", 0) + (1 - b1) * g1
    v = b2 * Y.state("v", 0) + (1 - b2) * g1**2
    expected = th - lr * (m / (1 - b1**t)) / (sp.sqrt(v) / sp.sqrt(1 - b2**t) + eps)
    assert state["t"] == t
    assert sp.simplify(theta - expected) == 0


def test_amsgrad_is_a_max_over_raw_v():
    state, theta = one_step("adam(amsgrad=true)", start="state")
    assert state["vmax"] == sp.Max(Y.state("vmax", 0), state["v"])
    assert theta.has(sp.Max(Y.state("vmax", 0), state["v"]))


def test_adam_first_step_from_torch_start_is_sign_like():
    _, theta = one_step("adam")
    # t = 1: m_hat = g, v_hat = g**2, so the step is lr * g / (|g| + eps)
    assert sp.simplify(theta - (th - lr * g1 / (sp.Abs(g1) + eps))) == 0


def test_decoupled_equals_torch_form():
    # theta - lr*(u + lam*theta) is torch's theta*(1 - lr*lam) - lr*u, exactly
    _, decoupled = one_step("adamw(weight_decay=lam)")
    _, plain = one_step("adam")
    assert sp.expand(decoupled - (th * (1 - lr * lam) + (plain - th))) == 0


def test_decay_after_the_step_uses_the_updated_theta():
    _, after = one_step("adamw(weight_decay=lam, decay=after)")
    _, plain = one_step("adam")
    assert sp.expand(after - plain * (1 - lr * lam)) == 0


def test_closed_loop_uses_the_gradient_of_the_previous_iterate():
    u = unroll("sgd(lr=eta, momentum=mu)", 2, loop="closed")
    assert u.steps[1].g == grad_f(Y.theta(1))
    assert u.steps[1].theta.has(grad_f(u.steps[0].theta))


def test_general_state_start_uses_named_state_symbols():
    u = unroll("adam(amsgrad=true)", 1, start="state")
    assert set(u.initial) == {"t", "m", "v", "vmax"}
    assert u.steps[0].state["t"] == Y.state("t", 0) + 1


def test_schedule_indexes_hyperparameters_per_step():
    u = unroll("sgd(lr=eta)", 2, schedule=[Y.hyper("eta")])
    assert u.steps[1].theta.has(Y.stepped(Y.hyper("eta"), 2))
    assert not u.steps[1].theta.has(Y.hyper("eta"))


def test_every_rule_is_elementwise():
    for text in ("sgd(momentum=mu, nesterov=true)", "adam(amsgrad=true)", "adamw"):
        assert build_rule(parse_spec(text)).elementwise
