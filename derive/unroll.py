"""Unrolling a rule for k steps, open loop or closed loop, from torch's start or a mid-run state.

Each step is kept twice:
  - `recurrence`: theta_k and the state at step k in terms of step k-1's symbols (theta_{k-1},
    buf_{k-1}, ...) and g_k: small, linear in k, what a derivation displays;
  - `theta` / `state`: composed back to theta_0, the initial state and g_1 ... g_k (open loop) or
    grad_f(theta_{k-1}) ... (closed loop). Composition is lazy: for Adam the composed tree grows
    exponentially with k (theta_{k-1} enters g + wd*theta, m and v), so nothing expands it unless
    asked, and SymPy shares the subtrees in memory.
Scheduled hyperparameters (per-step learning rates) are symbols indexed by step: eta -> eta_k.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

import sympy as sp

from . import symbols as Y
from .rules import Rule, build_rule
from .spec import as_spec


class grad_f(sp.Function):
    """The gradient of an unknown loss f, evaluated at a point: closed-loop gradients. Real,
    as every gradient here: so sqrt(grad_f(x)**2) is |grad_f(x)|, as open loop prints |g_k|."""

    is_real = True
    is_extended_real = True

    def _latex(self, printer, exp=None):
        # SymPy's printer passes `exp` for a power of a function: Adam's v holds grad_f(...)**2
        text = r"\nabla f\left(%s\right)" % printer._print(self.args[0])
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)


def step_hyper(hyper: dict, schedule: Iterable[sp.Symbol], index) -> dict:
    """Hyperparameters in force at step `index`: each scheduled symbol s becomes s_index."""
    swap = {s: Y.stepped(s, index) for s in schedule}
    if not swap:
        return dict(hyper)
    return {key: value.xreplace(swap) for key, value in hyper.items()}


@dataclass
class UnrolledStep:
    k: int
    g: sp.Expr  # recurrence form of the gradient: g_k, or grad_f(theta_{k-1})
    hyper: dict
    recurrence: dict  # 'theta' and state names -> expressions in step k-1 symbols
    _parent: "Unrolled" = field(repr=False)

    @property
    def theta(self) -> sp.Expr:
        return self._parent.composed[self.k][1]

    @property
    def state(self) -> dict:
        return self._parent.composed[self.k][0]


@dataclass
class Unrolled:
    rule: Rule
    hyper: dict
    start: str  # 'start' | 'state'
    loop: str  # 'open' | 'closed'
    schedule: tuple
    initial: dict  # state at step 0 (None for torch's not-yet-created SGD buffer)
    steps: list

    @cached_property
    def composed(self) -> dict:
        """k -> (state_k, theta_k) as functions of theta_0, the initial state and g_1 ... g_k."""
        out = {0: (dict(self.initial), Y.theta(0))}
        state, theta = dict(self.initial), Y.theta(0)
        for step in self.steps:
            g = Y.grad(step.k) if self.loop == "open" else grad_f(theta)
            state, theta = self.rule.step(state, theta, g, step.hyper)
            out[step.k] = (state, theta)
        return out


def _previous_symbols(state: dict, k: int) -> dict:
    """Inputs of step k in recurrence form: symbols for step k-1, but concrete values kept where
    they are concrete (from torch's start, t_{k-1} is the number k-1 and buf is None at step 1)."""
    out = {}
    for name, value in state.items():
        concrete = value is None or (isinstance(value, sp.Expr) and value.is_number)
        out[name] = value if concrete else Y.state(name, k - 1)
    return out


def unroll(spec, steps: int, start: str = "start", loop: str = "open",
           schedule: Iterable = (), hyper: dict | None = None) -> Unrolled:
    spec = as_spec(spec)
    rule = build_rule(spec)
    hyper = spec.hyper() if hyper is None else hyper
    schedule = tuple(Y.by_name(schedule))
    Y.check_stepped_names(schedule, spec.symbols())
    initial = rule.initial_state(start, step_hyper(hyper, schedule, 1))
    result = Unrolled(rule, hyper, start, loop, schedule, initial, [])
    concrete_state = dict(initial)
    for k in range(1, steps + 1):
        h = step_hyper(hyper, schedule, k)
        inputs = _previous_symbols(concrete_state, k)
        theta_prev = Y.theta(k - 1)
        g = Y.grad(k) if loop == "open" else grad_f(theta_prev)
        new_state, new_theta = rule.step(inputs, theta_prev, g, h)
        recurrence = {"theta": new_theta, **new_state}
        result.steps.append(UnrolledStep(k, g, h, recurrence, result))
        # what stays concrete (t from the start, a buffer still None) carries to the next step
        concrete_state = {name: value for name, value in new_state.items()}
    return result
