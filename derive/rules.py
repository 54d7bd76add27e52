"""Update rules: a Spec's structure as an ordered tuple of stages, plus its state and initial state.

Each optimizer's stage tuple is in its catalogue entry (derive.catalogue); the order follows
torch.optim (REFERENCE.md): the sign of the gradient first, then coupled L2, then momentum or
moments, the adaptive direction, decoupled decay, lr, and the update. Which stages are present
depends only on structural facts of the spec (flags, decay convention, the entry's switches such
as momentum != 0), never on hyperparameter values, so one Rule serves every value of its
hyperparameters; the values come in `h` at each step.
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

    def initial_state(self, start: str = "start", h: Mapping | None = None) -> dict:
        """'start': torch's fresh state (t=0, zero moments, the SGD buffer not yet created;
        an entry's own first value, such as Adagrad's initial accumulator, from `h`, by
        default the spec's own hyperparameters); 'state': a general mid-run state named
        buf_0, m_0, v_0, vmax_0, t_0."""
        if start == "state":
            return {name: symbols.state(name, 0) for name in self.state_names}
        h = self.spec.hyper() if h is None else h
        entry = self.spec.entry
        out = {}
        for name in self.state_names:
            value = entry.state(name).init(self.spec, h)
            out[name] = None if value is None else sp.sympify(value)
        return out

    def step(self, state: Mapping, theta: sp.Expr, g: sp.Expr, h: Mapping):
        """One step: (state, theta_{t-1}, g_t, hyper) -> (state_t, theta_t)."""
        carry = S.Carry(theta_prev=theta, theta=theta, u=g, state=dict(state))
        for stage in self.stages:
            carry = stage.fn(carry, h)
        return dict(carry.state), carry.theta

    def stage_names(self) -> tuple:
        return tuple(stage.name for stage in self.stages)


def build_rule(spec) -> Rule:
    spec = as_spec(spec)
    entry = spec.entry
    return Rule(spec, entry.stages(spec), tuple(entry.present(spec)))
