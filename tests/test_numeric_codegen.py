"""Code generation: numpy_step and the generated programs come from derive's symbolic step.

numpy_step is checked against torch.optim (float64, 1e-12 relative) where torch has a class, and
against derive's rule evaluated at 40 digits where it has none (decay=independent and after,
buffer=zero). A planted rule shows that both comparisons can fail.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sympy as sp
import torch

from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.numeric import numpy_step
from optequiv.numeric.program import cached_program
from optequiv.numeric.reference import torch_reference
from optequiv.numeric.structure import structure_key

RTOL = 1e-12


TORCH_SPECS = ["sgd(lr=0.1)", "sgd(lr=0.1, weight_decay=0.01, maximize=true)",
               "sgd(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01)",
               "sgd(lr=0.1, momentum=0.9, nesterov=true, maximize=true, weight_decay=0.01)",
               "adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6)",
               "adam(lr=0.01, weight_decay=0.1, amsgrad=true, maximize=true)",
               "adam(lr=0.01, weight_decay=0.1, decoupled_weight_decay=true)",
               "adamw(lr=0.01, weight_decay=0.1, amsgrad=true)"]
OTHER_SPECS = ["sgd(lr=0.1, momentum=0.9, dampening=0.9, buffer=zero)",
               "sgd(lr=0.1, momentum=0.5, weight_decay=0.01, decay=independent)",
               "adamw(lr=0.01, weight_decay=0.01, decay=independent)",
               "adamw(lr=0.01, weight_decay=0.1, decay=after, amsgrad=true)"]


def gradients(steps, size=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=size) * 2, [rng.normal(size=size) for _ in range(steps)]


def run_numpy(spec, steps=25, rule_for=build_rule):
    theta, grads = gradients(steps)
    step = numpy_step(spec, rule_for=rule_for)
    state = step.init(theta)
    for g in grads:
        state, theta = step(state, theta, g)
    return theta, state


# numpy_step's canonical keywords -> the same value under torch's keyword
NUMPY_BAD = [("sgd", dict(lr=-1.0), dict(lr=-1.0)),
             ("sgd", dict(weight_decay=-0.5), dict(weight_decay=-0.5)),
             ("adam", dict(beta1=1.5), dict(betas=(1.5, 0.999))),
             ("adam", dict(beta2=-0.1), dict(betas=(0.9, -0.1))),
             ("adam", dict(eps=-1e-8), dict(eps=-1e-8)),
             ("adamw", dict(lr=float("nan")), dict(lr=float("nan")))]


@pytest.mark.parametrize("name,ours,theirs", NUMPY_BAD, ids=[str(o) for _, o, _ in NUMPY_BAD])
def test_numpy_step_rejects_bad_values_per_call_as_torch_does(name, ours, theirs):
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    with pytest.raises(ValueError) as expected:
        cls([torch.nn.Parameter(torch.zeros(2))], **theirs)
    step = numpy_step(name)
    with pytest.raises(ValueError) as got:
        step({}, np.ones(2), np.ones(2), **ours)
    assert str(got.value) == str(expected.value)
    step({}, np.ones(2), np.ones(2), lr=np.float32(0.5))  # numpy scalars are numbers too


def run_torch(spec, steps=25):
    theta, grads = gradients(steps)
    cls, kwargs = torch_reference(spec)
    p = torch.nn.Parameter(torch.tensor(theta))
    opt = cls([p], foreach=False, **kwargs)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    keys = {s.name: s.key for s in parse_spec(str(spec)).entry.states}
    state = {n: opt.state[p][k].numpy() for n, k in keys.items() if k in opt.state[p]}
    return p.detach().numpy(), state


def run_rule(spec, steps=25):
    """derive's rule itself, each coordinate at 40 significant digits."""
    theta, grads = gradients(steps)
    spec = parse_spec(spec)
    rule = build_rule(spec)
    h = {k: sp.Float(v, 40) for k, v in spec.hyper(numeric=True).items()}
    out = []
    for i in range(len(theta)):
        state, th = rule.initial_state("start"), sp.Float(theta[i], 40)
        for g in grads:
            state, th = rule.step(state, th, sp.Float(g[i], 40), h)
        out.append(float(th))
    return np.array(out)


def close(a, b) -> bool:
    return bool(np.max(np.abs(a - b)) <= RTOL * np.max(np.abs(b)))


@pytest.mark.parametrize("spec", TORCH_SPECS)
def test_numpy_step_equals_torch(spec):
    theta, state = run_numpy(spec)
    ref_theta, ref_state = run_torch(spec)
    assert close(theta, ref_theta)
    for name, value in ref_state.items():
        assert close(np.asarray(state[name], dtype=float), value), name


@pytest.mark.parametrize("spec", OTHER_SPECS)
def test_numpy_step_equals_the_rule_where_torch_has_no_class(spec):
    assert close(run_numpy(spec)[0], run_rule(spec))


def _wrong_lr(spec):  # planted: the lr stage scales by lr**2
    rule = build_rule(spec)
    return replace(rule, stages=tuple(
        replace(s, fn=lambda c, h: replace(c, u=h["lr"] ** 2 * c.u)) if s.name == "scale_lr"
        else s for s in rule.stages))


@pytest.mark.parametrize("spec", [TORCH_SPECS[2], OTHER_SPECS[2]])
def test_negative_control_a_planted_rule_is_seen_by_both_references(spec):
    theta = run_numpy(spec, rule_for=_wrong_lr)[0]
    reference = run_torch(spec)[0] if spec in TORCH_SPECS else run_rule(spec)
    assert not close(theta, reference)


def test_numpy_step_is_pure_and_takes_hyperparameters_as_keywords():
    step = numpy_step("adam(lr=0.01)")
    theta, grad = np.ones(3), np.full(3, 0.5)
    state = step.init(theta)
    kept = {k: np.copy(v) for k, v in state.items()}
    new_state, new_theta = step(state, theta, grad, lr=0.1)
    assert all(np.array_equal(state[k], kept[k]) for k in kept) and np.all(theta == 1)
    assert new_state["t"] == 1 and not np.allclose(new_theta, step(state, theta, grad)[1])
    with pytest.raises(TypeError, match="momentum"):
        step(state, theta, grad, momentum=0.9)


def test_sgd_buffer_starts_absent_and_the_first_step_creates_it():
    step = numpy_step("sgd(lr=0.1, momentum=0.9, dampening=0.5)")
    state = step.init(np.zeros(2))
    assert state == {"buf": None}
    state, _ = step(state, np.zeros(2), np.array([2.0, -4.0]))
    assert np.array_equal(state["buf"], [2.0, -4.0])  # copied, not dampened (torch)
    assert "def step(" in step.source(state) and "torch." not in step.source(state)


def test_program_shares_the_decayed_gradient_and_keeps_hyperparameters_symbolic():
    spec = parse_spec("adam(weight_decay=0.1)")
    program = cached_program(structure_key(spec, h={"weight_decay": 0.1}, flags={}),
                             frozenset())
    decayed = [e for _, e in program.temps if e.has(sp.Symbol("g_1", real=True))]
    assert len([e for e in decayed if isinstance(e, sp.Add) and len(e.args) == 2]) == 1
    assert not any(e.has(sp.Float) for _, e in program.outputs)  # values come in at run time
