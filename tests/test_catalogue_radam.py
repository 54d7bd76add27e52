"""torch.optim.RAdam as a catalogue entry: the rule against an exact hand-written recurrence
(both sides of the switch on rho_t > 5), the generated optimizers against torch.optim.RAdam
(params and state after every step), planted bugs, torch's messages, `list` and `compare`."""
from __future__ import annotations

from dataclasses import replace

import pytest
import sympy as sp

from entry_checks import (assert_float64_matches_torch, assert_refused_as_torch, cli,
                          float32_runs, listed, planted, planted_distances, ulp)
from optequiv.derive.catalogue import radam as R
from optequiv.derive.compare import compare
from optequiv.derive.rules import build_rule

R_ = sp.Rational
# torch's optim_db configurations on CPU; beta2 = 0.6 makes rho_inf = 4 (never rectified, and
# the rectification would divide by zero: torch never computes it there, nor do we)
CONFIGS = [{}, {"lr": 2e-3}, {"eps": 1e-6}, {"weight_decay": 0.1},
           {"weight_decay": 0.1, "decoupled_weight_decay": True},
           {"weight_decay": 0.1, "maximize": True}, {"betas": (0.9, 0.6)},
           {"betas": (0.5, 0.9), "eps": 1e-3}]


# -- symbolic ------------------------------------------------------------------------------------

def exact_radam(theta, grads, lr, b1, b2, eps, wd=0, decoupled=False, maximize=False):
    """Liu et al.'s RAdam as torch 2.13's loop writes it, on exact numbers."""
    m = v = 0
    out = []
    for t, g in enumerate(grads, 1):
        g = -g if maximize else g
        if wd and decoupled:
            theta = theta * (1 - lr * wd)
        elif wd:
            g = g + wd * theta
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2**t / bc2
        if rho_t > 5:
            rect = sp.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2)
                                                                  * rho_t))
            theta = theta - m / bc1 * lr * (sp.sqrt(bc2) / (sp.sqrt(v) + eps)) * rect
        else:
            theta = theta - m / bc1 * lr
        out.append((theta, m, v, rho_t > 5))
    return out


@pytest.mark.parametrize("spec, wd, decoupled, maximize, b2", [
    ("radam", 0, False, False, R_(999, 1000)),
    ("radam(weight_decay=0.1)", R_(1, 10), False, False, R_(99, 100)),
    ("radam(weight_decay=0.1, decoupled_weight_decay=true)", R_(1, 10), True, False, R_(9, 10)),
    ("radam(maximize=true, weight_decay=0.1)", R_(1, 10), False, True, R_(3, 5)),
], ids=("plain", "l2", "decoupled", "maximize-rho_inf=4"))
def test_the_rule_is_torchs_recurrence_exactly(spec, wd, decoupled, maximize, b2):
    rule = build_rule(spec)
    h = {"lr": R_(1, 10), "beta1": R_(9, 10), "beta2": b2, "eps": R_(1, 1000),
         "weight_decay": wd}
    grads = [R_(3, 7), R_(-1, 3), R_(2, 5), R_(5, 11), R_(-1, 9), R_(7, 3), R_(1, 2), R_(-4, 5)]
    want = exact_radam(R_(1, 2), grads, h["lr"], h["beta1"], b2, h["eps"], wd, decoupled,
                       maximize)
    state, theta = rule.initial_state("start", h), R_(1, 2)
    for g, (w_theta, w_m, w_v, _) in zip(grads, want):
        state, theta = rule.step(state, theta, g, h)
        for got, exact in ((state["m"], w_m), (state["v"], w_v), (theta, w_theta)):
            assert abs(sp.N(got - exact, 50)) < 1e-40
    switched = [rectified for *_, rectified in want]
    # rho_t <= t: the first five steps are plain momentum; beta2 = 0.6 is never rectified
    assert not any(switched[:5]) and any(switched) == (b2 != R_(3, 5))


def test_the_switch_folds_away_where_the_step_is_known():
    rule = build_rule("radam")
    h = {n: sp.Symbol(n, nonnegative=True) for n in ("lr", "beta1", "beta2", "eps")}
    state, theta = rule.initial_state("start", h), sp.Symbol("theta", real=True)
    g = sp.Symbol("g", real=True)
    state, theta = rule.step(state, theta, g, h)
    assert not theta.has(sp.Piecewise)  # rho_1 = 1
    rc, out, err = cli("unroll", "radam(lr=0.1)", "--steps", "2")
    assert rc == 0, err and "theta_2" in out
    # at a general step the switch stays: generic t
    state = {n: sp.Symbol(f"{n}_0", **a) for n, a in (("t", {"integer": True, "nonnegative": True}),
                                                       ("m", {"real": True}),
                                                       ("v", {"nonnegative": True}))}
    _, theta = rule.step(state, theta, g, h)
    assert theta.has(sp.Piecewise)


# -- numbers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", CONFIGS, ids=str)
def test_float64_params_and_state_match_torch_after_every_step(kw):
    assert_float64_matches_torch("radam", kw)


@pytest.mark.parametrize("kw", CONFIGS, ids=str)
def test_float32_within_a_few_ulp_of_torchs_loop(kw):
    # torch multiplies ((m_hat*lr)*adaptive_lr)*rect tensor by tensor, each rounded to
    # float32; the generated step folds lr, rect and the bias corrections into one double
    # scalar (rounded once), so an update can differ from torch's in its last bit and the
    # parameter's rounding then by one ulp at that step; the gradients do not depend on the
    # parameter, so the differences add up without growing: at most one ulp per step (10).
    # Measured (loop / fused): 1/0, 7/2 (lr=2e-3), 1/0, 0/2, 0/0, 2/2, 1/1, 3/1
    want, runs = float32_runs("radam", kw)
    assert all(ulp(got, want) <= 10 for got in runs.values())


def _direction(c, h, eps_after=False, threshold=5):
    """RAdam's direction with a planted change: eps after the bias correction (Adam's
    placement, 1/(sqrt(v)/sqrt(bc2) + eps)), or another threshold for the switch."""
    t, b1, b2 = c.state["t"], h["beta1"], h["beta2"]
    m_hat = c.state["m"] / (1 - b1**t)
    rho_inf, rho_t = R.rho(b2, t)
    rect = sp.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
    adaptive = 1 / (sp.sqrt(c.state["v"]) / sp.sqrt(1 - b2**t) + h["eps"]) if eps_after \
        else sp.sqrt(1 - b2**t) / (sp.sqrt(c.state["v"]) + h["eps"])
    return replace(c, u=sp.Piecewise((m_hat * adaptive * rect, rho_t > threshold), (m_hat, True)))


def _eps_after_bias_correction(c, h):
    return _direction(c, h, eps_after=True)


def _switch_at_4(c, h):  # rho_5 = 4.99 at beta2 = 0.999: step 5 is rectified
    return _direction(c, h, threshold=4)


def test_the_planted_direction_without_a_plant_is_the_rule():
    kw = {"betas": (0.9, 0.999), "eps": 1e-3}
    assert R.RADAM_DIRECTION.name == "radam_direction"
    [d] = planted_distances("radam", kw, planted(radam_direction=_direction), with_numpy=False)
    assert d <= 1e-12


@pytest.mark.parametrize("bug", [_eps_after_bias_correction, _switch_at_4],
                         ids=lambda f: f.__name__)
def test_planted_bugs_are_caught(bug):
    kw = {"betas": (0.9, 0.999), "eps": 1e-3}
    assert min(planted_distances("radam", kw, planted(radam_direction=bug))) > 1e-6


# -- bad input, list, compare --------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{"lr": -1.0}, {"eps": -1e-3}, {"betas": (1.0, 0.9)},
                                {"betas": (0.9, -0.5)}, {"weight_decay": -0.1}], ids=str)
def test_torchs_messages_from_the_spec_and_the_constructor(kw):
    assert_refused_as_torch("radam", kw, on_cli=True)


def test_list_shows_the_entry():
    info = listed("radam", "torch.optim.RAdam")
    assert info["keys"]["betas"]["torch_default"] == ["0.9", "0.999"]
    assert set(info["state"]) == {"step", "exp_avg", "exp_avg_sq"}


def test_compare_proves_a_renamed_lr_and_finds_where_decoupled_decay_diverges():
    assert compare("radam(lr=a)", "radam(lr=b)").verdict == "proven"
    # step 1 is g + w*theta either way (the first five steps are momentum alone); the moments
    # carry the coupled term from step 2 on
    r = compare("radam(weight_decay=w)", "radam(weight_decay=w, decoupled_weight_decay=true)")
    assert r.verdict == "refuted" and r.first_divergent_step == 2
