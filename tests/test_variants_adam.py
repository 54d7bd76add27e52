"""The Adam family's variant axes (issue 11): eps_added_to, eps_root, bias_correction and
amsgrad_max_of, against an oracle of this file's own.

The oracle simulates each framework's Adam from its documented update, written out here
independently of derive's stages:
  - torch.optim.Adam's documented algorithm (eps on sqrt(v_hat); AMSGrad's max over the raw v);
  - Keras 3 Adam (`alpha = lr*sqrt(1 - beta_2^t)/(1 - beta_1^t)`, `var -= m*alpha/(sqrt(v) +
    epsilon)`, AMSGrad `v_hat = max(v_hat, v)` on the raw v; weight decay `var -= var*wd*lr`
    before the step);
  - Hugging Face transformers 4.x AdamW (`denom = sqrt(exp_avg_sq) + eps`, `step_size = lr *
    sqrt(bc2)/bc1` only if correct_bias, then `p -= lr*wd*p` on the updated p);
  - optax scale_by_adam / scale_by_amsgrad (`mu_hat/(sqrt(nu_hat + eps_root) + eps)`;
    amsgrad's `nu_max = max(nu_max, nu_hat)` over the bias-corrected nu_hat), chained with
    add_decayed_weights and the learning rate (decoupled decay).
It runs in exact arithmetic (SymPy rationals and radicals) against the rule's own steps, and
at 50 digits (mpmath) against the generated optimizers in float64.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction

import mpmath
import pytest
import sympy as sp
import torch
from hypothesis import given, settings, strategies as st

from optequiv.derive import stages as S
from optequiv.derive.catalogue import adam as A
from optequiv.derive.catalogue import radam as R
from optequiv.derive.compare import compare
from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.numeric import torch_optimizer
from optequiv.numeric.c_build import find_compiler
from optequiv.numeric.reference import torch_reference
from optequiv.numeric.testing import assert_matches_spec
from optequiv.numeric.variants import nearest_variants, same_optimizer_at

# -- the oracle ------------------------------------------------------------------------------------

EXACT = (sp.sqrt, sp.Max, lambda x: x if isinstance(x, sp.Basic) else sp.Rational(x))
WIDE = (mpmath.sqrt, max, lambda x: x if isinstance(x, mpmath.mpf) else
        mpmath.mpf(Fraction(x).numerator) / Fraction(x).denominator)


def simulate(framework: str, cfg: dict, theta0, grad, steps: int, ops=EXACT) -> list:
    """[(theta_k, state_k)] for k = 1..steps of `framework`'s Adam as documented; `grad(theta,
    k)` is the gradient at step k (open loop: it ignores theta). State under torch's keys."""
    sqrt, maximum, num = ops
    lr, b1, b2, eps = (num(cfg[k]) for k in ("lr", "beta1", "beta2", "eps"))
    wd, root = num(cfg.get("weight_decay", 0)), num(cfg.get("eps_root", 0))
    amsgrad = cfg.get("amsgrad", False) and framework != "hf"  # transformers' AdamW has none
    theta, m, v, vmax = num(theta0), num(0), num(0), num(0)
    out = []
    for t in range(1, steps + 1):
        g = grad(theta, t)
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        if framework == "torch":  # torch.optim.Adam's documentation, weight_decay 0
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
            vmax = maximum(vmax, v) if amsgrad else vmax
            v_hat = (vmax if amsgrad else v) / bc2
            theta = theta - lr * (m / bc1) / (sqrt(v_hat) + eps)
        elif framework == "keras":  # Keras 3 Adam/AdamW: decay first, on the variable
            theta = theta - theta * wd * lr
            alpha = lr * sqrt(1 - b2**t) / (1 - b1**t)
            m = m + (g - m) * (1 - b1)
            v = v + (g * g - v) * (1 - b2)
            vmax = maximum(vmax, v) if amsgrad else vmax
            theta = theta - (m * alpha) / (sqrt(vmax if amsgrad else v) + eps)
        elif framework == "hf":  # transformers 4.x AdamW
            m, v = m * b1 + (1 - b1) * g, v * b2 + (1 - b2) * g * g
            denom = sqrt(v) + eps
            step_size = lr * sqrt(bc2) / bc1 if cfg.get("correct_bias", True) else lr
            theta = theta - step_size * m / denom
            theta = theta + theta * (-lr * wd)
        elif framework == "optax":  # scale_by_adam / scale_by_amsgrad, decay, lr
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
            mu_hat, nu_hat = m / bc1, v / bc2
            if amsgrad:
                vmax = maximum(vmax, nu_hat)
                nu_hat = vmax
            update = mu_hat / (sqrt(nu_hat + root) + eps)
            theta = theta - lr * (update + wd * theta)
        else:
            raise ValueError(framework)
        state = {"step": t, "exp_avg": m, "exp_avg_sq": v}
        if amsgrad:
            state["max_exp_avg_sq"] = vmax
        out.append((theta, state))
    return out


def spec_of(framework: str, cfg: dict) -> str:
    """The optequiv spec that names `framework`'s optimizer at `cfg` (the axes' contract)."""
    keys = [f"lr={cfg['lr']}", f"betas=({cfg['beta1']}, {cfg['beta2']})", f"eps={cfg['eps']}"]
    if framework == "torch":
        keys += ["weight_decay=0"]
    else:
        keys += [f"weight_decay={cfg.get('weight_decay', 0)}"]
    keys += [f"amsgrad={'true' if cfg.get('amsgrad') and framework != 'hf' else 'false'}"]
    if framework == "keras":
        keys += ["eps_added_to=sqrt_v"]
    elif framework == "hf":
        keys += ["eps_added_to=sqrt_v", "decay=after",
                 f"bias_correction={'on' if cfg.get('correct_bias', True) else 'off'}"]
    elif framework == "optax":
        keys += [f"eps_root={cfg.get('eps_root', 0)}", "amsgrad_max_of=v_hat"]
    return f"{'adam' if framework == 'torch' else 'adamw'}({', '.join(keys)})"


def rule_run(spec: str, theta0, grads) -> list:
    """[(theta_k, state_k)] of the rule's own steps (what unroll composes), exact."""
    s = parse_spec(spec)
    rule, h = build_rule(s), s.hyper(numeric=True)
    state, theta, out = rule.initial_state("start", h), sp.Rational(theta0), []
    for g in grads:
        state, theta = rule.step(state, theta, sp.Rational(g), h)
        out.append((theta, {s.entry.state(n).key: state[n] for n in rule.state_names}))
    return out


def same_number(a, b, digits: int = 60) -> bool:
    """Exact expressions (radicals, Max) equal: their difference vanishes to `digits` digits
    (far below any difference an axis makes here: the drawn eps are >= 1/1000)."""
    d = sp.N(sp.sympify(a) - sp.sympify(b), digits)
    return d == 0 or abs(d) < sp.Float(10) ** (10 - digits)


FRAMEWORKS = ("torch", "keras", "hf", "optax")
fractions = st.fractions(min_value=-3, max_value=3, max_denominator=7)
config = st.fixed_dictionaries({
    "lr": st.sampled_from(["1/10", "1/3", "2"]),
    "beta1": st.sampled_from(["0", "1/2", "9/10"]),
    "beta2": st.sampled_from(["1/3", "9/10", "99/100"]),
    "eps": st.sampled_from(["1/1000", "1/10", "1"]),
    "weight_decay": st.sampled_from(["0", "1/10"]),
    "eps_root": st.sampled_from(["0", "1/100", "1/2"]),
    "amsgrad": st.booleans(),
    "correct_bias": st.booleans(),
})


def _text(cfg: dict) -> dict:
    return {k: (str(v) if not isinstance(v, bool) else v) for k, v in cfg.items()}


# -- the rule against the oracle, exact --------------------------------------------------------------

@settings(max_examples=25)
@given(framework=st.sampled_from(FRAMEWORKS), cfg=config, theta0=fractions,
       grads=st.lists(fractions, min_size=1, max_size=3))
def test_the_rule_is_each_frameworks_documented_update(framework, cfg, theta0, grads):
    spec = spec_of(framework, cfg)
    ours = rule_run(spec, theta0, grads)
    theirs = simulate(framework, cfg, theta0, lambda th, k: sp.Rational(grads[k - 1]), len(grads))
    for k, ((ta, sa), (tb, sb)) in enumerate(zip(ours, theirs), 1):
        assert same_number(ta, tb), (spec, k, ta, tb)
        assert set(sa) == set(sb), (spec, sorted(sa), sorted(sb))
        for key in sa:
            assert same_number(sa[key], sb[key]), (spec, k, key, sa[key], sb[key])


def test_the_oracle_tells_the_frameworks_apart():
    # the oracle's own control: on one configuration each framework is another optimizer
    cfg = {"lr": "1/10", "beta1": "1/2", "beta2": "9/10", "eps": "1/10", "weight_decay": "0",
           "eps_root": "1/10", "amsgrad": True, "correct_bias": False}
    grads = [sp.Rational(3), sp.Rational(1, 5), sp.Rational(-1, 2)]
    runs = {f: simulate(f, cfg, 1, lambda th, k: grads[k - 1], 3)[-1][0] for f in FRAMEWORKS}
    assert all(not same_number(runs[a], runs[b]) for a in FRAMEWORKS for b in FRAMEWORKS
               if a < b), runs


# -- verdicts, against the oracle ----------------------------------------------------------------

def closed_loop(framework: str, cfg: dict, c) -> list:
    """The oracle on the engine's counterexample (its loss theta^2/2: g = theta)."""
    x = c.counterexample
    assert x["loss"] == "theta**2/2"
    return [th for th, _ in simulate(framework, cfg, sp.Rational(x["theta_0"]),
                                     lambda th, k: th, x["step"])]


def _cfg(c, **more) -> dict:
    h = {k: sp.Rational(v) for k, v in c.counterexample["hyperparameters"].items()
         if k in ("lr", "beta1", "beta2", "eps")}
    return {"lr": h["lr"], "beta1": h.get("beta1", sp.Rational(9, 10)), "beta2": h["beta2"],
            "eps": h["eps"], **more}


def test_eps_on_sqrt_v_is_refuted_at_step_1_and_the_oracle_agrees():
    c = compare("adam", "adam(eps_added_to=sqrt_v)")
    assert c.verdict == "refuted" and c.first_divergent_step == 1
    torch_run = closed_loop("torch", _cfg(c), c)
    keras_run = closed_loop("keras", _cfg(c), c)
    assert same_number(torch_run[-1], c.witness[0]) and same_number(keras_run[-1], c.witness[1])
    assert not same_number(torch_run[-1], keras_run[-1])


def test_no_constant_eps_maps_the_placements_and_the_oracle_agrees():
    c = compare("adam", "adam(eps=eps_raw, eps_added_to=sqrt_v)")
    assert c.verdict == "refuted" and c.first_divergent_step == 2
    (mapping,) = c.trail[0].solutions  # step 1's, under which step 2 is compared
    (value,) = mapping.values()
    h = _cfg(c)
    eps_raw = value.xreplace({s: h[s.name] for s in value.free_symbols})
    assert same_number(eps_raw, h["eps"] * sp.sqrt(1 - h["beta2"]))
    # the oracle: Keras with that eps is torch at step 1, not at step 2, where the engine's
    # witness is the oracle's value
    torch_run, keras_run = closed_loop("torch", h, c), closed_loop("keras", {**h, "eps": eps_raw}, c)
    assert same_number(torch_run[0], keras_run[0])
    assert not same_number(torch_run[1], keras_run[1])
    assert same_number(torch_run[1], c.witness[0]) and same_number(keras_run[1], c.witness[1])


def test_bias_correction_off_against_on():
    c = compare("adam", "adam(bias_correction=off)")
    assert c.verdict == "refuted" and c.first_divergent_step == 1
    mapped = compare("adam", "adam(lr=l2, eps=e2, bias_correction=off)")
    # step 1's lr and eps can absorb the correction; no constant pair does at step 2
    assert mapped.verdict == "refuted" and mapped.first_divergent_step == 2
    on, off = (closed_loop("hf", _cfg(c, correct_bias=b), c) for b in (True, False))
    assert same_number(closed_loop("torch", _cfg(c), c)[0], c.witness[0])
    # HF with correct_bias=True is eps-on-sqrt(v): off differs from it as from torch's, at step 1
    assert not same_number(on[0], off[0])
    assert same_number(off[0], c.witness[1])


def test_amsgrad_max_of_v_against_v_hat_equal_at_step_1_differ_at_step_2():
    c = compare("adam(amsgrad=true)", "adam(amsgrad=true, amsgrad_max_of=v_hat)")
    assert c.verdict == "refuted" and c.first_divergent_step == 2
    torch_run = closed_loop("torch", _cfg(c, amsgrad=True), c)
    optax_run = closed_loop("optax", _cfg(c, amsgrad=True), c)
    assert same_number(torch_run[0], optax_run[0])  # max(0, v_1)/bc2 is max(0, v_1/bc2)
    assert not same_number(torch_run[1], optax_run[1])
    assert same_number(torch_run[1], c.witness[0]) and same_number(optax_run[1], c.witness[1])


@settings(max_examples=15)
@given(cfg=config, g1=fractions)
def test_amsgrad_max_of_agrees_on_every_first_step(cfg, g1):
    cfg = {**cfg, "amsgrad": True, "eps_root": "0", "weight_decay": "0"}
    a = simulate("torch", cfg, 1, lambda th, k: sp.Rational(g1), 1)[0][0]
    b = simulate("optax", cfg, 1, lambda th, k: sp.Rational(g1), 1)[0][0]
    assert same_number(a, b)


def test_eps_root_zero_is_torch_and_a_free_eps_root_maps_to_zero():
    c = compare("adam", "adam(eps_root=r)")
    assert c.verdict == "proven" and {str(k): str(v) for k, v in c.mapping.items()} == {"r": "0"}
    assert compare("adam(eps_root=r)", "adam(eps_root=r2)").verdict == "proven"
    assert compare("adam(eps_root=1/100)", "adam").first_divergent_step == 1


def test_values_that_change_nothing_are_the_same_rule():
    stages = build_rule("adam").stages
    assert build_rule("adam(amsgrad_max_of=v_hat)").stages == stages  # no amsgrad
    assert build_rule("adam(eps_root=0, eps_added_to=sqrt_v_hat, bias_correction=on)").stages \
        == stages
    off = build_rule("adam(amsgrad=true, bias_correction=off)").stages
    assert build_rule("adam(amsgrad=true, bias_correction=off, eps_added_to=sqrt_v, "
                      "amsgrad_max_of=v_hat)").stages == off  # off: v_hat is v
    assert build_rule("adam(eps_added_to=sqrt_v)").stages != stages


# -- nearest variants and same_optimizer_at --------------------------------------------------------

def test_nearest_variants_see_the_axes_where_they_change_the_rule():
    shown = {str(v) for v in nearest_variants("adam(lr=0.01)")}
    assert {"adam(lr=0.01, eps_added_to=sqrt_v)", "adam(lr=0.01, bias_correction=off)"} <= shown
    assert not any("amsgrad_max_of" in s for s in shown)  # no amsgrad: nothing to take a max of
    shown = {str(v) for v in nearest_variants("adam(lr=0.01, amsgrad=true)")}
    assert "adam(lr=0.01, amsgrad=true, amsgrad_max_of=v_hat)" in shown
    shown = {str(v) for v in nearest_variants("adam(lr=0.01, bias_correction=off)")}
    assert not any("eps_added_to" in s for s in shown)


def test_same_optimizer_at_proves_the_variants_that_are_the_spec_at_its_values():
    # beta2 = 0: 1 - beta2^t is 1, so v_hat is v and every axis but eps_root is moot
    at = "adam(lr=0.01, betas=(0.9, 0.0), amsgrad=true)"
    assert same_optimizer_at(at, "adam(lr=0.01, betas=(0.9, 0.0), amsgrad=true, "
                                 "amsgrad_max_of=v_hat)")
    assert same_optimizer_at(at, "adam(lr=0.01, betas=(0.9, 0.0), amsgrad=true, "
                                 "eps_added_to=sqrt_v)")
    # eps = 0: where eps goes does not matter
    assert same_optimizer_at("adam(lr=0.01, eps=0)", "adam(lr=0.01, eps=0, eps_added_to=sqrt_v)")
    # the controls: at torch's defaults they are other optimizers
    assert not same_optimizer_at("adam(lr=0.01)", "adam(lr=0.01, eps_added_to=sqrt_v)")
    assert not same_optimizer_at("adam(lr=0.01, amsgrad=true)",
                                 "adam(lr=0.01, amsgrad=true, amsgrad_max_of=v_hat)")


def test_assert_matches_spec_resolves_eps_placement_in_float64_and_names_the_variant():
    check = assert_matches_spec(lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
                                "adam(lr=0.01, weight_decay=0.1)", dtype=torch.float32)
    # at eps 1e-8 the placement moves a step by ~eps/sqrt(v): below float32, not float64
    assert [c.candidate for c in check.runs[0].unresolved] == \
        ["adam(lr=0.01, weight_decay=0.1, eps_added_to=sqrt_v)"]
    assert len(check.runs) == 2 and not check.runs[1].unresolved
    keras_like = torch_optimizer("adam(lr=0.01, eps=0.1, eps_added_to=sqrt_v)")
    with pytest.raises(AssertionError, match=r"it matches adam\(lr=0.01, eps=0.1, "
                                             r"eps_added_to=sqrt_v\) instead"):
        assert_matches_spec(keras_like, "adam(lr=0.01, eps=0.1)")


# -- the generated optimizers against the oracle, float64 ------------------------------------------

CASES = [("keras", {"lr": "1/10", "beta1": "9/10", "beta2": "99/100", "eps": "1/1000",
                    "weight_decay": "1/10", "amsgrad": True}),
         ("hf", {"lr": "1/10", "beta1": "9/10", "beta2": "99/100", "eps": "1/1000",
                 "weight_decay": "1/10", "correct_bias": True}),
         ("hf", {"lr": "1/10", "beta1": "9/10", "beta2": "99/100", "eps": "1/1000",
                 "weight_decay": "1/10", "correct_bias": False}),
         ("optax", {"lr": "1/10", "beta1": "9/10", "beta2": "99/100", "eps": "1/1000",
                    "weight_decay": "1/10", "eps_root": "1/100", "amsgrad": True}),
         ("optax", {"lr": "1/10", "beta1": "1/2", "beta2": "9/10", "eps": "1/10",
                    "eps_root": "1/1000"})]
IMPLEMENTATIONS = [{}, {"foreach": True}] + ([{"fused": True}] if find_compiler() else [])
GRADS = torch.tensor([[3.0, -0.5, 1e-3, 2.0], [-1.0, 0.25, 0.0, 2.0], [0.5, -2.0, 1e-2, -4.0],
                      [1e-3, 1.0, -1.0, 0.5], [2.0, 0.0, 3.0, -0.1], [-0.2, 0.3, 0.1, 1.0]],
                     dtype=torch.float64)


def run_generated(cls, kwargs, theta0, rule_for=None) -> list:
    opt_cls = cls if rule_for is None else torch_optimizer(cls.spec, rule_for=rule_for)
    p = torch.nn.Parameter(theta0.clone())
    opt = opt_cls([p], **kwargs)
    out = []
    for g in GRADS:
        p.grad = g.clone()
        opt.step()
        out.append((p.detach().clone(), {k: (v.clone() if torch.is_tensor(v) else v)
                                         for k, v in opt.state[p].items()}))
    return out


def oracle_wide(framework, cfg, theta0) -> list:
    """The oracle per coordinate at 50 digits: [(theta list, state lists)]."""
    with mpmath.workdps(50):
        runs = [simulate(framework, cfg, mpmath.mpf(float(x)),
                         lambda th, k, i=i: mpmath.mpf(float(GRADS[k - 1, i])), len(GRADS), WIDE)
                for i, x in enumerate(theta0)]
    return [([float(r[k][0]) for r in runs],
             {key: [float(r[k][1][key]) for r in runs] for key in runs[0][k][1]})
            for k in range(len(GRADS))]


def assert_close(ours, theirs, rtol=1e-12, what=""):
    for k, ((theta, state), (t_ref, s_ref)) in enumerate(zip(ours, theirs), 1):
        torch.testing.assert_close(theta, torch.tensor(t_ref, dtype=torch.float64), rtol=rtol,
                                   atol=1e-300, msg=lambda m: f"{what} theta at step {k}: {m}")
        assert set(state) == set(s_ref), (what, sorted(state), sorted(s_ref))
        for key, ref in s_ref.items():
            value = state[key]
            if key == "step":
                assert float(value) == ref[0], (what, k)
                continue
            torch.testing.assert_close(value, torch.tensor(ref, dtype=torch.float64), rtol=rtol,
                                       atol=1e-300, msg=lambda m: f"{what} {key} at {k}: {m}")


@pytest.mark.parametrize("framework, cfg", CASES)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda d: next(iter(d), "loop"))
def test_generated_optimizer_in_float64_is_the_oracle(framework, cfg, impl):
    theta0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    spec = spec_of(framework, _text(cfg))
    ours = run_generated(torch_optimizer(spec), impl, theta0)
    assert_close(ours, oracle_wide(framework, cfg, theta0), what=f"{spec} {impl}")


def test_eps_root_as_a_constructor_keyword_picks_the_rule_per_group():
    theta0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    cfg = {"lr": "1/10", "beta1": "9/10", "beta2": "99/100", "eps": "1/1000",
           "eps_root": "1/100"}
    plain = torch_optimizer("adamw(weight_decay=0, amsgrad_max_of=v_hat)")
    ours = run_generated(plain, {"lr": 0.1, "betas": (0.9, 0.99), "eps": 1e-3,
                                 "eps_root": 1e-2}, theta0)
    assert_close(ours, oracle_wide("optax", cfg, theta0), what="eps_root keyword")
    # the control: eps_root 0 in the group is torch's rule, which the oracle tells apart
    zero = run_generated(plain, {"lr": 0.1, "betas": (0.9, 0.99), "eps": 1e-3}, theta0)
    with pytest.raises(AssertionError):
        assert_close(zero, oracle_wide("optax", cfg, theta0), what="eps_root 0")


# -- negative controls: planted wrong rules ----------------------------------------------------------

def _eps_root_outside(c, h):
    # the planted bug: eps_root added outside the square root
    t = c.state["t"]
    v_hat = c.state["v"] / (1 - h["beta2"] ** t)
    return replace(c, u=c.state["m"] / (1 - h["beta1"] ** t)
                   / (sp.sqrt(v_hat) + h["eps_root"] + h["eps"]))


def _planting(name: str, stage: S.Stage):
    def rule_for(structure):
        rule = build_rule(structure)
        return replace(rule, stages=tuple(stage if s.name.startswith(name) else s
                                          for s in rule.stages))
    return rule_for


PLANTED = {
    "eps_root outside the sqrt": (
        "optax", CASES[4][1], _planting("adam_direction", S.Stage(
            "adam_direction_planted", _eps_root_outside, "planted"))),
    "eps on sqrt(v_hat) for Keras": (
        "keras", CASES[0][1], _planting("adam_direction", A.direction(
            "sqrt_v_hat", True, False, False))),
    "amsgrad over v for optax": (
        "optax", CASES[3][1], _planting("amsgrad", S.AMSGRAD)),
    "bias correction kept for correct_bias=False": (
        "hf", CASES[2][1], _planting("adam_direction", A.direction("sqrt_v", True, False, False))),
}


@pytest.mark.parametrize("bug", PLANTED)
def test_a_planted_wrong_axis_is_caught_by_the_oracle(bug):
    framework, cfg, rule_for = PLANTED[bug]
    theta0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    spec = spec_of(framework, _text(cfg))
    reference = oracle_wide(framework, cfg, theta0)
    assert_close(run_generated(torch_optimizer(spec), {}, theta0), reference, what=spec)
    with pytest.raises(AssertionError):
        assert_close(run_generated(torch_optimizer(spec), {}, theta0, rule_for), reference,
                     rtol=1e-6, what=f"planted {bug}")


# -- torch's class as a reference, bad input, list ---------------------------------------------------

@pytest.mark.parametrize("spec, shown", [
    ("adam(eps_added_to=sqrt_v)", "eps_added_to=sqrt_v"),
    ("adamw(bias_correction=off)", "bias_correction=off"),
    ("adam(amsgrad=true, amsgrad_max_of=v_hat)", "amsgrad_max_of=v_hat"),
    ("adam(eps_root=1e-3)", "eps_root=1e-3")])
def test_torch_reference_refuses_another_value_in_one_line(spec, shown):
    with pytest.raises(UserError) as caught:
        torch_reference(spec)
    message = str(caught.value)
    assert "\n" not in message and shown in message and "no torch.optim class" in message


def test_torch_reference_takes_the_defaults_and_values_that_change_nothing():
    for spec in ("adam(eps_root=0, eps_added_to=sqrt_v_hat, bias_correction=on)",
                 "adam(amsgrad_max_of=v_hat)", "adamw(amsgrad=true, amsgrad_max_of=v)"):
        cls, kwargs = torch_reference(spec)
        assert cls in (torch.optim.Adam, torch.optim.AdamW) and "eps_root" not in kwargs


def cli(*args):
    return subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("spec, message", [
    ("adam(eps_root=-1)", "Invalid eps_root value: -1"),
    ("adamw(eps_added_to=sqrt_m)", "eps_added_to must be one of sqrt_v_hat, sqrt_v, got sqrt_m"),
    ("adam(bias_correction=1)", "expected one of on, off"),
    ("adam(amsgrad_max_of=vmax)", "amsgrad_max_of must be one of v, v_hat, got vmax")])
def test_bad_input_is_one_line_exit_2(spec, message):
    proc = cli("compare", spec, "adam")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_the_generated_constructor_refuses_a_negative_eps_root():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=r"^Invalid eps_root value: -1.0$"):
        torch_optimizer("adam")([p], eps_root=-1.0)


def test_list_shows_the_axes_and_eps_root_as_optequivs_own():
    data = json.loads(cli("list", "--json").stdout)
    for name in ("adam", "adamw"):
        keys = data[name]["keys"]
        assert keys["eps_root"]["torch_key"] is False and keys["eps_root"]["typed"] == "0"
        assert list(keys["eps_added_to"]["choices"]) == ["sqrt_v_hat", "sqrt_v"]
        assert list(keys["bias_correction"]["choices"]) == ["on", "off"]
        assert list(keys["amsgrad_max_of"]["choices"]) == ["v", "v_hat"]


def test_the_catalogue_page_shows_each_axis_with_its_stages_docs():
    from optequiv.derive.catalogue import ENTRIES
    from optequiv.derive.printers import to_json, to_latex
    from optequiv.proofs.catalogue_pages import page

    d = page(ENTRIES["adam"])
    assert {"adam(weight_decay=weight_decay, eps_added_to=sqrt_v)",
            "adam(weight_decay=weight_decay, eps_root=eps_root)",
            "adam(weight_decay=weight_decay, bias_correction=off)",
            "adam(weight_decay=weight_decay, amsgrad=true, amsgrad_max_of=v_hat)"} <= set(d.specs)
    notes = {line["note"] for step in to_json(d)["steps"] for line in step.get("lines", [])}
    for stage in (A.direction("sqrt_v", True, False, False), A.direction("sqrt_v_hat", False,
                                                                         False, False),
                  A.direction("sqrt_v_hat", True, False, True), A.AMSGRAD_HAT):
        assert stage.doc in notes, stage.doc
    assert r"\epsilon_{\mathrm{root}}" in to_latex(d)


# -- RAdam: eps_added_to (torch's is sqrt_v) and eps_root, against optax's radam ---------------------

def simulate_radam(framework: str, cfg: dict, theta0, grads, ops=EXACT) -> list:
    """torch.optim.RAdam's documented algorithm (l_t = sqrt(1 - beta2^t)/(sqrt(v_t) + eps)) or
    optax's scale_by_radam (r*mu_hat/(sqrt(nu_hat + eps_root) + eps) once rho_t > 5: the
    threshold 5 of both), then the learning rate; no weight decay."""
    sqrt, _, num = ops
    lr, b1, b2, eps, root = (num(cfg[k]) for k in ("lr", "beta1", "beta2", "eps", "eps_root"))
    theta, m, v, out = num(theta0), num(0), num(0), []
    rho_inf = 2 / (1 - b2) - 1
    for t, g in enumerate(grads, 1):
        g = num(g)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t > 5:
            r = sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            if framework == "torch":
                step = m_hat * r * sqrt(1 - b2**t) / (sqrt(v) + eps)
            else:
                step = r * m_hat / (sqrt(v / (1 - b2**t) + root) + eps)
        else:
            step = m_hat
        theta = theta - lr * step
        out.append((theta, {"step": t, "exp_avg": m, "exp_avg_sq": v}))
    return out


def radam_spec(framework: str, cfg: dict) -> str:
    base = f"radam(lr={cfg['lr']}, betas=({cfg['beta1']}, {cfg['beta2']}), eps={cfg['eps']}"
    return base + (")" if framework == "torch" else
                   f", eps_added_to=sqrt_v_hat, eps_root={cfg['eps_root']})")


radam_config = st.fixed_dictionaries({
    "lr": st.sampled_from(["1/10", "2"]), "beta1": st.sampled_from(["0", "9/10"]),
    "beta2": st.sampled_from(["9/10", "99/100", "1/2"]), "eps": st.sampled_from(["1/1000", "1"]),
    "eps_root": st.sampled_from(["0", "1/100"])})


@settings(max_examples=10)
@given(framework=st.sampled_from(["torch", "optax"]), cfg=radam_config, theta0=fractions,
       grads=st.lists(fractions, min_size=6, max_size=7))
def test_radam_rule_is_torchs_or_optaxs_documented_update(framework, cfg, theta0, grads):
    spec = radam_spec(framework, cfg)
    ours = rule_run(spec, theta0, grads)
    theirs = simulate_radam(framework, cfg, theta0, [sp.Rational(g) for g in grads])
    for k, ((ta, sa), (tb, sb)) in enumerate(zip(ours, theirs), 1):
        assert same_number(ta, tb), (spec, k, ta, tb)
        assert all(same_number(sa[key], sb[key]) for key in sb), (spec, k)


def test_radam_eps_placement_differs_once_rectified():
    cfg = {"lr": "1/10", "beta1": "9/10", "beta2": "9/10", "eps": "1/10", "eps_root": "0"}
    grads = [sp.Rational(g) for g in (1, -2, 3, 1, 1, 2)]
    torch_run = simulate_radam("torch", cfg, 1, grads)
    optax_run = simulate_radam("optax", cfg, 1, grads)
    # the oracle's control: the first five steps are the momentum step alone in both
    assert all(same_number(a[0], b[0]) for a, b in zip(torch_run[:5], optax_run[:5]))
    assert not same_number(torch_run[5][0], optax_run[5][0])
    ours = rule_run(radam_spec("optax", cfg), 1, grads)
    assert same_number(ours[5][0], optax_run[5][0])
    assert build_rule("radam").stages == build_rule("radam(eps_added_to=sqrt_v, eps_root=0)").stages
    with pytest.raises(UserError, match="implements eps_added_to=sqrt_v only"):
        torch_reference("radam(eps_added_to=sqrt_v_hat)")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda d: next(iter(d), "loop"))
def test_generated_radam_in_float64_is_optaxs(impl):
    cfg = {"lr": "1/10", "beta1": "9/10", "beta2": "9/10", "eps": "1/1000", "eps_root": "1/100"}
    theta0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    ours = run_generated(torch_optimizer(radam_spec("optax", cfg)), impl, theta0)
    with mpmath.workdps(50):
        runs = [simulate_radam("optax", cfg, mpmath.mpf(float(x)),
                               [mpmath.mpf(float(g)) for g in GRADS[:, i]], WIDE)
                for i, x in enumerate(theta0)]
    wide = [([float(r[k][0]) for r in runs],
             {key: [float(r[k][1][key]) for r in runs] for key in runs[0][k][1]})
            for k in range(len(GRADS))]
    assert_close(ours, wide, what=f"radam optax {impl}")
    # the negative control: torch's placement, planted, is caught at the rectified step 6
    planted = _planting("radam_direction", R.RADAM_DIRECTION)
    with pytest.raises(AssertionError, match="step 6"):
        assert_close(run_generated(torch_optimizer(radam_spec("optax", cfg)), impl, theta0,
                                   planted), wide, rtol=1e-6, what="planted")


@pytest.mark.parametrize("framework, cfg", CASES)
def test_generated_numpy_step_in_float64_is_the_oracle(framework, cfg):
    import numpy

    from optequiv.numeric import numpy_step

    spec = spec_of(framework, _text(cfg))
    step, entry = numpy_step(spec), parse_spec(spec).entry
    theta, state, ours = numpy.array([1.0, -2.0, 0.5, 3.0]), None, []
    for g in GRADS:
        state, theta = step(state, theta, g.numpy().copy())
        ours.append((torch.from_numpy(numpy.array(theta)),
                     {entry.state(n).key: torch.as_tensor(numpy.array(v, dtype=numpy.float64))
                      for n, v in state.items() if v is not None}))
    assert_close(ours, oracle_wide(framework, cfg, torch.tensor([1.0, -2.0, 0.5, 3.0])),
                 what=f"numpy {spec}")
