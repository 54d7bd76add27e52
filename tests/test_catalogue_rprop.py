"""torch.optim.Rprop as a catalogue entry: the rule against an exact hand-written recurrence,
the generated optimizers against torch.optim.Rprop (params and state after every step), planted
bugs that the comparison catches, torch's messages, `list` and `compare`."""
from __future__ import annotations

from dataclasses import replace

import pytest
import sympy as sp
import torch

from entry_checks import (assert_float64_matches_torch, assert_refused_as_torch, cli,
                          float32_runs, listed, ours, planted, planted_distances, ulp)
from optequiv.derive.catalogue import rprop as R
from optequiv.derive.compare import compare
from optequiv.derive.rules import build_rule

R_ = sp.Rational
# torch's optim_db configurations on CPU, and two where the clamp and maximize act together
CONFIGS = [{}, {"lr": 2e-4}, {"etas": (0.5, 1.5)}, {"step_sizes": (2e-6, 100)},
           {"maximize": True}, {"lr": 0.1, "step_sizes": (0.05, 0.2)},
           {"lr": 0.1, "etas": (0.3, 2.0), "step_sizes": (0.01, 0.5), "maximize": True}]


# -- symbolic ------------------------------------------------------------------------------------

def exact_rprop(theta, grads, lr, etaminus, etaplus, lo, hi, maximize=False):
    """Riedmiller & Braun's rule as torch 2.13 writes it, on exact rationals."""
    prev, size, out = 0, lr, []
    for g in grads:
        g = -g if maximize else g
        same = g * prev
        size = min(max(size * (etaplus if same > 0 else etaminus if same < 0 else 1), lo), hi)
        g = 0 if same < 0 else g
        theta = theta - sp.sign(g) * size
        prev = g
        out.append((theta, prev, size))
    return out


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("bounds", [(R_(1, 10**6), 50), (R_(1, 20), R_(1, 5))])
def test_the_rule_is_torchs_recurrence_exactly(maximize, bounds):
    rule = build_rule(f"rprop(maximize={'true' if maximize else 'false'})")
    h = {"lr": R_(1, 10), "etaminus": R_(1, 2), "etaplus": R_(6, 5),
         "step_size_min": bounds[0], "step_size_max": bounds[1]}
    grads = [R_(3, 7), R_(1, 3), R_(-2, 5), 0, R_(5, 11), R_(5, 11), R_(-1, 9), R_(-1, 9)]
    want = exact_rprop(R_(1, 2), grads, h["lr"], h["etaminus"], h["etaplus"], *bounds, maximize)
    state, theta = rule.initial_state("start", h), R_(1, 2)
    assert state == {"t": 0, "prev": 0, "delta": R_(1, 10)}  # torch: step_size = full(lr)
    for g, (w_theta, w_prev, w_size) in zip(grads, want):
        state, theta = rule.step(state, theta, sp.Integer(g) if g == 0 else g, h)
        assert (theta, state["prev"], state["delta"]) == (w_theta, w_prev, w_size)


def test_unroll_shows_the_sign_switch_and_the_clamp():
    rc, out, err = cli("unroll", "rprop(lr=0.1)", "--steps", "2")
    assert rc == 0, err
    assert "Piecewise((etaplus, g_2*prev_1 > 0), (etaminus, g_2*prev_1 < 0), (1, True))" in out
    assert "Min(step_size_max, Max(" in out


# -- numbers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", CONFIGS, ids=str)
def test_float64_params_and_state_match_torch_after_every_step(kw):
    assert_float64_matches_torch("rprop", kw)


@pytest.mark.parametrize("kw", CONFIGS[::2], ids=str)
def test_float32_is_bit_for_bit_torchs_loop(kw):
    # every operation of the step is one correctly rounded operation (a product, a compare,
    # a multiply by a factor rounded to float32 as torch's `sign[sign > 0] = etaplus`, a
    # clamp, a sign, a subtraction), in torch's order: measured 0 ulp, loop and fused
    want, runs = float32_runs("rprop", kw)
    assert {k: ulp(got, want) for k, got in runs.items()} == dict.fromkeys(runs, 0)


def _no_clamp(c, h):
    g, prev, size = c.u, c.state["prev"], c.state["delta"]
    same = g * prev
    size = size * sp.Piecewise((h["etaplus"], same > 0), (h["etaminus"], same < 0), (1, True))
    kept = sp.Piecewise((0, same < 0), (g, True))
    return replace(c, u=sp.sign(kept) * size).with_state(prev=kept, delta=size)


def _no_zeroing(c, h):  # the gradient kept where its sign flipped
    out = R._rprop(c, h)
    return replace(out, u=sp.sign(c.u) * out.state["delta"]).with_state(prev=c.u)


@pytest.mark.parametrize("bug", [_no_clamp, _no_zeroing], ids=lambda f: f.__name__)
def test_planted_bugs_are_caught(bug):
    kw = {"lr": 0.1, "step_sizes": (0.05, 0.2)}
    assert min(planted_distances("rprop", kw, planted(rprop=bug))) > 1e-3


# -- bad input, list, compare --------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{"lr": -1.0}, {"etas": (1.5, 1.2)}, {"etas": (0.5, 0.9)},
                                {"etas": (0.0, 1.2)}], ids=str)
def test_torchs_messages_from_the_spec_and_the_constructor(kw):
    assert_refused_as_torch("rprop", kw, on_cli=True)


def test_no_weight_decay_as_in_torch():
    rc, _, err = cli("compare", "rprop(weight_decay=0.1)", "rprop")
    assert rc == 2 and "unknown key 'weight_decay' for rprop" in err
    with pytest.raises(TypeError):
        ours("rprop")([torch.nn.Parameter(torch.zeros(1))], weight_decay=0.1)


def test_list_shows_the_entry():
    info = listed("rprop", "torch.optim.Rprop")
    assert info["keys"]["etas"]["torch_default"] == ["0.5", "1.2"]
    assert info["state"]["step_size"]["symbol"] == "delta"


def test_compare_proves_a_renamed_lr_and_refutes_another_etaplus():
    r = compare("rprop(lr=a)", "rprop(lr=b)")
    assert r.verdict == "proven"
    # etaplus acts from step 2, where g_1*g_2 > 0: a region the sign switch splits off
    r = compare("rprop(lr=1/10)", "rprop(lr=1/10, etas=(1/2, 3/2))", steps=3)
    assert r.verdict == "refuted" and r.first_divergent_step == 2
