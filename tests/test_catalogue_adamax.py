"""The Adamax entry (derive/catalogue/adamax.py): its rule against an independent exact
recurrence, its generated optimizers against torch.optim.Adamax, planted bugs, bad input, and
the command line.

Tolerances: float64 against torch's loop and foreach, rel 1e-12 (observed: 0 ulp, the same
kernels in the same order); float32 loop, 0 ulp (observed, bit for bit); our fused C kernel,
numeric.metrics' bound (observed at most 2.5 eps of float32/float64 over these configurations:
it computes the max and the division in registers, rounding apart from torch by an ulp a step).
"""
from __future__ import annotations

import copy
import inspect
import json
from dataclasses import replace
from fractions import Fraction

import pytest
import sympy as sp
import torch

from optequiv.derive import stages as S
from optequiv.derive.catalogue import adamax as catalogue_adamax
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.numeric import torch_optimizer
from optequiv.numeric.against_torch import crosscheck
from optequiv.numeric.c_build import find_compiler

from entry_checks import (assert_bad_values_as_torch, assert_exact, cli,
                          numpy_against_torch, unrolled)
from twins import CUDA

FUSED = pytest.mark.skipif(find_compiler() is None, reason="no C compiler on this machine")
DECAYS = ("l2", "decoupled", "independent", "after")


# -- symbolic: the rule against torch's documented algorithm, exact ------------------------------

def reference(h: dict, decay: str, maximize: bool, theta, grads, t=0, m=0, u=0) -> list:
    """torch's documented Adamax (and the decoupled conventions of base.DECAYS), in Fractions:
    [(theta_k, t_k, m_k, u_k)]."""
    lr, b1, b2, eps, wd = (h[k] for k in ("lr", "b1", "b2", "eps", "wd"))
    out = []
    for g in grads:
        t += 1
        g = -g if maximize else g
        if decay == "l2":
            g = g + wd * theta
        m = b1 * m + (1 - b1) * g
        u = max(b2 * u, abs(g) + eps)
        step = lr / (1 - b1 ** t) * m / u
        if decay == "l2":
            theta = theta - step
        elif decay == "decoupled":
            theta = theta * (1 - lr * wd) - step
        elif decay == "independent":
            theta = theta * (1 - wd) - step
        else:  # after: the step first, then the decay of the updated theta
            theta = theta - step
            theta = theta - lr * wd * theta
        out.append((theta, t, m, u))
    return out


VALUES = {"eta": "1/10", "b1": "4/5", "b2": "9/10", "e": "1/50", "lam": "3/10",
          "theta0": "7/5", "g": ["1/2", "-3/2", "1/8", "2"]}


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("start", ["start", "state"])
def test_rule_equals_the_exact_recurrence(decay, maximize, start):
    text = (f"adamax(lr=eta, betas=(b1, b2), eps=e, weight_decay=lam, decay={decay}, "
            f"maximize={'true' if maximize else 'false'})")
    initial = {"t": 3, "m": "-2/5", "uinf": "1/3"} if start == "state" else None
    got = unrolled(text, 4, VALUES, start, initial)
    h = {"lr": Fraction(1, 10), "b1": Fraction(4, 5), "b2": Fraction(9, 10),
         "eps": Fraction(1, 50), "wd": Fraction(3, 10)}
    mid = {"t": 3, "m": Fraction(-2, 5), "u": Fraction(1, 3)} if initial else {}
    want = reference(h, decay, maximize, Fraction(7, 5), [Fraction(g) for g in VALUES["g"]],
                     **mid)
    for k, ((theta, state), (w_theta, w_t, w_m, w_u)) in enumerate(zip(got, want), 1):
        assert_exact(theta, w_theta, f"theta_{k}")
        assert_exact(state["t"], Fraction(w_t), f"t_{k}")
        assert_exact(state["m"], w_m, f"m_{k}")
        assert_exact(state["uinf"], w_u, f"uinf_{k}")


def test_the_max_takes_either_side():
    """The values above exercise both arms: |g| + eps wins at some steps, beta2*u at others."""
    h = {"lr": Fraction(1, 10), "b1": Fraction(4, 5), "b2": Fraction(9, 10),
         "eps": Fraction(1, 50), "wd": 0}
    grads = [Fraction(g) for g in VALUES["g"]]
    us = [u for _, _, _, u in reference(h, "l2", False, Fraction(7, 5), grads)]
    fresh = [u == abs(g) + h["eps"] for u, g in zip(us, grads)]
    assert any(fresh[1:]) and not all(fresh[1:])


def test_unroll_on_the_command_line():
    rc, out, err = cli("unroll", "adamax(weight_decay=lam, maximize=true)", "--steps", "2")
    assert rc == 0, err
    assert "uinf_2 = Max(beta2*uinf_1, eps + Abs(" in out
    assert "count -> negate -> decay -> infinity_norm -> adamax_direction" in out


# -- numeric: the generated optimizers against torch.optim.Adamax --------------------------------

# torch's optim_db inputs for Adamax (common_optimizers.py), and a few more values
CONFIGS = ["adamax", "adamax(lr=0.1)", "adamax(weight_decay=0.1)", "adamax(maximize=true)",
           "adamax(weight_decay=0.1, maximize=true)",
           "adamax(lr=0.01, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.05)"]


def _ids(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("spec", CONFIGS, ids=_ids)
def test_float64_matches_torch_loop_and_foreach(spec):
    report = crosscheck(spec, steps=12, dtype=torch.float64, implementations=("loop", "foreach"))
    assert report.passed, report.to_json()["first_mismatch"]
    for c in report.comparisons:
        assert c.steps == 12 and c.max_rel_error <= 1e-12, (c.reference, c.max_rel_error)
        assert c.max_ulp == 0, (c.reference, c.max_ulp)  # observed: bit for bit


@pytest.mark.parametrize("spec", CONFIGS[::2], ids=_ids)
def test_float32_loop_is_bit_for_bit(spec):
    report = crosscheck(spec, steps=12, dtype=torch.float32, implementations=("loop",))
    assert report.passed and report.comparisons[0].max_ulp == 0, report.to_json()["max_ulp"]


@FUSED
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("spec", CONFIGS[1::2], ids=_ids)
def test_fused_matches_torch(spec, dtype):
    report = crosscheck(spec, steps=12, dtype=dtype, fused=True, implementations=("loop",))
    assert report.passed, report.to_json()["first_mismatch"]
    assert report.to_json()["max_rel_error_eps"] <= 8  # observed <= 2.5


@pytest.mark.parametrize("spec", ["adamax(lr=0.05)", "adamax(weight_decay=0.1, maximize=true)",
                                  "adamax(betas=(0.5, 0.9), eps=1e-3, weight_decay=0.05)"],
                         ids=_ids)
def test_numpy_step_matches_torch(spec):
    assert numpy_against_torch(spec) <= 1e-12


def test_signature_is_torchs_with_fused_last():
    ours = list(inspect.signature(torch_optimizer("adamax")).parameters.values())
    theirs = list(inspect.signature(torch.optim.Adamax).parameters.values())
    assert [(p.name, p.kind, p.default) for p in ours[:-1]] == \
        [(p.name, p.kind, p.default) for p in theirs]
    assert (ours[-1].name, ours[-1].kind, ours[-1].default) == \
        ("fused", inspect.Parameter.KEYWORD_ONLY, None)


def test_a_torch_checkpoint_continues_identically():
    g = torch.Generator().manual_seed(3)
    init = torch.randn(6, generator=g, dtype=torch.float64)
    a, b = (torch.nn.Parameter(init.clone()) for _ in range(2))
    theirs = torch.optim.Adamax([a], lr=0.05, weight_decay=0.1)
    ours = torch_optimizer("adamax")([b], lr=0.05, weight_decay=0.1)
    grads = [torch.randn(6, generator=g, dtype=torch.float64) for _ in range(6)]
    for grad in grads[:3]:
        a.grad = grad.clone()
        theirs.step()
    with torch.no_grad():
        b.copy_(a)
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))  # torch's state_dict aliases
    for grad in grads[3:]:
        a.grad, b.grad = grad.clone(), grad.clone()
        theirs.step(), ours.step()
    assert torch.equal(a, b)
    assert set(ours.state[b]) == {"step", "exp_avg", "exp_inf"} == set(theirs.state[a])
    for key, value in theirs.state[a].items():
        assert torch.equal(ours.state[b][key], value), key


def test_sparse_gradient_message_is_torchs():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="^Adamax does not support sparse gradients$"):
        torch_optimizer("adamax")([p]).step()
    with pytest.raises(RuntimeError, match="^Adamax does not support sparse gradients$"):
        torch.optim.Adamax([p]).step()


@CUDA
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_matches_torch_on_cuda(dtype):
    """torch's CUDA loop and foreach kernels: to numeric.metrics' tolerance, not the bits."""
    report = crosscheck(CONFIGS[-1], steps=12, dtype=dtype, device="cuda",
                        implementations=("loop", "foreach"))
    assert report.passed, report.to_json()["first_mismatch"]

# -- negative controls: planted bugs the same cross-checks must catch ----------------------------

def _replaced(spec, name: str, fn):
    rule = build_rule(spec)
    return replace(rule, stages=tuple(replace(s, fn=fn) if s.name == name else s
                                      for s in rule.stages))


def eps_outside_the_max(spec):
    def norm(c, h):
        g = c.u
        return c.with_state(m=h["beta1"] * c.state["m"] + (1 - h["beta1"]) * g,
                            uinf=sp.Max(h["beta2"] * c.state["uinf"], sp.Abs(g)))

    def direction(c, h):
        bc = 1 - h["beta1"] ** c.state["t"]
        return replace(c, u=c.state["m"] / (bc * (c.state["uinf"] + h["eps"])))
    rule = _replaced(spec, "infinity_norm", norm)
    return replace(rule, stages=tuple(replace(s, fn=direction) if s.name == "adamax_direction"
                                      else s for s in rule.stages))


def no_bias_correction(spec):
    return _replaced(spec, "adamax_direction",
                     lambda c, h: replace(c, u=c.state["m"] / c.state["uinf"]))


def l2_after_the_norm(spec):
    """torch's L2 moved behind the infinity norm (decoupled, as optax's adamaxw)."""
    rule = build_rule(spec)
    stages = [s for s in rule.stages if s.name != "decay"]
    at = [s.name for s in stages].index("adamax_direction") + 1
    return replace(rule, stages=tuple(stages[:at] + [S.DECAY_DECOUPLED] + stages[at:]))


PLANTED = {"eps outside the max": ("adamax(lr=0.01, eps=1e-3)", eps_outside_the_max),
           "no bias correction": ("adamax(lr=0.01)", no_bias_correction),
           "L2 after the norm": ("adamax(lr=0.01, weight_decay=0.1)", l2_after_the_norm)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_bug_is_caught(bug, dtype):
    spec, plant = PLANTED[bug]
    report = crosscheck(spec, steps=6, dtype=dtype, rule_for=plant, implementations=("loop",))
    comparison = report.comparisons[0]
    assert not report.agree, f"planted bug '{bug}' slipped through"
    assert comparison.first_mismatch.step == 1, str(comparison.first_mismatch)
    assert comparison.max_rel_error > 30 * comparison.rtol


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_bug_is_caught_in_the_numpy_step(bug):
    spec, plant = PLANTED[bug]
    assert numpy_against_torch(spec, steps=3, rule_for=plant) > 1e-6


@FUSED
def test_planted_bug_is_caught_in_fused_mode():
    spec, plant = PLANTED["eps outside the max"]
    report = crosscheck(spec, steps=6, dtype=torch.float32, rule_for=plant, fused=True,
                        implementations=("loop",))
    assert not report.agree and report.comparisons[0].first_mismatch.step == 1


# -- bad input: torch's words through the spec language and through the constructor -------------

BAD = [dict(lr=-1.0), dict(eps=-1e-08), dict(betas=(1.0, 0.999)), dict(betas=(0.9, -0.5)),
       dict(betas=(-0.1, 1.5)), dict(weight_decay=-0.1), dict(lr=-1.0, eps=-1.0),
       dict(eps=-1.0, betas=(2.0, 0.5)), dict(betas=(0.5, 2.0), weight_decay=-1.0),
       dict(lr=float("nan"))]


@pytest.mark.parametrize("kwargs", BAD, ids=str)
def test_bad_values_get_torchs_message(kwargs):
    assert_bad_values_as_torch("adamax", kwargs)


def test_bad_value_on_the_command_line_is_one_line_exit_2():
    rc, out, err = cli("compare", "adamax(lr=-1.0)", "adamax")
    assert (rc, out, err) == (2, "", "optequiv: Invalid learning rate: -1.0\n")
    rc, out, err = cli("compare", "adamax", "adamax(betas=(0.9, 1.0))")
    assert (rc, out, err) == (2, "", "optequiv: Invalid beta parameter at index 1: 1.0\n")


# -- the command line: list, compare -------------------------------------------------------------

def test_list_shows_the_entry():
    rc, out, err = cli("list", "--json")
    assert rc == 0, err
    info = json.loads(out)["adamax"]
    assert info["modelled"] and info["torch_class"] == "torch.optim.Adamax"
    keys = info["keys"]
    assert [k for k, v in keys.items() if v["torch_key"]] == \
        ["lr", "betas", "eps", "weight_decay", "maximize"]
    assert (keys["lr"]["torch_default"], keys["betas"]["typed"], keys["eps"]["torch_default"]) \
        == ("2e-3", "(0.9, 0.999)", "1e-8")
    assert list(keys["decay"]["choices"]) == list(DECAYS)
    assert set(info["state"]) == {"step", "exp_avg", "exp_inf"}
    assert info["state"]["exp_inf"]["symbol"] == "uinf"


def test_compare_with_itself_under_a_renaming_of_lr_is_proven():
    rc, out, err = cli("compare", "adamax(lr=eta, weight_decay=lam)",
                       "adamax(lr=gamma, weight_decay=lam)", "--json")
    data = json.loads(out)
    assert rc == 0 and data["verdict"] == "proven", err
    assert data["mapping"] == {"gamma": "eta"} and data["certificate"]["kind"] == "induction"


def test_l2_against_decoupled_diverges_from_step_1():
    rc, out, err = cli("compare", "adamax(weight_decay=lam)",
                       "adamax(weight_decay=lam, decay=decoupled)", "--json")
    data = json.loads(out)
    assert rc == 1 and data["verdict"] == "refuted", err
    assert data["first_divergent_step"] == 1 and data["certificate"]["kind"] == "refutation"
    # L2's decayed gradient passes through |.| and the max; decoupled decay bypasses both, so
    # they coincide only where the decay or the step vanishes
    assert data["conditions"] == [{"lam": "0"}, {"lr": "0"}]


def test_the_entry_offers_every_decay_and_torchs_first():
    entry = catalogue_adamax.ENTRIES[0]
    assert entry.decays == DECAYS and entry.decay_flag is None
    assert parse_spec("adamax(weight_decay=0.1)").decay == "l2"
