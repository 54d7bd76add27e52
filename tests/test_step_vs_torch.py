"""The symbolic step, evaluated on numbers, equals torch.optim's own float64 step.

torch.optim is the independent reference. Hypothesis draws the structure (every flag the models
cover), the hyperparameters, a state (torch's fresh one, or an arbitrary mid-run one injected
into torch's optimizer state) and a gradient. Negative controls plant wrong rules and show the
same comparison catches each of them.
"""
from __future__ import annotations

import random
from dataclasses import replace

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optequiv.derive import stages as S
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from oracle import close, symbolic_step, torch_step

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
small = st.floats(min_value=1e-4, max_value=0.5, allow_nan=False)
beta = st.sampled_from([0.0, 0.9, 0.999]) | st.floats(min_value=0.0, max_value=0.9999)
# magnitudes below 1e-100 would underflow g**2 in float64 (torch) but not at 40 digits (the
# model): a float-range artefact, not a difference of rules, so they are left out
real = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False).filter(
    lambda x: x == 0 or abs(x) > 1e-100)


@st.composite
def sgd_case(draw):
    momentum = draw(st.sampled_from([0.0, 0.5, 0.9]) | small)
    nesterov = momentum > 0 and draw(st.booleans())
    dampening = 0.0 if nesterov else draw(st.sampled_from([0.0, 0.5]) | unit)
    args = {"lr": draw(small), "momentum": momentum, "dampening": dampening,
            "weight_decay": draw(st.sampled_from([0.0]) | small),
            "nesterov": nesterov, "maximize": draw(st.booleans())}
    state = None
    if momentum > 0 and draw(st.booleans()):
        state = {"buf": draw(real)}
    return args, state


@st.composite
def adam_case(draw, name):
    args = {"lr": draw(small), "betas": (draw(beta), draw(beta)),
            "eps": draw(st.sampled_from([0.0, 1e-8, 1e-3, 0.1])),
            "weight_decay": draw(st.sampled_from([0.0]) | small),
            "amsgrad": draw(st.booleans()), "maximize": draw(st.booleans())}
    if name == "adam":
        args["decoupled_weight_decay"] = draw(st.booleans())
    state = None
    if draw(st.booleans()):
        v = draw(unit)
        state = {"t": draw(st.integers(0, 5000)), "m": draw(real), "v": v}
        if args["amsgrad"]:
            state["vmax"] = draw(unit)
    return args, state


def spec_text(name: str, args: dict) -> str:
    def fmt(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return f"({value[0]!r}, {value[1]!r})"
        return repr(value)
    return f"{name}(" + ", ".join(f"{k}={fmt(v)}" for k, v in args.items()) + ")"


def agree(spec, theta, grad, state, rule=None) -> bool:
    t_theta, t_state = torch_step(spec, theta, grad, state)
    s_theta, s_state = symbolic_step(spec, theta, grad, state, rule)
    scale = abs(theta) + abs(grad) + 1.0
    if not close(t_theta, s_theta, scale):
        return False
    return all(close(t_state[n], s_state[n], scale + abs(t_state[n])) for n in s_state
               if n in t_state)


SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(case=sgd_case(), theta=real, grad=real)
def test_sgd_step_equals_torch(case, theta, grad):
    args, state = case
    assert agree(parse_spec(spec_text("sgd", args)), theta, grad, state)


@SETTINGS
@given(case=adam_case("adam"), theta=real, grad=real)
def test_adam_step_equals_torch(case, theta, grad):
    args, state = case
    assert agree(parse_spec(spec_text("adam", args)), theta, grad, state)


@SETTINGS
@given(case=adam_case("adamw"), theta=real, grad=real)
def test_adamw_step_equals_torch(case, theta, grad):
    args, state = case
    assert agree(parse_spec(spec_text("adamw", args)), theta, grad, state)


def test_first_sgd_step_copies_the_gradient_undampened():
    spec = parse_spec("sgd(lr=0.1, momentum=0.9, dampening=0.5)")
    _, state = symbolic_step(spec, 1.0, 2.0, None)
    assert state["buf"] == 2.0  # not (1 - 0.5) * 2
    assert agree(spec, 1.0, 2.0, None)


# -- negative controls: wrong rules that the same comparison must catch --------------------------

def _with_stage(rule, name, fn):
    return replace(rule, stages=tuple(replace(s, fn=fn) if s.name == name else s
                                      for s in rule.stages))


def _undampened(c, h):
    buf = c.state["buf"]
    return c.with_state(buf=c.u if buf is None else h["momentum"] * buf + c.u)


def _eps_inside_sqrt(c, h):
    t = c.state["t"]
    m_hat = c.state["m"] / (1 - h["beta1"] ** t)
    return replace(c, u=m_hat / sp.sqrt(c.state["v"] / (1 - h["beta2"] ** t) + h["eps"]))


def _decay_moved_after_moments(rule):
    stages = [s for s in rule.stages if s.name != "decay"]
    at = [s.name for s in stages].index("adam_direction") + 1
    return replace(rule, stages=tuple(stages[:at] + [S.DECAY_DECOUPLED] + stages[at:]))


PLANTED = {
    "undampened buffer": ("sgd(lr=0.1, momentum=0.9, dampening=0.3)",
                          lambda r: _with_stage(r, "momentum", _undampened), {"buf": 0.7}),
    "eps inside the sqrt": ("adam(lr=0.01, eps=0.01)",
                            lambda r: _with_stage(r, "adam_direction", _eps_inside_sqrt),
                            {"t": 3, "m": 0.2, "v": 0.05}),
    "L2 moved after the moments": ("adam(lr=0.01, weight_decay=0.1)", _decay_moved_after_moments,
                                   {"t": 3, "m": 0.2, "v": 0.05}),
}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_negative_control_planted_bug_is_caught(bug):
    text, plant, state = PLANTED[bug]
    spec = parse_spec(text)
    wrong = plant(build_rule(spec))
    rng = random.Random(0)
    points = [(rng.uniform(-2, 2), rng.uniform(-2, 2)) for _ in range(10)]
    assert all(agree(spec, th, g, state) for th, g in points)  # the real rule passes ...
    caught = sum(not agree(spec, th, g, state, rule=wrong) for th, g in points)
    assert caught >= 8, f"planted bug '{bug}' slipped through {10 - caught} of 10 points"
