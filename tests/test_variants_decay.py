"""Issue 11's decay conventions: decay=proximal (timm Adan), decay=after_bias_corrected (MXNet 2.x
AdamW) and decay_scale=lr|lr_ratio|lr_squared_over_max (torch | Composer | timm's corrected
weight decay), against an exact oracle written here from each framework's own lines.

The oracle shares no code with derive/ or numeric/. It is torch's single-tensor SGD (momentum,
dampening 0) and Adam (AMSGrad over the raw v), with the decay written as each framework writes it:
  torch AdamW              param.mul_(1 - lr*weight_decay) before the step
  Composer DecoupledAdamW  decay_factor = lr/initial_lr; param.mul_(1 - decay_factor*weight_decay)
  timm corrected           wd_scale = lr**2/max_lr; param.mul_(1 - wd_scale*weight_decay)
  transformers 4.x AdamW   the step, then p.add_(p, alpha=-lr*weight_decay)
  timm Adan                the step, then param.div_(1 + lr*weight_decay)
  MXNet 2.x AdamW step()   lr *= sqrt(1 - beta2^t)/(1 - beta1^t); w -= lr*d; w -= lr*wd*w
(the decay factors of the last three scaled as the first three scale theirs). Numbers are exact
(SymPy rationals and square roots); the lr changes every step (a schedule), as a scheduler sets
group['lr']. Negative controls plant a wrong convention through rule_for=.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from optequiv.derive import stages as S
from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.compare import compare
from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.derive.unroll import unroll
from optequiv.numeric import numpy_step, torch_optimizer
from optequiv.numeric.c_build import find_compiler
from optequiv.numeric.reference import torch_reference
from optequiv.proofs.theorems import decay_variants as T

R = sp.Rational
BETAS = (R(4, 5), R(99, 100))
EPS = R(1, 1000)
SCALED = ("decoupled", "after", "proximal")
SCALES = ("lr", "lr_ratio", "lr_squared_over_max")


# -- the oracle ----------------------------------------------------------------------------------

def _rate(scale, lr, initial_lr, max_lr):
    """What multiplies weight_decay in the decay factor."""
    if scale == "lr":
        return lr  # torch: param.mul_(1 - lr*weight_decay)
    if scale == "lr_ratio":
        return lr / initial_lr  # Composer: decay_factor = lr/initial_lr
    return lr**2 / max_lr  # timm: wd_scale = lr**2/max_lr


def oracle(case: dict) -> list:
    """[theta_0, theta_1, ...] of one coordinate under `case` (see _case)."""
    fam, decay, scale = case["family"], case["decay"], case["scale"]
    wd, theta = case["wd"], case["theta0"]
    b1, b2 = BETAS
    buf, m, v, vmax, t = None, 0, 0, 0, 0
    out = [theta]
    for lr, grad in zip(case["lrs"], case["grads"]):
        rate = _rate(scale, lr, case["initial_lr"], case["max_lr"])
        g = grad + wd * theta if decay == "l2" else grad
        if decay == "decoupled":
            theta = theta * (1 - rate * wd)
        elif decay == "independent":
            theta = theta * (1 - wd)
        if fam == "sgd":
            buf = g if buf is None else case["momentum"] * buf + g
            theta = theta - lr * buf
        else:
            t += 1
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
            vmax = sp.Max(vmax, v) if case.get("amsgrad") else v
            theta = theta - lr / (1 - b1**t) * m / (sp.sqrt(vmax) / sp.sqrt(1 - b2**t) + EPS)
        if decay == "after":
            theta = theta - rate * wd * theta  # transformers: p.add_(p, alpha=-lr*wd)
        elif decay == "proximal":
            theta = theta / (1 + rate * wd)  # timm Adan: param.div_(1 + lr*wd)
        elif decay == "after_bias_corrected":
            theta = theta - lr * sp.sqrt(1 - b2**t) / (1 - b1**t) * wd * theta  # MXNet
        out.append(theta)
    return out


def mxnet_adamw(lrs, wd, theta, grads, eps) -> list:
    """MXNet 2.x AdamW.step(), line by line (eps on the raw sqrt(v), as MXNet has it)."""
    b1, b2 = BETAS
    mean = var = 0
    out = [theta]
    for t, (lr, grad) in enumerate(zip(lrs, grads), 1):
        coef1, coef2 = 1 - b1**t, 1 - b2**t
        lr = lr * sp.sqrt(coef2) / coef1
        mean, var = b1 * mean + (1 - b1) * grad, b2 * var + (1 - b2) * grad**2
        d = mean / (sp.sqrt(var) + eps)
        theta = theta - lr * d
        theta = theta - lr * wd * theta
        out.append(theta)
    return out


def _spec(case: dict, with_refs: bool = True) -> str:
    parts = [f"lr={case['lrs'][0]}", f"weight_decay={case['wd']}", f"decay={case['decay']}"]
    if case["scale"] != "lr":
        parts.append(f"decay_scale={case['scale']}")
    if with_refs:
        parts += [f"initial_lr={case['initial_lr']}", f"max_lr={case['max_lr']}"]
    if case["family"] == "sgd":
        parts.append(f"momentum={case['momentum']}")
    else:
        parts.append(f"betas=({BETAS[0]}, {BETAS[1]}), eps={EPS}")
        parts += ["amsgrad=true"] if case.get("amsgrad") else []
    return f"{'sgd' if case['family'] == 'sgd' else 'adamw'}({', '.join(parts)})"


def close(a, b, digits=30) -> bool:
    return abs(sp.N(a - b, digits + 10)) <= R(1, 10**digits) * (1 + abs(sp.N(b, 20)))


# -- cases -----------------------------------------------------------------------------------------

positive = st.sampled_from([R(1, 20), R(1, 10), R(1, 5), R(3, 10), R(1, 2)])
real = st.sampled_from([R(-3, 2), R(-1, 3), R(1, 7), R(2, 3), R(5, 4)])


@st.composite
def cases(draw, steps=3):
    family = draw(st.sampled_from(["sgd", "adam"]))
    decay = draw(st.sampled_from(SCALED + (("after_bias_corrected",) if family == "adam" else ())))
    scale = draw(st.sampled_from(SCALES)) if decay in SCALED else "lr"
    return {"family": family, "decay": decay, "scale": scale,
            "lrs": draw(st.lists(positive, min_size=steps, max_size=steps)),
            "wd": draw(positive), "theta0": draw(real),
            "grads": draw(st.lists(real, min_size=steps, max_size=steps)),
            "initial_lr": draw(positive), "max_lr": draw(positive),
            "momentum": draw(st.sampled_from([0, R(9, 10)])),
            "amsgrad": draw(st.booleans())}


def rule_thetas(case: dict) -> list:
    """The symbolic rule stepped with exact numbers, the lr set per step."""
    spec = parse_spec(_spec(case))
    rule = build_rule(spec)
    h = spec.hyper(numeric=True)
    state, theta = rule.initial_state("start", h), case["theta0"]
    out = [theta]
    for lr, g in zip(case["lrs"], case["grads"]):
        state, theta = rule.step(state, theta, g, {**h, "lr": lr})
        out.append(theta)
    return out


def generated_thetas(case: dict, *, fused=None, rule_for=build_rule, with_refs=True) -> list:
    """torch_optimizer(spec) in float64, a scheduler's lr per step (group['lr'])."""
    cls = torch_optimizer(_spec(case, with_refs), rule_for=rule_for)
    p = torch.nn.Parameter(torch.tensor([float(case["theta0"])] * 3, dtype=torch.float64))
    opt = cls([p], fused=fused)
    out = [p.detach()[0].item()]
    for lr, g in zip(case["lrs"], case["grads"]):
        opt.param_groups[0]["lr"] = float(lr)
        p.grad = torch.full((3,), float(g), dtype=torch.float64)
        opt.step()
        out.append(p.detach()[0].item())
    return out


def numpy_thetas(case: dict) -> list:
    step = numpy_step(_spec(case))
    state, theta = None, float(case["theta0"])
    out = [theta]
    for lr, g in zip(case["lrs"], case["grads"]):
        state, theta = step(state, theta, float(g), lr=float(lr))
        out.append(float(theta))
    return out


def assert_float_close(got: list, exact: list) -> None:
    for k, (x, y) in enumerate(zip(got, exact)):
        y = float(sp.N(y, 30))
        assert abs(x - y) <= 1e-12 * max(1.0, abs(y)), f"step {k}: {x} != {y}"


SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(case=cases())
def test_the_rule_is_the_frameworks_formula_exactly(case):
    exact = oracle(case)
    for k, (a, b) in enumerate(zip(rule_thetas(case), exact)):
        assert close(a, b), (k, _spec(case), a, b)


@SETTINGS
@given(case=cases())
def test_generated_optimizers_follow_the_oracle_in_float64(case):
    exact = oracle(case)
    assert_float_close(generated_thetas(case), exact)
    assert_float_close(numpy_thetas(case), exact)


@pytest.mark.skipif(find_compiler() is None, reason="no C compiler on this machine")
@pytest.mark.parametrize("decay,scale,family", [
    ("proximal", "lr", "adam"), ("proximal", "lr_ratio", "sgd"),
    ("after", "lr_squared_over_max", "adam"), ("decoupled", "lr_ratio", "adam"),
    ("decoupled", "lr_squared_over_max", "sgd"), ("after_bias_corrected", "lr", "adam")])
def test_the_fused_kernel_follows_the_oracle(decay, scale, family):
    case = {"family": family, "decay": decay, "scale": scale, "lrs": [R(1, 10), R(1, 20), R(1, 5)],
            "wd": R(3, 10), "theta0": R(2, 3), "grads": [R(1, 7), R(-3, 2), R(5, 4)],
            "initial_lr": R(1, 5), "max_lr": R(1, 2), "momentum": R(9, 10)}
    assert_float_close(generated_thetas(case, fused=True), oracle(case))


def test_unroll_carries_the_conventions_symbolically():
    # the composed iterate of `unroll` under a schedule, at numbers, is the oracle's
    case = {"family": "adam", "decay": "proximal", "scale": "lr_ratio",
            "lrs": [R(1, 10), R(1, 5)], "wd": R(3, 10), "theta0": R(2, 3),
            "grads": [R(1, 7), R(-3, 2)], "initial_lr": R(1, 20), "max_lr": R(1, 2)}
    u = unroll("adamw(lr=eta, weight_decay=lam, decay=proximal, decay_scale=lr_ratio, "
               "initial_lr=eta0, betas=(4/5, 99/100), eps=1/1000)", 2,
               schedule=[sp.Symbol("eta", nonnegative=True)])
    at = {sp.Symbol(n, nonnegative=True): v for n, v in
          (("eta_1", R(1, 10)), ("eta_2", R(1, 5)), ("lam", R(3, 10)), ("eta0", R(1, 20)))}
    at.update({sp.Symbol("theta_0", real=True): R(2, 3), sp.Symbol("g_1", real=True): R(1, 7),
               sp.Symbol("g_2", real=True): R(-3, 2)})
    assert close(u.steps[1].theta.xreplace(at), oracle(case)[2])


def test_our_after_bias_corrected_is_mxnets_adamw_where_eps_placement_cannot_matter():
    # eps = 0: MXNet's eps on the raw sqrt(v) and torch's on sqrt(v-hat) are the same step
    lrs, grads = [R(1, 10), R(1, 20), R(1, 5)], [R(1, 7), R(-3, 2), R(5, 4)]
    spec = "adamw(lr=1/10, weight_decay=3/10, decay=after_bias_corrected, " \
           "betas=(4/5, 99/100), eps=0)"
    rule, h = build_rule(spec), parse_spec(spec).hyper(numeric=True)
    state, theta, ours = rule.initial_state("start", h), R(2, 3), []
    for lr, g in zip(lrs, grads):
        state, theta = rule.step(state, theta, g, {**h, "lr": lr})
        ours.append(theta)
    mx = mxnet_adamw(lrs, R(3, 10), R(2, 3), grads, 0)[1:]
    assert all(close(a, b) for a, b in zip(ours, mx))
    # and at eps > 0 they differ: the eps placement is another key (eps_added_to), not this one
    assert not close(oracle({"family": "adam", "decay": "after_bias_corrected", "scale": "lr",
                             "lrs": lrs, "wd": R(3, 10), "theta0": R(2, 3), "grads": grads,
                             "initial_lr": 1, "max_lr": 1})[3],
                     mxnet_adamw(lrs, R(3, 10), R(2, 3), grads, EPS)[3])


def test_initial_lr_and_max_lr_default_to_the_constructors_lr():
    # Composer: group['initial_lr'] = group['lr'] at construction; timm: max_lr = defaults lr
    case = {"family": "adam", "decay": "decoupled", "scale": "lr_ratio",
            "lrs": [R(1, 10), R(1, 20), R(1, 5)], "wd": R(3, 10), "theta0": R(2, 3),
            "grads": [R(1, 7), R(-3, 2), R(5, 4)], "initial_lr": R(1, 10), "max_lr": R(1, 10)}
    for scale in ("lr_ratio", "lr_squared_over_max"):
        case["scale"] = scale
        assert_float_close(generated_thetas(case, with_refs=False), oracle(case))
    cls = torch_optimizer("adamw(decay_scale=lr_ratio)")
    a, b = (torch.nn.Parameter(torch.zeros(2)) for _ in range(2))
    opt = cls([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.5]
    # torch's LR schedulers read the same key as their base lr: the values they would set
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    assert sched.base_lrs == [0.1, 0.5]
    opt = torch_optimizer("adamw(decay_scale=lr_squared_over_max)")(
        [{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert [g["max_lr"] for g in opt.param_groups] == [0.1, 0.1]
    # a spec whose rule does not read them has no such keyword or group key
    opt = torch_optimizer("adamw")([a], lr=0.1)
    assert "initial_lr" not in opt.param_groups[0] and "max_lr" not in opt.param_groups[0]


# -- verdicts against the oracle ---------------------------------------------------------------

def _adamw(decay, lrs, wd, scale="lr", initial_lr=1, k=3):
    return oracle({"family": "adam", "decay": decay, "scale": scale, "lrs": lrs[:k], "wd": wd,
                   "theta0": R(2, 3), "grads": [R(1, 7), R(-3, 2), R(5, 4)][:k],
                   "initial_lr": initial_lr, "max_lr": 1})


def _at(mapping, point):
    return {str(k): sp.sympify(v).xreplace(point) for k, v in mapping.items()}


def test_compare_verdicts_hold_in_the_oracle():
    eta, lam, eta0 = (sp.Symbol(n, nonnegative=True) for n in ("eta", "lam", "eta0"))
    b1, b2, eps = (sp.Symbol(n, nonnegative=True) for n in ("beta1", "beta2", "eps"))
    point = {eta: R(1, 10), lam: R(3, 10), eta0: R(1, 4), b1: BETAS[0], b2: BETAS[1], eps: EPS}
    const = [R(1, 10)] * 3

    c = compare(T.AFTER, T.TORCH_FREE, want_conditions=False)
    m = _at(c.mapping, point)
    assert c.verdict == "proven"
    assert all(close(x, y) for x, y in zip(_adamw("after", const, R(3, 10)),
                                           _adamw("decoupled", [m["alpha"]] * 3, m["lam2"])))

    c = compare(T.TORCH, T.PROXIMAL, want_conditions=False)
    assert c.verdict == "refuted" and c.first_divergent_step == 1
    a, b = _adamw("decoupled", const, R(3, 10), k=1), _adamw("proximal", const, R(3, 10), k=1)
    at = {**point, sp.Symbol("theta_0", real=True): R(2, 3), sp.Symbol("g_1", real=True): R(1, 7)}
    assert not close(a[1], b[1]) and close(c.difference.xreplace(at), b[1] - a[1])

    c = compare(T.PROXIMAL, T.TORCH_FREE, want_conditions=False)
    m = _at(c.mapping, point)
    assert all(close(x, y) for x, y in zip(_adamw("proximal", const, R(3, 10)),
                                           _adamw("decoupled", [m["alpha"]] * 3, m["lam2"])))

    c = compare(T.COMPOSER, T.INDEPENDENT, want_conditions=False)
    m = _at(c.mapping, point)
    composer = _adamw("decoupled", const, R(3, 10), "lr_ratio", R(1, 4))
    assert all(close(x, y) for x, y in zip(composer, _adamw("independent", const, m["lam2"])))

    schedule = [R(1, 10), R(1, 5), R(1, 20)]
    c = compare(T.COMPOSER, T.INDEPENDENT, schedule=[eta], want_conditions=False)
    assert c.verdict == "refuted" and c.first_divergent_step == 2
    composer = _adamw("decoupled", schedule, R(3, 10), "lr_ratio", R(1, 4))
    fitted = _adamw("independent", schedule, R(3, 10) * schedule[0] / R(1, 4))
    assert close(composer[1], fitted[1]) and not close(composer[2], fitted[2])

    c = compare(T.COMPOSER, T.DECOUPLED, schedule=[eta], want_conditions=False)
    m = _at(c.mapping, point)
    assert all(close(x, y) for x, y in zip(composer, _adamw("decoupled", schedule, m["lam2"])))


# -- torch is no reference for them; planted conventions are caught -----------------------------

@pytest.mark.parametrize("text", ["adamw(lr=0.01, decay=proximal)",
                                  "adam(weight_decay=0.1, decay=after_bias_corrected)",
                                  "adamw(decay_scale=lr_ratio)",
                                  "sgd(weight_decay=0.1, decay=proximal)"])
def test_torch_reference_refuses_them_in_one_line(text):
    with pytest.raises(UserError) as caught:
        torch_reference(text)
    message = str(caught.value)
    assert "\n" not in message and "has no torch.optim class" in message


def test_torch_reference_still_takes_torchs_own_specs():
    cls, kwargs = torch_reference("adamw(lr=0.01)")
    assert cls is torch.optim.AdamW and "initial_lr" not in kwargs and "max_lr" not in kwargs


def _swap(stage_name, fn):
    def rule_for(spec):
        rule = build_rule(spec)
        return replace(rule, stages=tuple(replace(s, fn=fn) if s.name == stage_name else s
                                          for s in rule.stages))
    return rule_for


def _multiplied(c, h):  # proximal planted as the decoupled shrink of the updated theta
    return replace(c, theta=c.theta * (1 - h["lr"] * h["weight_decay"]))


PLANTED = {
    "proximal as a multiply": ("proximal", "lr", "decay_proximal", _multiplied),
    "lr_ratio ignoring initial_lr": ("decoupled", "lr_ratio", "decay_lr_ratio",
                                     S.DECAY_DECOUPLED.fn),
    "corrected decay as torch's": ("after", "lr_squared_over_max",
                                   "decay_after_lr_squared_over_max", S.DECAY_AFTER.fn),
    "MXNet decay without the bias correction": ("after_bias_corrected", "lr",
                                                "decay_after_bias_corrected", S.DECAY_AFTER.fn),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_convention_is_caught(name):
    decay, scale, stage, fn = PLANTED[name]
    case = {"family": "adam", "decay": decay, "scale": scale, "lrs": [R(1, 10), R(1, 5), R(1, 20)],
            "wd": R(3, 10), "theta0": R(2, 3), "grads": [R(1, 7), R(-3, 2), R(5, 4)],
            "initial_lr": R(1, 4), "max_lr": R(1, 2)}
    assert stage in build_rule(_spec(case)).stage_names()
    assert_float_close(generated_thetas(case), oracle(case))  # the real rule passes
    with pytest.raises(AssertionError):
        assert_float_close(generated_thetas(case, rule_for=_swap(stage, fn)), oracle(case))


# -- the catalogue and bad input ---------------------------------------------------------------

def test_every_entry_with_decay_after_offers_proximal_and_only_adams_offer_mxnets():
    for entry in ENTRIES.values():
        choices = entry.all_choices
        if "after" in entry.decays:
            assert "proximal" in entry.decays and "decay_scale" in choices, entry.name
            assert not entry.hyper("initial_lr").torch and not entry.hyper("max_lr").torch
        assert ("after_bias_corrected" in entry.decays) == (entry.name in ("adam", "adamw"))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True,
                          text=True, timeout=120)


def test_list_json_shows_the_keys_as_optequivs_own():
    keys = json.loads(run_cli("list", "--json").stdout)["adamw"]["keys"]
    assert list(keys["decay"]["choices"])[-2:] == ["proximal", "after_bias_corrected"]
    assert list(keys["decay_scale"]["choices"]) == list(SCALES)
    assert keys["initial_lr"]["torch_key"] is False and keys["initial_lr"]["typed"] == "lr"


@pytest.mark.parametrize("spec,words", [
    ("adamw(weight_decay=0.1, decay=l2, decay_scale=lr_ratio)", "decay_scale=lr_ratio rescales"),
    ("adam(weight_decay=0.1, decay=after_bias_corrected, decay_scale=lr_squared_over_max)",
     "not decay=after_bias_corrected"),
    ("adamw(decay_scale=lr_ratio, initial_lr=0)", "Invalid initial_lr value: 0"),
    ("adamw(decay_scale=lr_squared_over_max, max_lr=0)",
     "Corrected weight decay requires a positive max lr, got 0"),
    ("sgd(weight_decay=0.1, decay=after_bias_corrected)", "decay must be one of"),
])
def test_bad_input_is_one_line_and_exit_2(spec, words):
    proc = run_cli("compare", spec, "adamw")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_generated_constructor_refuses_as_the_spec_language():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="Invalid initial_lr value: 0.0"):
        torch_optimizer("adamw(decay_scale=lr_ratio)")(p, initial_lr=0.0)
    with pytest.raises(ValueError, match="requires a positive max lr, got 0.0"):
        torch_optimizer("adamw(decay_scale=lr_squared_over_max)")(p, lr=0.0)
    # a group's lr that initial_lr takes by default is held to the same domain
    with pytest.raises(ValueError, match="Invalid initial_lr value: 0.0"):
        torch_optimizer("adamw(decay_scale=lr_ratio)")([{"params": p, "lr": 0.0}], lr=0.1)
