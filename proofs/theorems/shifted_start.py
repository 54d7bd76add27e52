"""A hyperparameter that only sets torch's first state is a shifted start, not a new rule.

Generic over the catalogue: an entry joins where one of its hyperparameters is the first value
of a state entry and is read by nothing else (Adagrad's initial_accumulator_value is the first
sum of squares; Rprop's lr is the first step size). With A = entry(key=c) and B = entry(key=torch's default), the engine
proves by induction that from any shared state the two step alike (the step never reads the
key); A's torch start is B's general state at state_0 = A's first values. So A from torch's
start is B started there, at every step. From torch's start itself they differ (a witness):
the key is a start, not a reparametrisation of the step.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.compare import compare
from optequiv.derive.derivation import Equation, Prose, label
from optequiv.derive.identity import PROVEN, REFUTED
from optequiv.derive.narrate import comparison_blocks
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.proofs.registry import Theorem, claim_divergent, claim_equivalent, combine

SUFFIX = "-start-as-state"
C = Y.hyper("c")


def start_key(entry):
    """The hyperparameter (a single scalar) that some state's torch first value is and that
    the step itself never reads, or None. (ASGD's lr is eta's first value, but every step
    recomputes eta from lr: not a start only, so not this theorem.)"""
    for h in entry.hypers:
        if h.pair or h.key == "weight_decay":
            continue
        spec = parse_spec(f"{entry.name}({h.key}=c)")
        rule = build_rule(spec)
        first = rule.initial_state()
        if not any(v is not None and v.has(C) for v in first.values()) \
                or any(v is None for v in first.values()):
            continue
        state, theta = rule.step(rule.initial_state("state"), Y.theta("t-1"), Y.grad("t"),
                                 spec.hyper())
        if not any(v.has(C) for v in (theta, *state.values()) if v is not None):
            return h
    return None


def build(theorem: Theorem):
    a_text, b_text = theorem.specs
    A, B = parse_spec(a_text), parse_spec(b_text)
    ra, rb = build_rule(A), build_rule(B)
    blocks, verdicts = [], []

    blocks.append(Prose("From any shared state (a general mid-run state) the two rules step "
                        "alike: the engine compares them with no change of symbols and proves "
                        "it for every step by induction."))
    same_step = compare(a_text, b_text, start="state", want_conditions=False)
    verdicts.append(claim_equivalent(same_step, {}))
    blocks += comparison_blocks(same_step, "A", "B")

    first = ra.initial_state()
    shift = {Y.state(n, 0): first[n] for n in rb.state_names}
    general = rb.initial_state("state")
    blocks.append(Prose("A's torch start is B's general state with " + ", ".join(
        f"${Y.state(n, 0)} = {first[n]}$" for n in rb.state_names) + ":"))
    for n in rb.state_names:
        blocks.append(Equation(label(f"{n}_0 of A (torch's start)"), general[n].xreplace(shift),
                               first[n], f"B's ${Y.state(n, 0)}$ at the shift"))
    verdicts.append(PROVEN if set(ra.state_names) == set(rb.state_names) and all(
        sp.simplify(general[n].xreplace(shift) - first[n]) == 0 for n in rb.state_names)
        else REFUTED)
    blocks.append(Prose(f"So `{a_text}` from torch's start is `{b_text}` started from that "
                        "state, at every step: by the induction above, from equal states the "
                        "runs stay equal."))

    from_start = compare(a_text, b_text, want_conditions=False)
    verdicts.append(claim_divergent(from_start, 1))
    blocks.append(Prose("From torch's start itself (B at its own first values) they differ from "
                        "step 1: the key moves the start, it is not a reparametrisation of the "
                        "step."))
    blocks += comparison_blocks(from_start, "A", "B")
    return theorem.derivation(combine(verdicts), blocks)


def theorem(entry, hyper) -> Theorem:
    shown = entry.class_name
    default = hyper.scalars[0].default
    a_text, b_text = f"{entry.name}({hyper.key}=c)", f"{entry.name}({hyper.key}={default})"
    states = ", ".join(s.key for s in entry.states)
    return Theorem(
        name=entry.name + SUFFIX,
        title=f"{shown}: `{hyper.key}` is a shifted start",
        claim=f"`{a_text}` from torch's start equals `{b_text}` started from the general state "
              f"whose entries ({states}) are the first values torch gives `{a_text}`, at every "
              "step; from torch's start the two differ from step 1.",
        context=f"`{hyper.key}` only sets {shown}'s first state: a run with it is a run of "
                "the plain optimizer from another state, which is what the engine finds.",
        reference=entry.reference,
        specs=(a_text, b_text),
        build=build,
    )


THEOREMS = tuple(theorem(e, h) for e in ENTRIES.values() for h in [start_key(e)] if h)
