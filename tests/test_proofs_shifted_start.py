"""The <entry>-start-as-state family: a hyperparameter that is only a state's first value
(Rprop's lr, Adagrad's initial_accumulator_value) is a shifted start of the plain optimizer;
proven by the engine's induction, checked here by exact runs, and failed by a planted step
that reads the key."""
from __future__ import annotations

import random
from dataclasses import replace
from importlib import import_module

import pytest
import sympy as sp

from optequiv.derive import stages as S
from optequiv.derive import symbols as Y
from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.proofs.registry import names, prove
from optequiv.proofs.theorems import shifted_start as F

compare_module = import_module("optequiv.derive.compare")
FAMILY = [t.name for t in F.THEOREMS]


def test_the_family_covers_every_entry_whose_state_starts_at_a_hyperparameter():
    covered = {e.name for e in ENTRIES.values() if F.start_key(e)}
    assert covered and {n[:-len(F.SUFFIX)] for n in FAMILY} == covered
    assert "rprop" in covered and all(n in names() for n in FAMILY)
    assert "asgd" not in covered  # its step recomputes eta from lr: lr is more than a start
    if "adagrad" in ENTRIES:
        assert F.start_key(ENTRIES["adagrad"]).key == "initial_accumulator_value"


@pytest.mark.parametrize("name", FAMILY)
def test_proven(name):
    assert prove(name).final_verdict() == "proven"


@pytest.mark.parametrize("theorem", F.THEOREMS, ids=lambda t: t.name)
def test_exact_runs_agree_from_the_shifted_state(theorem):
    """Independent of the induction: A from torch's start and B from A's first values, four
    exact steps at rational points (c and the gradients drawn at random)."""
    a, b = (parse_spec(s) for s in theorem.specs)
    rng = random.Random(3)
    for _ in range(3):
        c = sp.Rational(rng.randint(1, 30), 37)
        ha = {k: v.xreplace({F.C: c}) for k, v in a.hyper(numeric=False).items()}
        ha = {k: v.xreplace({s: sp.Rational(1, 3) for s in v.free_symbols}) for k, v in ha.items()}
        hb = {k: (ha[k] if not b.hyper()[k].is_number else b.hyper()[k]) for k in ha}
        ra, rb = build_rule(a), build_rule(b)
        sa = ra.initial_state("start", ha)
        sb = dict(sa)  # B starts where A's torch start puts it
        ta = tb = sp.Rational(5, 7)
        for _ in range(4):
            g = sp.Rational(rng.randint(-40, 40), 13)
            sa, ta = ra.step(sa, ta, g, ha)
            sb, tb = rb.step(sb, tb, g, hb)
            assert sp.simplify(ta - tb) == 0


def reads_the_key(theorem):
    key = parse_spec(theorem.specs[0]).entry.hyper(theorem.specs[0].split("(")[1].split("=")[0])
    name = key.scalars[0].name

    def rule_for(spec):
        rule = build_rule(spec)
        planted = S.Stage("planted", lambda c, h: replace(c, u=c.u + h[name]), "planted")
        return replace(rule, stages=(planted,) + rule.stages)
    return rule_for


@pytest.mark.parametrize("theorem", F.THEOREMS, ids=lambda t: t.name)
def test_a_planted_step_that_reads_the_key_fails_it(theorem, monkeypatch):
    monkeypatch.setattr(compare_module, "build_rule", reads_the_key(theorem))
    assert theorem.build(theorem).verdict == "refuted"
