"""The NAdam entry (derive/catalogue/nadam.py): its rule against an independent exact
recurrence, its generated optimizers against torch.optim.NAdam, planted bugs, bad input, and
the command line.

torch keeps mu_product in a 0-dim tensor of its scalar dtype (float32 unless the default dtype
is float64) and rounds it at every `mu_product *= mu`; the generated step stores it the same way
and reads it back, so its loop is bit for bit torch's loop (observed 0 ulp, float64 and
float32 parameters). torch's foreach rounds apart from its own loop (observed up to 104 ulp at
entries near 0 over 12 steps, relative error <= 1e-15 in float64). Our fused C kernel: observed
at most 1.6 eps of the dtype. torch's load_state_dict casts mu_product to the parameter's dtype
(torch's NAdam does it to itself), so a checkpoint restart is compared restart against restart,
and the harness scenario with its restart runs under a float64 default dtype.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import sympy as sp
import torch

from optequiv.derive.catalogue import nadam as catalogue_nadam
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.numeric import torch_optimizer
from optequiv.numeric.harness import Scenario

from entry_checks import (NEEDS_CC, assert_crosscheck, assert_planted_is_caught,
                          assert_proven_under, assert_refused_as_torch, assert_refuted_at,
                          assert_signature_is_torchs, assert_sparse_refused_as_torch, cli,
                          decay_moved_after, default_dtype, exact_steps, listed,
                          load_torchs_checkpoint, max_ulp, numpy_against_torch, planted,
                          same_number)
from twins import CUDA, assert_matches, feed, twins

DECAYS = ("l2", "decoupled", "independent", "after")
NO_RESTART = Scenario(resume_at=None)


# -- symbolic: the rule against torch's documented algorithm, exact ------------------------------

def reference(h: dict, decay: str, maximize: bool, theta, grads, t=0, m=0, v=0, P=1) -> list:
    """torch's documented NAdam (nadam.py's docstring and step) and the decoupled conventions of
    base.DECAYS, in exact SymPy numbers: [(theta_k, t_k, m_k, v_k, P_k)]."""
    lr, b1, b2, eps, wd, psi = (h[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay",
                                               "momentum_decay"))
    half, base = sp.Rational(1, 2), sp.Rational(24, 25)  # torch's 0.5 and 0.96
    out = []
    for g in grads:
        t += 1
        g = -g if maximize else g
        if decay == "l2":
            g = g + wd * theta
        elif decay == "decoupled":
            theta = theta * (1 - lr * wd)
        elif decay == "independent":
            theta = theta * (1 - wd)
        mu = b1 * (1 - half * base ** (t * psi))
        mu_next = b1 * (1 - half * base ** ((t + 1) * psi))
        P = P * mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        d = sp.sqrt(v / (1 - b2 ** t)) + eps
        theta = theta - lr * (1 - mu) / (1 - P) * g / d \
            - lr * mu_next / (1 - P * mu_next) * m / d
        if decay == "after":
            theta = theta - lr * wd * theta
        out.append((theta, t, m, v, P))
    return out


GRADS = ("1/2", "-3/2", "1/8")


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("start", ["start", "state"])
def test_rule_equals_the_exact_recurrence(decay, maximize, start):
    text = (f"nadam(lr=1/10, betas=(4/5, 9/10), eps=1/50, weight_decay=3/10, "
            f"momentum_decay=1/5, decay={decay}, maximize={'true' if maximize else 'false'})")
    initial = {"t": 3, "m": "-2/5", "v": "1/3", "muprod": "1/4"} if start == "state" else None
    got = exact_steps(text, "7/5", GRADS, initial)
    h = parse_spec(text).hyper(numeric=True)
    mid = {"t": 3, "m": sp.Rational(-2, 5), "v": sp.Rational(1, 3), "P": sp.Rational(1, 4)} \
        if initial else {}
    want = reference(h, decay, maximize, sp.Rational(7, 5), [sp.Rational(g) for g in GRADS],
                     **mid)
    for k, ((theta, state), (w_theta, w_t, w_m, w_v, w_p)) in enumerate(zip(got, want), 1):
        assert same_number(theta, w_theta), f"theta_{k}: {theta} != {w_theta}"
        for name, value in (("t", w_t), ("m", w_m), ("v", w_v), ("muprod", w_p)):
            assert same_number(state[name], value), f"{name}_{k}: {state[name]} != {value}"


def test_the_exact_comparison_sees_a_planted_bug():
    """The negative control of the comparison above: the mu_t-for-the-product bug below."""
    text = "nadam(lr=1/10, betas=(4/5, 9/10), eps=1/50, momentum_decay=1/5)"
    h = parse_spec(text).hyper(numeric=True)
    want = reference(h, "l2", False, sp.Rational(7, 5), [sp.Rational(g) for g in GRADS])
    got = exact_steps(text, "7/5", GRADS, rule_for=without_the_product)
    assert not same_number(got[0][0], want[0][0])
    assert same_number(exact_steps(text, "7/5", GRADS)[0][0], want[0][0])


def test_decoupled_weight_decay_is_decay_decoupled():
    assert build_rule("nadam(weight_decay=lam, decoupled_weight_decay=true)").stages == \
        build_rule("nadam(weight_decay=lam, decay=decoupled)").stages
    assert parse_spec("nadam(weight_decay=lam)").decay == "l2"


def test_unroll_on_the_command_line():
    rc, out, err = cli("unroll", "nadam(weight_decay=lam)", "--steps", "2", "--from", "state")
    assert rc == 0, err
    assert "count -> decay -> mu_product -> moments -> nadam_direction" in out
    assert "muprod_1 = beta1*muprod_0*(1 - (24/25)**(momentum_decay*(t_0 + 1))/2)" in out


# -- numeric: the generated optimizers against torch.optim.NAdam ---------------------------------

# torch's optim_db inputs for NAdam (common_optimizers.py)
CONFIGS = ["nadam", "nadam(lr=1e-3)", "nadam(momentum_decay=6e-3)", "nadam(weight_decay=0.1)",
           "nadam(weight_decay=0.1, momentum_decay=6e-3)",
           "nadam(weight_decay=0.1, momentum_decay=6e-3, decoupled_weight_decay=true)",
           "nadam(weight_decay=0.1, maximize=true)"]


def _ids(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("spec", CONFIGS, ids=_ids)
def test_float64_matches_torch_loop_and_foreach(spec):
    by = assert_crosscheck(spec, steps=12, scenario=NO_RESTART)
    assert by["loop"].max_ulp == 0  # observed: bit for bit
    assert by["foreach"].max_rel_error <= 1e-12


@pytest.mark.parametrize("spec", CONFIGS[::3], ids=_ids)
def test_float64_default_dtype_with_a_restart_is_bit_for_bit(spec):
    """Under a float64 default dtype torch's mu_product is float64, so the scenario's
    checkpoint restart (load_state_dict) keeps its dtype and the whole scenario applies."""
    with default_dtype(torch.float64):
        ulps = max_ulp(assert_crosscheck(spec, steps=12, implementations=("loop",)))
    assert ulps == {"loop": 0}, ulps


@pytest.mark.parametrize("spec", CONFIGS[::2], ids=_ids)
def test_float32_loop_is_bit_for_bit(spec):
    ulps = max_ulp(assert_crosscheck(spec, steps=12, dtype=torch.float32,
                                     implementations=("loop",), scenario=NO_RESTART))
    assert ulps == {"loop": 0}, ulps


@NEEDS_CC
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("spec", CONFIGS[1::2], ids=_ids)
def test_fused_matches_torch(spec, dtype):
    [cmp] = assert_crosscheck(spec, steps=12, dtype=dtype, fused=True, implementations=("loop",),
                              scenario=NO_RESTART).values()
    assert cmp.max_rel_error / torch.finfo(dtype).eps <= 8  # observed <= 1.6


@pytest.mark.parametrize("spec", CONFIGS[3:], ids=_ids)
def test_numpy_step_matches_torch(spec):
    with default_dtype(torch.float64):  # numpy's mu product is a float64, as torch's is here
        assert numpy_against_torch(spec) <= 1e-12


STATE = {"step", "exp_avg", "exp_avg_sq", "mu_product"}


def test_mu_product_is_a_float32_scalar_as_torchs():
    theirs, ours, a, b = twins("nadam(lr=0.05, weight_decay=0.1)", shapes=((6,),), seed=5)
    for step in range(8):
        feed(a, b, step)
        theirs.step(), ours.step()
        assert_matches(theirs, ours, a, b)
    assert set(ours.state[b[0]]) == STATE
    assert ours.state[b[0]]["mu_product"].dtype == torch.float32


def test_checkpoints_restart_as_torchs():
    """torch's checkpoint into ours, and each restarted from its own checkpoint (torch's
    load_state_dict casts mu_product to float64 here, for both): bit for bit."""
    theirs, ours, a, b = twins("nadam(lr=0.05, decoupled_weight_decay=true, weight_decay=0.1)",
                               shapes=((6,),), seed=5)
    for step in range(3):
        feed(a, b, step)
        theirs.step()
    load_torchs_checkpoint(theirs, ours, a, b, reload_torch=True)
    assert ours.state[b[0]]["mu_product"].dtype == torch.float64  # torch's cast, on both sides
    for step in range(3, 8):
        feed(a, b, step)
        theirs.step(), ours.step()
        assert_matches(theirs, ours, a, b)
    assert set(ours.state[b[0]]) == STATE


def test_signature_is_torchs_with_fused_last():
    assert_signature_is_torchs("nadam", fused_added=True)
    p = torch.nn.Parameter(torch.zeros(2))
    group = torch_optimizer("nadam(decoupled_weight_decay=true)")([p]).param_groups[0]
    assert group["decoupled_weight_decay"] is True and group["momentum_decay"] == 4e-3


def test_sparse_gradient_message_is_torchs():
    assert_sparse_refused_as_torch("nadam", "NAdam does not support sparse gradients")


@CUDA
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_matches_torch_on_cuda(dtype):
    """torch's CUDA loop and foreach kernels: to numeric.metrics' tolerance, not the bits."""
    assert_crosscheck(CONFIGS[-1], steps=12, dtype=dtype, device="cuda", scenario=NO_RESTART)

# -- negative controls: planted bugs the same cross-checks must catch ----------------------------

def _direction(c, h, product, later_product, psi=None):
    """NAdam's direction with the products given (for planting variants)."""
    t, g = c.state["t"], c.u
    hh = dict(h) if psi is None else {**h, "momentum_decay": psi}
    now, later = catalogue_nadam.mu(hh, t), catalogue_nadam.mu(hh, t + 1)
    d = sp.sqrt(c.state["v"] / (1 - h["beta2"] ** t)) + h["eps"]
    return replace(c, u=(1 - now) / (1 - product(now)) * g / d
                   + later / (1 - later_product(later)) * c.state["m"] / d)


# mu_t in place of the product mu_1*...*mu_t (and mu_{t+1} for P_t*mu_{t+1})
without_the_product = planted(
    nadam_direction=lambda c, h: _direction(c, h, lambda now: now, lambda later: later))


def product_computed_inline(spec):
    """One stage that computes the product and uses it at once: exact in derive, but the step
    no longer reads back torch's float32-rounded mu_product."""
    def product_and_direction(c, h):
        new = c.state["muprod"] * catalogue_nadam.mu(h, c.state["t"])
        return _direction(c, h, lambda now: new, lambda later: new * later).with_state(muprod=new)
    rule = build_rule(spec)
    return replace(rule, stages=tuple(replace(s, fn=product_and_direction)
                                      if s.name == "nadam_direction" else s
                                      for s in rule.stages if s.name != "mu_product"))


momentum_decay_ignored = planted(nadam_direction=lambda c, h: _direction(
    c, h, lambda now: c.state["muprod"], lambda later: c.state["muprod"] * later, psi=0))


def _eps_inside_the_sqrt(c, h):
    t, g = c.state["t"], c.u
    now, later = catalogue_nadam.mu(h, t), catalogue_nadam.mu(h, t + 1)
    d = sp.sqrt(c.state["v"] / (1 - h["beta2"] ** t) + h["eps"])
    P = c.state["muprod"]
    return replace(c, u=(1 - now) / (1 - P) * g / d + later / (1 - P * later) * c.state["m"] / d)


eps_inside_the_sqrt = planted(nadam_direction=_eps_inside_the_sqrt)
l2_after_the_moments = decay_moved_after("nadam_direction")


# bug -> (spec, plant, the first step at which it shows)
PLANTED = {
    "without the mu product": ("nadam(lr=0.01)", without_the_product, 1),
    "momentum_decay ignored": ("nadam(lr=0.01, momentum_decay=0.1)", momentum_decay_ignored, 1),
    "eps inside the sqrt": ("nadam(lr=0.01, eps=1e-3)", eps_inside_the_sqrt, 1),
    "L2 after the moments": ("nadam(lr=0.01, weight_decay=0.1)", l2_after_the_moments, 1),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_bug_is_caught(bug, dtype):
    spec, plant, step = PLANTED[bug]
    assert assert_planted_is_caught(spec, plant, dtype=dtype, steps=6,
                                    scenario=NO_RESTART) == step


def test_an_unrounded_mu_product_is_caught_in_float64():
    """Exact in derive, wrong against torch: the product kept in float64 while torch's is
    float32 moves float64 parameters by ~1e-11 relative from step 1."""
    assert assert_planted_is_caught("nadam(lr=0.01)", product_computed_inline, steps=4,
                                    scenario=NO_RESTART, margin=None) == 1


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_bug_is_caught_in_the_numpy_step(bug):
    spec, plant, _ = PLANTED[bug]
    with default_dtype(torch.float64):
        assert numpy_against_torch(spec, steps=3, rule_for=plant) > 1e-6


@NEEDS_CC
def test_planted_bug_is_caught_in_fused_mode():
    spec, plant, step = PLANTED["without the mu product"]
    assert assert_planted_is_caught(spec, plant, dtype=torch.float32, steps=6, fused=True,
                                    scenario=NO_RESTART, margin=None) == step


# -- bad input: torch's words through the spec language and through the constructor -------------

BAD = [dict(lr=-1.0), dict(eps=-1e-08), dict(betas=(1.0, 0.999)), dict(betas=(0.9, -0.5)),
       dict(weight_decay=-0.1), dict(momentum_decay=-0.004), dict(lr=-1.0, momentum_decay=-1.0),
       dict(eps=-1.0, betas=(2.0, 0.5)), dict(weight_decay=-1.0, momentum_decay=-1.0),
       dict(momentum_decay=float("nan"))]


@pytest.mark.parametrize("kwargs", BAD, ids=str)
def test_bad_values_get_torchs_message(kwargs):
    assert_refused_as_torch("nadam", kwargs)


def test_bad_input_on_the_command_line_is_one_line_exit_2():
    assert_refused_as_torch("nadam", {"momentum_decay": -1.0}, on_cli=True)
    rc, out, err = cli("compare", "nadam(decoupled_weight_decay=true, decay=l2)", "nadam")
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "decoupled_weight_decay=true contradicts decay=l2" in err


# -- the command line: list, compare -------------------------------------------------------------

def test_list_shows_the_entry():
    info = listed("nadam", "torch.optim.NAdam")
    keys = info["keys"]
    assert [k for k, v in keys.items() if v["torch_key"]] == \
        ["lr", "betas", "eps", "weight_decay", "momentum_decay", "maximize",
         "decoupled_weight_decay"]
    assert (keys["lr"]["torch_default"], keys["momentum_decay"]["torch_default"]) \
        == ("2e-3", "4e-3")
    assert keys["momentum_decay"]["symbolic_default"] == "momentum_decay"
    assert list(keys["decay"]["choices"]) == list(DECAYS) + ["proximal"]  # test_variants_decay
    assert set(info["state"]) == {"step", "exp_avg", "exp_avg_sq", "mu_product"}
    assert info["state"]["mu_product"]["symbol"] == "muprod"


def test_compare_with_itself_under_a_renaming_of_lr_is_proven():
    assert_proven_under("nadam(lr=eta, weight_decay=lam)", "nadam(lr=gamma, weight_decay=lam)",
                        {"gamma": "eta"})


def test_l2_against_decoupled_weight_decay_diverges_from_step_1():
    assert_refuted_at("nadam(weight_decay=lam)",
                      "nadam(weight_decay=lam, decoupled_weight_decay=true)", 1)
