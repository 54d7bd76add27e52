"""The lion entry (Chen et al. 2023): torch has no class, so the independent reference is the
paper's algorithm, written below in torch tensor ops (float64) and as an exact recurrence in
rationals; the generated optimizer (loop, foreach, fused C), numpy_step and the symbolic unroll
are checked against them, with planted bugs as negative controls."""
from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction as F

import numpy
import pytest
import sympy as sp
import torch

from entry_checks import cli
from optequiv import numeric
from optequiv.derive import symbols as Y
from optequiv.derive.compare import compare
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.derive.unroll import unroll
from optequiv.numeric.c_build import find_compiler

STEPS, RTOL = 10, 1e-12
# (spec, the paper's hyperparameters for the reference): every decay convention, maximize
CONFIGS = [
    ("lion", dict()),
    ("lion(lr=0.01)", dict(lr=0.01)),
    ("lion(lr=0.01, betas=(0.5, 0.9), weight_decay=0.1)",
     dict(lr=0.01, b1=0.5, b2=0.9, wd=0.1)),
    ("lion(lr=0.02, weight_decay=0.3, maximize=true)", dict(lr=0.02, wd=0.3, maximize=True)),
    ("lion(lr=0.02, weight_decay=0.3, decay=l2)", dict(lr=0.02, wd=0.3, decay="l2")),
    ("lion(lr=0.02, weight_decay=0.3, decay=independent)",
     dict(lr=0.02, wd=0.3, decay="independent")),
    ("lion(lr=0.02, weight_decay=0.3, decay=after)", dict(lr=0.02, wd=0.3, decay="after")),
    ("lion(lr=0.05, betas=(0.0, 0.5), weight_decay=0.2, maximize=true, decay=l2)",
     dict(lr=0.05, b1=0.0, b2=0.5, wd=0.2, maximize=True, decay="l2")),
]
IMPLS = [{}, {"foreach": True}] + ([{"fused": True}] if find_compiler() else [])


def paper_lion(theta0, grads, lr=1e-4, b1=0.9, b2=0.99, wd=0.0, maximize=False,
               decay="decoupled", dtype=torch.float64):
    """Chen et al. 2023, Alg. 2: theta <- theta(1 - lr*wd) - lr*sign(b1*m + (1 - b1)*g), then
    m <- b2*m + (1 - b2)*g; the other decay conventions as DECAYS describes them."""
    p = torch.tensor(theta0, dtype=dtype)
    m = torch.zeros_like(p)
    out = []
    for g in grads:
        g = torch.tensor(g, dtype=dtype)
        g = -g if maximize else g
        if decay == "l2":
            g = g + wd * p
        c = b1 * m + (1 - b1) * g
        if decay == "decoupled":
            p = p * (1 - lr * wd)
        elif decay == "independent":
            p = p * (1 - wd)
        p = p - lr * torch.sign(c)
        if decay == "after":
            p = p - lr * wd * p
        m = b2 * m + (1 - b2) * g
        out.append((p.clone(), m.clone()))
    return out


def data(seed=0, n=7):
    gen = torch.Generator().manual_seed(seed)
    theta0 = (torch.randn(n, generator=gen, dtype=torch.float64) * 2).tolist()
    grads = [(torch.randn(n, generator=gen, dtype=torch.float64)).tolist()
             for _ in range(STEPS)]
    return theta0, grads


def run_generated(spec, theta0, grads, rule_for=None, dtype=torch.float64, **impl):
    kw = {} if rule_for is None else {"rule_for": rule_for}
    cls = numeric.torch_optimizer(spec, **kw)
    p = torch.nn.Parameter(torch.tensor(theta0, dtype=dtype))
    opt = cls([p], **impl)
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
        state = opt.state[p]
        assert set(state) == {"exp_avg"}
        out.append((p.detach().clone(), state["exp_avg"].clone()))
    return out


def close(a, b, rtol=RTOL) -> bool:
    return all(torch.allclose(x, y, rtol=rtol, atol=1e-300) for (x, _), (y, _) in zip(a, b)) \
        and all(torch.allclose(x, y, rtol=rtol, atol=1e-300) for (_, x), (_, y) in zip(a, b))


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: next(iter(i), "loop"))
@pytest.mark.parametrize("spec, paper", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_generated_optimizer_matches_the_paper(spec, paper, impl):
    theta0, grads = data()
    assert close(run_generated(spec, theta0, grads, **impl), paper_lion(theta0, grads, **paper))


@pytest.mark.parametrize("spec, paper", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_numpy_step_matches_the_paper(spec, paper):
    theta0, grads = data(1)
    step = numeric.numpy_step(spec)
    theta = numpy.array(theta0)
    state = step.init(theta)
    for g, (p, m) in zip(grads, paper_lion(theta0, grads, **paper)):
        state, theta = step(state, theta, numpy.array(g))
        assert numpy.allclose(theta, p.numpy(), rtol=RTOL, atol=1e-300)
        assert numpy.allclose(state["m"], m.numpy(), rtol=RTOL, atol=1e-300)


@pytest.mark.parametrize("spec, paper", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_float32_distance_in_ulp(spec, paper):
    """The generated float32 loop against the paper's float32 ops. Observed over 6 seeds and
    every config: theta within 1 ulp (bit for bit except decay=after, whose generated form
    rounds theta*(1 - lr*wd) once where the paper's subtracts lr*wd*theta); m within 1.8
    float32 eps of max|m| (the EMA of gradients of both signs cancels, so its own ulp says
    nothing: the generated code computes (1 - beta2)*g then adds beta2*m, the reference the
    other order). A flipped sign would show as lr/ulp(theta), some 1e5 ulp."""
    theta0, grads = data(2, n=64)
    ours = run_generated(spec, theta0, grads, dtype=torch.float32)
    ref = paper_lion(theta0, grads, dtype=torch.float32, **paper)
    eps = torch.finfo(torch.float32).eps
    ulp = lambda x, y: int((x.view(torch.int32).long() - y.view(torch.int32).long()).abs().max())  # noqa: E731
    theta_ulp = max(ulp(a, b) for (a, _), (b, _) in zip(ours, ref))
    m_eps = max(float((a - b).abs().max() / (eps * a.abs().max())) for (_, a), (_, b)
                in zip(ours, ref))
    print(f"{spec} float32: theta {theta_ulp} ulp, m {m_eps:.2f} eps*max|m| over {STEPS} steps")
    assert theta_ulp <= 1 and m_eps <= 4


# -- negative controls: planted wrong rules ------------------------------------------------------

def _planted(fn):
    def rule_for(spec):
        rule = build_rule(spec)
        return replace(rule, stages=tuple(replace(s, fn=fn) if s.name == "lion" else s
                                          for s in rule.stages))
    return rule_for


def _signum(c, h):  # the sign of the updated momentum (signum), not of Lion's interpolation
    m = h["beta2"] * c.state["m"] + (1 - h["beta2"]) * c.u
    return replace(c, u=sp.sign(m)).with_state(m=m)


def _betas_swapped(c, h):
    b2, b1, m = h["beta1"], h["beta2"], c.state["m"]
    return replace(c, u=sp.sign(b1 * m + (1 - b1) * c.u)).with_state(m=b2 * m + (1 - b2) * c.u)


def _no_sign(c, h):  # the interpolation itself as the step (momentum SGD, not Lion)
    m = c.state["m"]
    return replace(c, u=h["beta1"] * m + (1 - h["beta1"]) * c.u).with_state(
        m=h["beta2"] * m + (1 - h["beta2"]) * c.u)


@pytest.mark.parametrize("bug", [_signum, _betas_swapped, _no_sign],
                         ids=lambda f: f.__name__)
def test_negative_control_planted_rule_is_caught(bug):
    theta0, grads = data()
    spec, paper = CONFIGS[2]
    reference = paper_lion(theta0, grads, **paper)
    assert close(run_generated(spec, theta0, grads), reference)
    assert not close(run_generated(spec, theta0, grads, rule_for=_planted(bug)), reference)
    step = numeric.numpy_step(spec, rule_for=_planted(bug))
    theta = numpy.array(theta0)
    state, theta = step(step.init(theta), theta, numpy.array(grads[0]))
    state, theta = step(state, theta, numpy.array(grads[1]))
    assert not numpy.allclose(theta, reference[1][0].numpy(), rtol=RTOL, atol=0)


def test_negative_control_a_wrong_reference_is_caught():
    theta0, grads = data()
    spec, paper = CONFIGS[2]
    assert not close(run_generated(spec, theta0, grads),
                     paper_lion(theta0, grads, **{**paper, "b1": paper["b2"], "b2": paper["b1"]}))


# -- symbolic ------------------------------------------------------------------------------------

def exact_lion(theta0, grads, lr, b1, b2, wd, maximize=False, decay="decoupled"):
    """The paper's recurrence in exact rationals (sign of a rational is exact)."""
    sign = lambda x: (x > 0) - (x < 0)  # noqa: E731
    theta, m, out = F(theta0), F(0), []
    for g in grads:
        g = -F(g) if maximize else F(g)
        if decay == "l2":
            g = g + wd * theta
        c = b1 * m + (1 - b1) * g
        theta = {"decoupled": theta * (1 - lr * wd), "independent": theta * (1 - wd)}.get(
            decay, theta) - lr * sign(c)
        if decay == "after":
            theta = theta - lr * wd * theta
        m = b2 * m + (1 - b2) * g
        out.append((theta, m))
    return out


EXACT = [("decoupled", False), ("l2", False), ("independent", True), ("after", False)]


@pytest.mark.parametrize("decay, maximize", EXACT)
def test_unroll_matches_the_exact_recurrence(decay, maximize):
    lr, b1, b2, wd = F(1, 10), F(1, 2), F(9, 10), F(1, 5)
    spec = (f"lion(lr=1/10, betas=(1/2, 9/10), weight_decay=1/5, decay={decay}, "
            f"maximize={'true' if maximize else 'false'})")
    theta0, grads = F(3, 2), [F(1, 3), F(-2, 7), F(1, 11), F(-5, 3)]
    run = unroll(spec, steps=len(grads))
    point = {Y.theta(0): sp.Rational(theta0), **{Y.grad(k + 1): sp.Rational(g)
                                                 for k, g in enumerate(grads)}}
    for k, (theta, m) in enumerate(exact_lion(theta0, grads, lr, b1, b2, wd, maximize, decay), 1):
        state, composed = run.composed[k]
        assert composed.xreplace(point) == sp.Rational(theta)
        assert state["m"].xreplace(point) == sp.Rational(m)


def test_unroll_generic_step_is_the_papers_formula():
    lr, b1, b2, lam = (Y.hyper(n) for n in ("lr", "beta1", "beta2", "lam"))
    th, g, m = Y.theta("t-1"), Y.grad("t"), Y.state("m", "t-1")
    rule, spec = build_rule("lion(weight_decay=lam)"), parse_spec("lion(weight_decay=lam)")
    state, theta = rule.step({"m": m}, th, g, spec.hyper())
    assert sp.expand(theta - (th * (1 - lr * lam) - lr * sp.sign(b1 * m + (1 - b1) * g))) == 0
    assert sp.expand(state["m"] - (b2 * m + (1 - b2) * g)) == 0


def test_unroll_cli():
    rc, out, err = cli("unroll", "lion(weight_decay=lam)", "--steps", "2")
    assert rc == 0 and "sign(beta1*m_1 + g_2*(1 - beta1))" in out, err


@pytest.mark.parametrize("spec, message", [
    ("lion(lr=-1)", "Invalid learning rate: -1"),
    ("lion(betas=(0.9, 1.5))", "Invalid beta parameter at index 1: 1.5"),
    ("lion(weight_decay=-0.1)", "Invalid weight_decay value: -0.1"),
])
def test_bad_input(spec, message):
    rc, out, err = cli("compare", spec, "lion")
    assert rc == 2 and out == "" and err.count("\n") == 1 and message in err
    values = {"lr": -1.0} if "lr=" in spec else {"betas": (0.9, 1.5)} if "betas" in spec \
        else {"weight_decay": -0.1}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        numeric.torch_optimizer("lion")([torch.nn.Parameter(torch.zeros(2))], **values)


def test_list_shows_the_entry():
    rc, out, _ = cli("list", "--json")
    info = json.loads(out)["lion"]
    assert rc == 0 and info["modelled"] and info["torch_class"] == "none"
    assert info["keys"]["lr"]["torch_default"] == "1e-4"
    assert info["keys"]["betas"]["torch_default"] == ["0.9", "0.99"]
    assert info["keys"]["decay"]["torch_default"] == "decoupled"
    assert set(info["state"]) == {"exp_avg"}


def test_compare_renaming_lr_is_proven():
    c = compare("lion(lr=a, weight_decay=lam)", "lion(lr=b, weight_decay=lam)")
    assert c.verdict == "proven" and c.mapping == {Y.hyper("b"): Y.hyper("a")}


def test_compare_l2_vs_decoupled_diverges_at_step_1():
    """lam*theta inside the sign (L2) is no decoupled decay at any coefficient: the sign sees it
    only where |g| is small against lam*|theta|, which the engine's spread points reach."""
    c = compare("lion(weight_decay=lam, decay=l2)", "lion(weight_decay=lam2)",
                want_conditions=False)
    assert c.verdict == "refuted" and c.first_divergent_step == 1
    assert c.certificate["equations"] and c.witness and c.witness[0] != c.witness[1]
