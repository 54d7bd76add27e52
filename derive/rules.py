"""Update rules: a Spec's structure as an ordered tuple of stages, plus its state and initial state.

The order follows torch.optim (REFERENCE.md): the sign of the gradient first, then coupled L2,
then momentum or moments, the adaptive direction, decoupled decay, lr, and the update. Which
stages are present depends only on structural facts of the spec (flags, decay convention, whether
momentum and weight decay are switched on), never on hyperparameter values, so one Rule serves
every value of its hyperparameters; the values come in `h` at each step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import sympy as sp

from . import stages as S
from . import symbols
from .spec import Spec, as_spec


@dataclass(frozen=True)
class Rule:
    spec: Spec
    stages: tuple
    state_names: tuple  # e.g. ('buf',) or ('t', 'm', 'v', 'vmax')

    @property
    def elementwise(self) -> bool:
        """Every stage acts on one coordinate alone, so one scalar coordinate suffices."""
        return all(stage.elementwise for stage in self.stages)

    def initial_state(self, start: str = "start") -> dict:
        """'start': torch's fresh state (t=0, zero moments, the SGD buffer not yet created);
        'state': a general mid-run state named buf_0, m_0, v_0, vmax_0, t_0."""
        if start == "state":
            return {name: symbols.state(name, 0) for name in self.state_names}
        zero_buffer = self.spec.buffer == "zero"
        return {name: (None if name == "buf" and not zero_buffer else sp.Integer(0))
                for name in self.state_names}

    def step(self, state: Mapping, theta: sp.Expr, g: sp.Expr, h: Mapping):
        """One step: (state, theta_{t-1}, g_t, hyper) -> (state_t, theta_t)."""
        carry = S.Carry(theta_prev=theta, theta=theta, u=g, state=dict(state))
        for stage in self.stages:
            carry = stage.fn(carry, h)
        return dict(carry.state), carry.theta

    def stage_names(self) -> tuple:
        return tuple(stage.name for stage in self.stages)


def _place_decay(spec: Spec, before: list, core: list) -> tuple:
    """before, then core (momentum or moments), the lr scaling and the update, with the decay
    stage placed where the spec's convention puts it: this position is the whole difference."""
    decay = spec.decay if spec.decay_on() else None
    out = list(before)
    out += [S.DECAY_L2] if decay == "l2" else []
    out += core
    out += [S.DECAY_DECOUPLED] if decay == "decoupled" else []
    out.append(S.SCALE_LR)
    out += [S.DECAY_INDEPENDENT] if decay == "independent" else []
    out.append(S.APPLY)
    out += [S.DECAY_AFTER] if decay == "after" else []
    return tuple(out)


def _sgd_stages(spec: Spec) -> tuple:
    before = [S.NEGATE] if spec.flag("maximize") else []
    core = [S.MOMENTUM, S.NESTEROV if spec.flag("nesterov") else S.USE_BUFFER] \
        if spec.momentum_on() else []
    return _place_decay(spec, before, core)


def _adam_stages(spec: Spec) -> tuple:
    before = [S.COUNT] + ([S.NEGATE] if spec.flag("maximize") else [])
    core = [S.MOMENTS] + ([S.AMSGRAD] if spec.flag("amsgrad") else []) + [S.ADAM_DIRECTION]
    return _place_decay(spec, before, core)


def build_rule(spec) -> Rule:
    spec = as_spec(spec)
    if spec.family == "sgd":
        names = ("buf",) if spec.momentum_on() else ()
        return Rule(spec, _sgd_stages(spec), names)
    names = ("t", "m", "v") + (("vmax",) if spec.flag("amsgrad") else ())
    return Rule(spec, _adam_stages(spec), names)
