"""Theorem 7: with eps = 0, AdamW's update is invariant to a positive per-coordinate rescaling of
the gradient; Adam + L2's is not (its L2 term lambda*theta is not rescaled with the gradient).

The engine compares a rule with itself fed c*g (c > 0, constant over steps, one per coordinate):
equivalence is proven by induction with the state correspondence m -> c*m, v -> c^2*v, which the
engine reads off the first step; the refutation carries an exact counterexample.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive.compare import compare
from optequiv.derive.narrate import parts
from optequiv.proofs.registry import Theorem, claim_divergent, claim_equivalent, combine

ADAMW = "adamw(eps=0, weight_decay=lam)"
ADAM_L2 = "adam(eps=0, weight_decay=lam)"
ADAMW_EPS = "adamw(weight_decay=lam)"
SCALE = sp.Symbol("c", positive=True)


def rescaled(g):
    return SCALE * g


def build(theorem: Theorem):
    fed = " B is the same rule fed $c*g_t$, $c > 0$."
    blocks, verdicts = parts([
        ("AdamW with $eps = 0$ is invariant: $theta$ is the same whether it sees $g$ or $c*g$."
         + fed,
         compare(ADAMW, ADAMW, transform=rescaled), claim_equivalent),
        ("Adam + L2 with $eps = 0$ is not: the L2 term $lam*theta$ is not rescaled with $g$."
         + fed,
         compare(ADAM_L2, ADAM_L2, transform=rescaled), lambda c: claim_divergent(c, 1)),
        ("With $eps > 0$ AdamW is not invariant either: $eps$ sets a scale." + fed,
         compare(ADAMW_EPS, ADAMW_EPS, transform=rescaled), lambda c: claim_divergent(c, 1)),
    ], "A (fed $g$)", "B (fed $c*g$)")
    return theorem.derivation(combine(verdicts), blocks)


THEOREM = Theorem(
    name="gradient-scale-invariance",
    title="Gradient rescaling: AdamW with $eps = 0$ is invariant, Adam + L2 is not",
    claim="With $eps = 0$, AdamW's trajectory is unchanged when every gradient of a coordinate "
          "is multiplied by the same $c > 0$; Adam + L2's changes from step 1 (and so does "
          "AdamW's with $eps > 0$).",
    context="Adam is meant not to care about the scale of a coordinate's gradient; L2 "
            "regularisation quietly breaks that, decoupled decay keeps it.",
    reference="Loshchilov & Hutter (2019), Sec. 2 (the discussion after Prop. 2)",
    specs=(ADAMW, ADAM_L2, ADAMW_EPS),
    build=build,
)
