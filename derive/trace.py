"""A rule's generic step as a list of assignments, one per stage, for display.

Running the stages on symbols (theta_{t-1}, g_t, buf_{t-1}, ...) and recording what each stage
changes gives the recurrence exactly as the rule computes it: `u` is the update direction,
`t <- t + 1` the step count. Nothing here is typed by hand, so the displayed recurrence cannot
drift from the rule.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from . import symbols as Y
from .rules import Rule
from .stages import Carry

U = sp.Symbol("u", real=True)  # the update direction, as it flows through the stages
T = sp.Symbol("t", integer=True, positive=True)  # the step count, shown as t <- t + 1


@dataclass(frozen=True)
class Assign:
    target: sp.Symbol
    expr: sp.Expr
    note: str  # the stage's one-line description


def trace(rule: Rule, h: dict) -> list:
    """Assignments of one generic step (from a general state, step t)."""
    g = Y.grad("t")
    state = {n: (T - 1 if n == "t" else Y.state(n, "t-1")) for n in rule.state_names}
    carry = Carry(theta_prev=Y.theta("t-1"), theta=Y.theta("t-1"), u=U, state=state)
    lines = [Assign(U, g, "start from the gradient g_t")]
    for stage in rule.stages:
        new = stage.fn(carry, h)
        for name in rule.state_names:
            if new.state[name] != carry.state[name]:
                if name == "t":
                    # read as an assignment: before the stage t counts the previous steps
                    lines.append(Assign(T, T + 1, stage.doc))
                    new = new.with_state(t=T)
                    continue
                target = Y.state(name, "t")
                lines.append(Assign(target, new.state[name], stage.doc))
                new = new.with_state(**{name: target})
        if new.u != carry.u:
            lines.append(Assign(U, new.u, stage.doc))
            new = replace(new, u=U)
        if new.theta != carry.theta:
            lines.append(Assign(Y.theta("t"), new.theta, stage.doc))
            new = replace(new, theta=Y.theta("t"))
        carry = new
    return lines
