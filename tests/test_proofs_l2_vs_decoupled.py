"""The L2-versus-decoupled family: one theorem per catalogue entry offering both conventions,
each proven by the compare engine with a certificate; a planted rule under which the two
conventions coincide makes the theorem fail."""
from __future__ import annotations

from dataclasses import replace
from importlib import import_module

import pytest

from optequiv.derive import stages as S
from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.derivation import Inequality
from optequiv.derive.rules import build_rule
from optequiv.proofs.registry import names, prove
from optequiv.proofs.theorems import l2_vs_decoupled as F

compare_module = import_module("optequiv.derive.compare")  # the module, not the function
FAMILY = [e.name + F.SUFFIX for e in ENTRIES.values() if F.offers_both(e)]
# from the literature, for the entries whose first divergent step is known (Loshchilov &
# Hutter: SGD with momentum from step 2, adaptive methods from step 1; Lion's sign from step 1)
KNOWN = {"sgd": 2, "adam": 1, "lion": 1, "nadam": 1, "rmsprop": 1, "adagrad": 1, "adamax": 1,
         "radam": 2}  # RAdam: unrectified (momentum SGD) while rho_t <= 5


def test_every_entry_offering_both_has_its_theorem():
    assert FAMILY and all(n in names() for n in FAMILY)
    assert "adamw" + F.SUFFIX not in names()  # AdamW's l2 is torch's Adam: adam's theorem
    assert {"sgd", "adam", "lion"} <= {n[:-len(F.SUFFIX)] for n in FAMILY}


@pytest.mark.parametrize("name", FAMILY)
def test_proven_with_certificate_and_witness(name):
    d = prove(name)
    assert d.final_verdict() == "proven"
    text = " ".join(getattr(b, "text", "") for b in d.blocks)
    assert "Certificate:" in text and any(isinstance(b, Inequality) for b in d.blocks)
    entry = name[:-len(F.SUFFIX)]
    if entry in KNOWN:
        assert f"The first divergent step is {KNOWN[entry]}." in text


def decay_moved_to_decoupled(spec):
    """decay=l2 planted at the decoupled position: L2 becomes decoupled decay."""
    rule = build_rule(spec)
    if "decay" not in rule.stage_names() or spec.decay != "l2":
        return rule
    stages = [s for s in rule.stages if s.name != "decay"]
    stages.insert([s.name for s in stages].index("scale_lr"), S.DECAY_DECOUPLED)
    return replace(rule, stages=tuple(stages))


@pytest.mark.parametrize("name", ["adam" + F.SUFFIX, "lion" + F.SUFFIX])
def test_a_planted_wrong_rule_fails_the_theorem(name, monkeypatch):
    monkeypatch.setattr(compare_module, "build_rule", decay_moved_to_decoupled)
    theorem = next(t for t in F.THEOREMS if t.name == name)
    assert theorem.build(theorem).verdict == "refuted"
