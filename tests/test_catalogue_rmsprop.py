"""torch.optim.RMSprop's catalogue entry: rule, generated optimizers, messages and verdicts.

The references: torch.optim.RMSprop (loop and foreach), a hand-written exact recurrence of torch's
documented algorithm, and torch.optim.RMSprop plus the decoupled shrink for the conventions torch
lacks (Keras's and optax's decoupled decay). Shared checks: tests/entry_checks.py.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest
import sympy as sp
import torch

from entry_checks import (NEEDS_CC, assert_bad_values_refused_as_torch, assert_crosscheck,
                          assert_decay_matches_reference, assert_kernel_matches_torch,
                          assert_matches_recurrence, assert_planted_is_caught,
                          assert_proven_under, assert_refuted_at, assert_signature_is_torchs,
                          cli, compare_json, listed, max_ulp, numpy_against_torch, planted)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def hand(decay, centered, maximize):
    """RMSprop as torch's docs write it (rmsprop.py's docstring), in exact arithmetic, with the
    decay conventions written out by their definitions (base.DECAYS)."""
    def run(h, theta, grads):
        lr, alpha, eps, wd, mu = (h[k] for k in ("lr", "alpha", "eps", "weight_decay",
                                                 "momentum"))
        v = gave = b = sp.Integer(0)
        out = []
        for g in grads:
            g = -g if maximize else g
            if decay == "l2":
                g = g + wd * theta
            v = alpha * v + (1 - alpha) * g * g
            tilde = v
            if centered:
                gave = gave * alpha + (1 - alpha) * g
                tilde = tilde - gave**2
            d = g / (sp.sqrt(tilde) + eps)
            if mu > 0:
                b = mu * b + d
                d = b
            if decay == "decoupled":
                theta = theta * (1 - lr * wd) - lr * d
            elif decay == "independent":
                theta = theta * (1 - wd) - lr * d
            elif decay == "after":
                theta = theta - lr * d
                theta = theta - lr * wd * theta
            else:
                theta = theta - lr * d
            state = {"v": v, "t": len(out) + 1}
            state.update({"gavg": gave} if centered else {})
            state.update({"buf": b} if mu > 0 else {})
            out.append((theta, state))
        return out
    return run


BRANCHES = list(itertools.product(("l2", "decoupled", "independent", "after"), (False, True),
                                  (0, 1 / 2), (False, True)))


@pytest.mark.parametrize("decay,centered,momentum,maximize", BRANCHES)
def test_rule_is_torchs_documented_algorithm(decay, centered, momentum, maximize):
    text = (f"rmsprop(lr=1/10, alpha=3/4, eps=1/100, weight_decay=1/5, momentum={momentum}, "
            f"centered={_flag(centered)}, maximize={_flag(maximize)}, decay={decay})")
    assert_matches_recurrence(text, hand(decay, centered, maximize))


def test_unroll_prints_every_branch():
    rc, out, err = cli("unroll", "rmsprop(centered=true, momentum=mu, weight_decay=lam)",
                       "--steps", "2")
    assert rc == 0, err
    assert "count -> decay -> square_avg -> grad_avg -> rms_direction -> rms_momentum" in out
    assert "v_1 = (1 - alpha)*(g_1 + lam*theta_0)**2" in out  # square_avg starts at 0
    assert "buf_2 = buf_1*mu + (g_2 + lam*theta_1)/(eps + sqrt(" in out  # eps outside the sqrt
    rc, out, _ = cli("unroll", "rmsprop", "--steps", "1")
    assert rc == 0 and "theta_1 = -g_1*lr/(eps + sqrt(1 - alpha)*Abs(g_1)) + theta_0" in out


def torch_configs() -> list:
    """optim_db's RMSprop inputs on the CPU (torch_facts.md), plus every flag alone."""
    db = ["rmsprop", "rmsprop(lr=1e-3)", "rmsprop(weight_decay=0.1)", "rmsprop(maximize=true)",
          "rmsprop(weight_decay=0.1, centered=true)",
          "rmsprop(maximize=true, weight_decay=0.1)",
          "rmsprop(weight_decay=0.1, centered=true, momentum=0.1)",
          "rmsprop(weight_decay=0.1, centered=true, momentum=0.1, maximize=true)"]
    return db + ["rmsprop(lr=0.01, alpha=0.9, eps=1e-6, momentum=0.5)",
                 "rmsprop(lr=0.01, centered=true)"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("text", torch_configs())
def test_generated_optimizer_matches_torch(text, dtype):
    ulp = max_ulp(assert_crosscheck(text, dtype=dtype))
    # observed: 0 ulp, torch's loop and foreach bit for bit (same in-place ops in the same order)
    assert ulp == {"loop": 0, "foreach": 0}, ulp


@NEEDS_CC
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("text", ["rmsprop(lr=0.01)", torch_configs()[-3]])
def test_compiled_kernel_matches_torch(text, dtype):
    # torch's RMSprop has no fused: the C kernel of the same program, forced on each group
    eps_units = assert_kernel_matches_torch(text, dtype=dtype)
    assert eps_units <= 8, eps_units  # observed 0.8-1.6 eps (normwise): rounding apart only


@pytest.mark.parametrize("text", torch_configs()[-4:])
def test_numpy_step_matches_torch(text):
    assert numpy_against_torch(text) <= 1e-12


@pytest.mark.parametrize("decay", ["decoupled", "independent", "after"])
@pytest.mark.parametrize("extra", ["", ", centered=true, momentum=0.5, maximize=true"])
def test_decoupled_conventions_match_torch_plus_the_shrink(decay, extra):
    assert_decay_matches_reference(f"rmsprop(lr=0.01, weight_decay=0.1{extra})", decay)


# -- negative controls ------------------------------------------------------------------------------

def _eps_inside(c, h):
    v = c.state["v"] - (c.state["gavg"] ** 2 if "gavg" in c.state else 0)
    return replace(c, u=c.u / sp.sqrt(v + h["eps"]))


def _uncentered(c, h):
    return replace(c, u=c.u / (sp.sqrt(c.state["v"]) + h["eps"]))


def _buffer_unnormalised(c, h):
    buf = h["momentum"] * c.state["buf"] + c.u * (sp.sqrt(c.state["v"]) + h["eps"])
    return replace(c.with_state(buf=buf), u=buf)


PLANTED = {
    "eps inside the sqrt (TensorFlow's)": ("rmsprop(lr=0.01, eps=1e-3)",
                                           planted(rms_direction=_eps_inside)),
    "centered average ignored": ("rmsprop(lr=0.01, centered=true)",
                                 planted(rms_direction=_uncentered)),
    "momentum of the raw gradient": ("rmsprop(lr=0.01, momentum=0.5)",
                                     planted(rms_momentum=_buffer_unnormalised)),
}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_negative_control_planted_rule_is_caught(bug):
    text, plant = PLANTED[bug]
    assert assert_planted_is_caught(text, plant) == 1


# -- bad input, list, verdicts ------------------------------------------------------------------------

def test_bad_values_get_torchs_messages():
    assert_bad_values_refused_as_torch(
        "rmsprop", {"lr": -1, "eps": -1e-8, "momentum": -0.5, "weight_decay": -0.1,
                    "alpha": -0.9})


def test_generated_signature_is_torchs():
    assert_signature_is_torchs("rmsprop", fused_added=True)


def test_list_shows_the_entry():
    info = listed("rmsprop", "torch.optim.RMSprop")
    assert {k: v["torch_default"] for k, v in info["keys"].items() if v["torch_key"]} == {
        "lr": "1e-2", "alpha": "0.99", "eps": "1e-8", "weight_decay": "0", "momentum": "0",
        "centered": False, "maximize": False}
    assert list(info["keys"]["decay"]["choices"]) == \
        ["l2", "decoupled", "independent", "after", "proximal"]
    assert {k: v["symbol"] for k, v in info["state"].items()} == {
        "step": "t", "square_avg": "v", "grad_avg": "gavg", "momentum_buffer": "buf"}


def test_renamed_lr_is_proven_equivalent():
    assert_proven_under("rmsprop(lr=eta, centered=true, momentum=mu, weight_decay=lam)",
                        "rmsprop(lr=e2, centered=true, momentum=mu, weight_decay=lam)",
                        {"e2": "eta"})


def test_l2_and_decoupled_diverge_at_the_first_step():
    assert_refuted_at("rmsprop(lr=eta, weight_decay=lam)",
                      "rmsprop(lr=eta, weight_decay=lam, decay=decoupled)", 1)


def test_alpha_above_one_is_torchs_and_outside_the_model():
    """torch takes alpha = 2 (it refuses only alpha < 0) and so does optequiv: the first step with
    g != 0 makes v = (1 - alpha)*g^2 < 0 and theta NaN, in torch and the generated optimizer
    alike. The engine's v >= 0 is an invariant only for alpha <= 1, so a numeric alpha > 1 is
    undecided with the reason, and a symbolic alpha is proven only where alpha <= 1 (before, both
    were proven for every alpha); alpha <= 1 itself stays unconditional."""
    from optequiv.numeric import torch_optimizer

    for cls in (torch.optim.RMSprop, torch_optimizer("rmsprop")):
        p = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
        opt = cls([p], lr=0.01, alpha=2.0)
        p.grad = torch.ones_like(p)
        opt.step()
        assert torch.isnan(p).all() and (opt.state[p]["square_avg"] < 0).all(), cls
    rc, out, _ = cli("compare", "rmsprop(lr=eta, alpha=2)", "rmsprop(lr=e2, alpha=2)", "--json")
    data = json.loads(out)
    assert rc == 3 and data["verdict"] == "undecided" and "outside the domain" in data["reason"]
    data = compare_json("rmsprop(lr=eta, alpha=a)", "rmsprop(lr=e2, alpha=a)")
    assert data["verdict"] == "proven" and data["valid_when"] == ["a <= 1"], data
    data = compare_json("rmsprop(lr=eta, alpha=1/2)", "rmsprop(lr=e2, alpha=a2)")
    assert data["verdict"] == "proven" and data["valid_when"] == [], data
    assert data["mapping"] == {"e2": "eta", "a2": "1/2"}
