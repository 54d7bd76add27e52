"""The adamw-ema theorem: the closed form proven by induction from the adamw entry's rule; a
planted wrong rule (decay in another place) fails it."""
from __future__ import annotations

from dataclasses import replace

import pytest
import sympy as sp

from optequiv.derive import stages as S
from optequiv.derive import symbols as Y
from optequiv.derive.rules import build_rule
from optequiv.proofs.registry import prove
from optequiv.proofs.theorems import adamw_ema as E


def test_proven():
    assert prove("adamw-ema").final_verdict() == "proven"


def test_the_closed_form_is_the_unrolled_rule_at_small_t():
    """Independent of the induction: three steps of the rule with opaque directions."""
    rule = build_rule(E.SPEC)
    theta = Y.theta(0)
    for k in range(1, 4):
        theta = E.opaque_step(rule, theta, E.u(k))
        closed = E.closed_form(k, 1 - E.eta * E.lam, -E.eta).doit()
        assert sp.expand(theta - closed) == 0


def independent_decay(spec):  # theta*(1 - lam) - eta*u: the time scale would be 1/lam
    rule = build_rule(spec)
    stages = [s for s in rule.stages if s.name != "decay"]
    stages.insert([s.name for s in stages].index("apply"), S.DECAY_INDEPENDENT)
    return replace(rule, stages=tuple(stages))


def decay_doubled(spec):
    rule = build_rule(spec)
    return replace(rule, stages=tuple(
        replace(s, fn=lambda c, h, f=s.fn: f(f(c, h), h)) if s.name == "decay" else s
        for s in rule.stages))


@pytest.mark.parametrize("bug", [independent_decay, decay_doubled], ids=lambda f: f.__name__)
def test_a_planted_wrong_rule_is_refuted(bug, monkeypatch):
    monkeypatch.setattr(E, "build_rule", bug)
    assert E.build(E.THEOREM).verdict == "refuted"
