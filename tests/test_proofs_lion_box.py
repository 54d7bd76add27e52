"""The lion-box theorem: proven from the lion entry's rule, and a planted wrong rule fails it."""
from __future__ import annotations

from dataclasses import replace

import pytest
import sympy as sp

from optequiv.derive.derivation import Equation
from optequiv.derive.rules import build_rule
from optequiv.proofs.registry import prove
from optequiv.proofs.theorems import lion_box


def test_proven_with_every_region_and_both_counterexamples():
    d = prove("lion-box")
    assert d.final_verdict() == "proven"
    regions = [b for b in d.blocks if isinstance(b, Equation) and "where" in b.reason]
    assert len(regions) == 3  # sign = 1, -1, 0
    assert sum("outside" in getattr(b, "text", "") for b in d.blocks) == 2


def planted(fn):
    def rule_for(spec):
        rule = build_rule(spec)
        return replace(rule, stages=tuple(fn(s) for s in rule.stages))
    return rule_for


def doubled_sign(stage):  # a step of 2*lr: overshoots the box from its corner
    if stage.name != "lion":
        return stage
    return replace(stage, fn=lambda c, h: (lambda out: replace(out, u=2 * out.u))(stage.fn(c, h)))


def no_decay(stage):  # nothing pulls theta back: the sign walks out of the box
    if stage.name != "decay":
        return stage
    return replace(stage, fn=lambda c, h: c)


@pytest.mark.parametrize("bug", [doubled_sign, no_decay], ids=lambda f: f.__name__)
def test_a_planted_wrong_rule_is_refuted(bug, monkeypatch):
    monkeypatch.setattr(lion_box, "build_rule", planted(bug))
    assert lion_box.build(lion_box.THEOREM).verdict == "refuted"


def test_the_regions_cover_every_sign():
    scaled = lion_box.scaled_step()
    assert scaled.has(sp.sign)
    pieces = lion_box.regions(scaled)
    assert sorted(str(kind) for _, conds in pieces for kind, _ in conds) == ["eq", "gt", "gt"]
