"""torch.optim.Adagrad's catalogue entry: rule, generated optimizers, messages and verdicts.

The references: torch.optim.Adagrad (loop, foreach and fused), a hand-written exact recurrence
of torch's documented algorithm, and torch.optim.Adagrad plus the decoupled shrink for the
conventions torch lacks (optax's and Keras's). Shared checks: tests/entry_checks.py.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import sympy as sp
import torch

from entry_checks import (NEEDS_CC, assert_bad_values_refused_as_torch, assert_crosscheck,
                          assert_decay_matches_reference, assert_matches_recurrence,
                          assert_planted_is_caught, assert_proven_under, assert_refuted_at,
                          assert_signature_is_torchs, cli, listed, max_ulp,
                          numpy_against_torch, planted)
from optequiv.numeric import torch_optimizer


def hand(decay, maximize):
    """Adagrad as torch's docs write it (adagrad.py's docstring), in exact arithmetic, with the
    decay conventions written out by their definitions (base.DECAYS)."""
    def run(h, theta, grads):
        lr, lr_decay, wd, tau, eps = (h[k] for k in ("lr", "lr_decay", "weight_decay",
                                                     "initial_accumulator_value", "eps"))
        state_sum, out = tau, []
        for t, g in enumerate(grads, start=1):
            g = -g if maximize else g
            clr = lr / (1 + (t - 1) * lr_decay)
            if decay == "l2":
                g = g + wd * theta
            state_sum = state_sum + g**2
            step = clr * g / (sp.sqrt(state_sum) + eps)
            if decay == "decoupled":
                theta = theta * (1 - lr * wd) - step
            elif decay == "independent":
                theta = theta * (1 - wd) - step
            elif decay == "after":
                theta = theta - step
                theta = theta * (1 - lr * wd)
            else:
                theta = theta - step
            out.append((theta, {"t": t, "sumsq": state_sum}))
        return out
    return run


@pytest.mark.parametrize("decay,maximize,tau", list(itertools.product(
    ("l2", "decoupled", "independent", "after"), (False, True), ("0", "1/4"))))
def test_rule_is_torchs_documented_algorithm(decay, maximize, tau):
    text = (f"adagrad(lr=1/10, lr_decay=1/2, weight_decay=1/5, initial_accumulator_value={tau}, "
            f"eps=1/100, maximize={'true' if maximize else 'false'}, decay={decay})")
    assert_matches_recurrence(text, hand(decay, maximize))


def test_unroll_prints_the_decayed_lr():
    rc, out, err = cli("unroll", "adagrad(lr_decay=eta, initial_accumulator_value=tau)",
                       "--steps", "2")
    assert rc == 0, err
    assert "count -> accumulate -> adagrad_direction -> scale_lr -> apply" in out
    # step 1 uses lr itself (t - 1 = 0), step 2 lr/(1 + eta); the sum starts at tau
    assert "theta_1 = -g_1*lr/(eps + sqrt(g_1**2 + tau)) + theta_0    (composed)" in out
    assert "- g_2*lr/((eps + sqrt(g_1**2 + g_2**2 + tau))*(eta + 1)) + theta_0    (composed)" \
        in out


def torch_configs() -> list:
    """optim_db's Adagrad inputs on the CPU (torch_facts.md; its Tensor lr one aside)."""
    return ["adagrad", "adagrad(weight_decay=0.1)", "adagrad(weight_decay=0.1, maximize=true)",
            "adagrad(lr=0.1)", "adagrad(initial_accumulator_value=0.1, weight_decay=0.1)",
            "adagrad(lr=0.1, lr_decay=0.5, weight_decay=0.1)",
            "adagrad(lr=0.1, lr_decay=0.5, initial_accumulator_value=0.1, eps=1e-6, "
            "maximize=true)"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("text", torch_configs())
def test_generated_optimizer_matches_torch(text, dtype):
    ulp = max_ulp(assert_crosscheck(text, dtype=dtype,
                                    implementations=("loop", "foreach", "fused")))
    # observed: 0 ulp against torch's loop and foreach (the same ops in the same order);
    # torch's fused kernel rounds apart (within the tolerance, checked by assert_crosscheck)
    assert ulp["loop"] == ulp["foreach"] == 0, ulp


@NEEDS_CC
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("text", torch_configs()[-2:])
def test_generated_fused_matches_torch(text, dtype):
    assert_crosscheck(text, dtype=dtype, fused=True, implementations=("loop", "foreach", "fused"))


def test_tensor_lr_as_torch():
    """optim_db's Tensor lr config: lr=torch.tensor(0.001), against torch's loop."""
    params = [torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float64)) for _ in "ab"]
    theirs = torch.optim.Adagrad([params[0]], lr=torch.tensor(0.001), foreach=False)
    ours = torch_optimizer("adagrad")([params[1]], lr=torch.tensor(0.001))
    for k in range(5):
        for p in params:
            p.grad = torch.full_like(p, 0.5 - k) * torch.arange(5, dtype=torch.float64)
        theirs.step(), ours.step()
        assert torch.equal(params[0], params[1])
        assert torch.equal(theirs.state[params[0]]["sum"], ours.state[params[1]]["sum"])


@pytest.mark.parametrize("text", torch_configs()[-3:])
def test_numpy_step_matches_torch(text):
    assert numpy_against_torch(text) <= 1e-12


@pytest.mark.parametrize("decay", ["decoupled", "independent", "after"])
@pytest.mark.parametrize("extra", ["", ", lr_decay=0.5, initial_accumulator_value=0.1, "
                                       "maximize=true"])
def test_decoupled_conventions_match_torch_plus_the_shrink(decay, extra):
    assert_decay_matches_reference(f"adagrad(lr=0.1, weight_decay=0.1{extra})", decay)


def test_state_is_made_at_construction_from_the_constructors_value():
    """torch makes every parameter's state in __init__ with the constructor's
    initial_accumulator_value, even for a group that gives its own."""
    def build(cls):
        a, b = (torch.nn.Parameter(torch.ones(3)) for _ in "ab")
        opt = cls([{"params": [a]}, {"params": [b], "initial_accumulator_value": 0.7}],
                  initial_accumulator_value=0.2)
        return opt, (a, b)
    theirs, tp = build(torch.optim.Adagrad)
    ours, op = build(torch_optimizer("adagrad"))
    for p, q in zip(tp, op):
        assert set(ours.state[q]) == set(theirs.state[p]) == {"step", "sum"}
        for key in ("step", "sum"):
            a, b = ours.state[q][key], theirs.state[p][key]
            assert a.dtype == b.dtype and torch.equal(a, b), key
    late_t, late_o = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    theirs.add_param_group({"params": [late_t], "initial_accumulator_value": 0.9})
    ours.add_param_group({"params": [late_o], "initial_accumulator_value": 0.9})
    late_t.grad, late_o.grad = torch.ones(2), torch.ones(2)
    theirs.step(), ours.step()
    assert torch.equal(theirs.state[late_t]["sum"], ours.state[late_o]["sum"])  # 0.2 + 1


# -- negative controls ------------------------------------------------------------------------------

def _without_lr_decay(c, h):
    return replace(c, u=c.u / (sp.sqrt(c.state["sumsq"]) + h["eps"]))


def _eps_inside(c, h):
    clr = 1 + (c.state["t"] - 1) * h["lr_decay"]
    return replace(c, u=c.u / (sp.sqrt(c.state["sumsq"] + h["eps"]) * clr))


def _pre_increment_count(c, h):
    return replace(c, u=c.u / ((sp.sqrt(c.state["sumsq"]) + h["eps"])
                               * (1 + c.state["t"] * h["lr_decay"])))


PLANTED = {
    "without lr_decay": ("adagrad(lr=0.1, lr_decay=0.5)", _without_lr_decay, 2),
    "lr_decay from the count before its increment": ("adagrad(lr=0.1, lr_decay=0.5)",
                                                     _pre_increment_count, 1),
    "eps inside the sqrt": ("adagrad(lr=0.1, eps=1e-3)", _eps_inside, 1),
}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_negative_control_planted_rule_is_caught(bug):
    text, fn, step = PLANTED[bug]
    assert assert_planted_is_caught(text, planted(adagrad_direction=fn)) == step


# -- bad input, list, verdicts ------------------------------------------------------------------------

def test_bad_values_get_torchs_messages():
    assert_bad_values_refused_as_torch(
        "adagrad", {"lr": -1, "lr_decay": -0.5, "weight_decay": -0.1,
                    "initial_accumulator_value": -0.1, "eps": -1e-10})


def test_generated_signature_is_torchs():
    assert_signature_is_torchs("adagrad", fused_added=False)  # torch's Adagrad has fused


def test_list_shows_the_entry():
    info = listed("adagrad", "torch.optim.Adagrad")
    assert {k: v["torch_default"] for k, v in info["keys"].items() if v["torch_key"]} == {
        "lr": "1e-2", "lr_decay": "0", "weight_decay": "0", "initial_accumulator_value": "0",
        "eps": "1e-10", "maximize": False}
    assert list(info["keys"]["decay"]["choices"]) == \
        ["l2", "decoupled", "independent", "after", "proximal"]
    assert {k: v["symbol"] for k, v in info["state"].items()} == {"step": "t", "sum": "sumsq"}


def test_renamed_lr_is_proven_equivalent():
    assert_proven_under("adagrad(lr=eta, lr_decay=k, initial_accumulator_value=tau)",
                        "adagrad(lr=e2, lr_decay=k, initial_accumulator_value=tau)",
                        {"e2": "eta"})


def test_l2_and_decoupled_diverge_at_the_first_step():
    assert_refuted_at("adagrad(lr=eta, weight_decay=lam)",
                      "adagrad(lr=eta, weight_decay=lam, decay=decoupled)", 1)
