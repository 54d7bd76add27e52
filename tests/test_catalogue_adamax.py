"""The Adamax entry (derive/catalogue/adamax.py): its rule against an independent exact
recurrence, its generated optimizers against torch.optim.Adamax, planted bugs, bad input, and
the command line.

Tolerances: float64 against torch's loop and foreach, rel 1e-12 (observed: 0 ulp, the same
kernels in the same order); float32 loop, 0 ulp (observed, bit for bit); our fused C kernel,
numeric.metrics' bound (observed at most 2.5 eps of float32/float64 over these configurations:
it computes the max and the division in registers, rounding apart from torch by an ulp a step).
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
import sympy as sp
import torch

from optequiv.derive.catalogue import adamax as catalogue_adamax
from optequiv.derive.spec import parse_spec

from entry_checks import (NEEDS_CC, assert_crosscheck, assert_exact, assert_planted_is_caught,
                          assert_proven_under, assert_refused_as_torch, assert_refuted_at,
                          assert_signature_is_torchs, assert_sparse_refused_as_torch, cli,
                          decay_moved_after, listed, load_torchs_checkpoint, max_ulp,
                          numpy_against_torch, planted, unrolled)
from twins import CUDA, assert_matches, feed, twins

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
    ulps = max_ulp(assert_crosscheck(spec, steps=12))
    assert ulps == {"loop": 0, "foreach": 0}, ulps  # observed: bit for bit


@pytest.mark.parametrize("spec", CONFIGS[::2], ids=_ids)
def test_float32_loop_is_bit_for_bit(spec):
    ulps = max_ulp(assert_crosscheck(spec, steps=12, dtype=torch.float32,
                                     implementations=("loop",)))
    assert ulps == {"loop": 0}, ulps


@NEEDS_CC
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("spec", CONFIGS[1::2], ids=_ids)
def test_fused_matches_torch(spec, dtype):
    [cmp] = assert_crosscheck(spec, steps=12, dtype=dtype, fused=True,
                              implementations=("loop",)).values()
    assert cmp.max_rel_error / torch.finfo(dtype).eps <= 8  # observed <= 2.5


@pytest.mark.parametrize("spec", ["adamax(lr=0.05)", "adamax(weight_decay=0.1, maximize=true)",
                                  "adamax(betas=(0.5, 0.9), eps=1e-3, weight_decay=0.05)"],
                         ids=_ids)
def test_numpy_step_matches_torch(spec):
    assert numpy_against_torch(spec) <= 1e-12


def test_signature_is_torchs_with_fused_last():
    assert_signature_is_torchs("adamax", fused_added=True)


def test_a_torch_checkpoint_continues_identically():
    theirs, ours, a, b = twins("adamax(lr=0.05, weight_decay=0.1)", shapes=((6,),), seed=3)
    for step in range(3):
        feed(a, b, step)
        theirs.step()
    load_torchs_checkpoint(theirs, ours, a, b)
    for step in range(3, 6):
        feed(a, b, step)
        theirs.step(), ours.step()
    assert_matches(theirs, ours, a, b)
    assert set(ours.state[b[0]]) == {"step", "exp_avg", "exp_inf"}


def test_sparse_gradient_message_is_torchs():
    assert_sparse_refused_as_torch("adamax", "Adamax does not support sparse gradients")


@CUDA
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_matches_torch_on_cuda(dtype):
    """torch's CUDA loop and foreach kernels: to numeric.metrics' tolerance, not the bits."""
    assert_crosscheck(CONFIGS[-1], steps=12, dtype=dtype, device="cuda")

# -- negative controls: planted bugs the same cross-checks must catch ----------------------------

def _norm_without_eps(c, h):
    g = c.u
    return c.with_state(m=h["beta1"] * c.state["m"] + (1 - h["beta1"]) * g,
                        uinf=sp.Max(h["beta2"] * c.state["uinf"], sp.Abs(g)))


def _direction_eps_outside(c, h):
    bc = 1 - h["beta1"] ** c.state["t"]
    return replace(c, u=c.state["m"] / (bc * (c.state["uinf"] + h["eps"])))


PLANTED = {"eps outside the max": ("adamax(lr=0.01, eps=1e-3)",
                                   planted(infinity_norm=_norm_without_eps,
                                           adamax_direction=_direction_eps_outside)),
           "no bias correction": ("adamax(lr=0.01)", planted(
               adamax_direction=lambda c, h: replace(c, u=c.state["m"] / c.state["uinf"]))),
           # torch's L2 moved behind the infinity norm (decoupled, as optax's adamaxw)
           "L2 after the norm": ("adamax(lr=0.01, weight_decay=0.1)",
                                 decay_moved_after("adamax_direction"))}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_bug_is_caught(bug, dtype):
    spec, plant = PLANTED[bug]
    assert assert_planted_is_caught(spec, plant, dtype=dtype, steps=6) == 1


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_bug_is_caught_in_the_numpy_step(bug):
    spec, plant = PLANTED[bug]
    assert numpy_against_torch(spec, steps=3, rule_for=plant) > 1e-6


@NEEDS_CC
def test_planted_bug_is_caught_in_fused_mode():
    spec, plant = PLANTED["eps outside the max"]
    assert assert_planted_is_caught(spec, plant, dtype=torch.float32, steps=6, fused=True,
                                    margin=None) == 1


# -- bad input: torch's words through the spec language and through the constructor -------------

BAD = [dict(lr=-1.0), dict(eps=-1e-08), dict(betas=(1.0, 0.999)), dict(betas=(0.9, -0.5)),
       dict(betas=(-0.1, 1.5)), dict(weight_decay=-0.1), dict(lr=-1.0, eps=-1.0),
       dict(eps=-1.0, betas=(2.0, 0.5)), dict(betas=(0.5, 2.0), weight_decay=-1.0),
       dict(lr=float("nan"))]


@pytest.mark.parametrize("kwargs", BAD, ids=str)
def test_bad_values_get_torchs_message(kwargs):
    assert_refused_as_torch("adamax", kwargs)


def test_bad_value_on_the_command_line_is_one_line_exit_2():
    assert_refused_as_torch("adamax", {"lr": -1.0}, on_cli=True)
    rc, out, err = cli("compare", "adamax", "adamax(betas=(0.9, 1.0))")
    assert (rc, out, err) == (2, "", "optequiv: Invalid beta parameter at index 1: 1.0\n")


# -- the command line: list, compare -------------------------------------------------------------

def test_list_shows_the_entry():
    info = listed("adamax", "torch.optim.Adamax")
    keys = info["keys"]
    assert [k for k, v in keys.items() if v["torch_key"]] == \
        ["lr", "betas", "eps", "weight_decay", "maximize"]
    assert (keys["lr"]["torch_default"], keys["betas"]["typed"], keys["eps"]["torch_default"]) \
        == ("2e-3", "(0.9, 0.999)", "1e-8")
    assert list(keys["decay"]["choices"]) == list(DECAYS) + ["proximal"]  # test_variants_decay
    assert set(info["state"]) == {"step", "exp_avg", "exp_inf"}
    assert info["state"]["exp_inf"]["symbol"] == "uinf"


def test_compare_with_itself_under_a_renaming_of_lr_is_proven():
    assert_proven_under("adamax(lr=eta, weight_decay=lam)", "adamax(lr=gamma, weight_decay=lam)",
                        {"gamma": "eta"})


def test_l2_against_decoupled_diverges_from_step_1():
    data = assert_refuted_at("adamax(weight_decay=lam)",
                             "adamax(weight_decay=lam, decay=decoupled)", 1)
    # L2's decayed gradient passes through |.| and the max; decoupled decay bypasses both, so
    # they coincide only where the decay or the step vanishes
    assert data["conditions"] == [{"lam": "0"}, {"lr": "0"}]


def test_the_entry_offers_every_decay_and_torchs_first():
    entry = catalogue_adamax.ENTRIES[0]
    assert entry.decays == DECAYS + ("proximal",) and entry.decay_flag is None
    assert parse_spec("adamax(weight_decay=0.1)").decay == "l2"
