"""The theorem catalogue: one registry that the CLI, the documents and the tests iterate over.

A theorem is data (name, title, claim, specs) plus a `build()` that calls the engine and returns a
Derivation whose verdict is computed. Adding a theorem is one definition and one line below.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from optequiv.derive.derivation import Derivation
from optequiv.derive.errors import UserError

PROVEN, REFUTED, SUPPORTED, UNDECIDED = "proven", "refuted", "supported", "undecided"


@dataclass(frozen=True)
class Theorem:
    name: str
    title: str
    claim: str
    specs: tuple
    build: Callable[["Theorem"], Derivation]
    context: str = ""  # one sentence: why a reader would ask this
    reference: str = ""  # where the statement comes from

    def derivation(self, verdict: str, blocks: list) -> Derivation:
        return Derivation(self.name, self.title, self.claim, list(self.specs), verdict, blocks,
                          self.context, self.reference)


def combine(verdicts) -> str:
    """A claim made of parts holds when every part does; one refuted part refutes it."""
    verdicts = list(verdicts)
    for v in (REFUTED, UNDECIDED, SUPPORTED):
        if v in verdicts:
            return v
    return PROVEN


def claim_equivalent(c, mapping: dict | None = None) -> str:
    """Verdict of the claim 'B equals A at every step' (with this mapping, if one is named)."""
    if c.equivalent is True:
        return PROVEN if mapping is None or _same_mapping(c.mapping, mapping) else REFUTED
    return REFUTED if c.equivalent is False else (SUPPORTED if c.verdict == SUPPORTED
                                                   else UNDECIDED)


def claim_divergent(c, step: int) -> str:
    """Verdict of the claim 'no constant mapping exists, and step `step` is the first to differ'."""
    if c.equivalent is False:
        return PROVEN if c.first_divergent_step == step else REFUTED
    return REFUTED if c.equivalent is True else UNDECIDED


def _same_mapping(found: dict, expected: dict) -> bool:
    import sympy as sp

    return set(found) == set(expected) and all(
        sp.simplify(found[k] - expected[k]) == 0 for k in expected)


def _theorems() -> list:
    # imported here: each module defines its theorems with Theorem from this module
    from .theorems import adam, adamw_ema, conventions, decay_variants, eps_placement, \
        heavy_ball, invariance, keras_sgd, l2_vs_decoupled, lion_box, momentum, preconditioner, \
        seed, sgd, shifted_start

    return [sgd.THEOREM, momentum.THEOREM, heavy_ball.THEOREM, adam.THEOREM,
            preconditioner.THEOREM, conventions.THEOREM, *decay_variants.THEOREMS,
            invariance.THEOREM, seed.THEOREM, lion_box.THEOREM, adamw_ema.THEOREM,
            keras_sgd.THEOREM, eps_placement.THEOREM,
            *l2_vs_decoupled.THEOREMS, *shifted_start.THEOREMS]


@lru_cache(maxsize=1)
def theorems() -> tuple:
    return tuple(_theorems())


def names() -> list:
    return [t.name for t in theorems()]


def get(name: str) -> Theorem:
    for theorem in theorems():
        if theorem.name == name:
            return theorem
    raise UserError(f"unknown theorem {name!r}; valid names: {', '.join(names())}")


@lru_cache(maxsize=None)
def prove(name: str) -> Derivation:
    theorem = get(name)
    return theorem.build(theorem)


def prove_all(chosen) -> list:
    """prove() of each name, in order, on the machine's cores: the theorems are independent
    computations, so `prove --all` takes the time of the slowest share, not of the sum. One
    core (or one theorem): in this process."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    chosen = list(chosen)
    workers = min(len(chosen), os.cpu_count() or 1)
    if workers < 2 or multiprocessing.parent_process() is not None:
        return [prove(name) for name in chosen]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(prove, chosen))
