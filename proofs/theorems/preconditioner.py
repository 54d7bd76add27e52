"""Theorem 5 (Loshchilov & Hutter, Prop. 3): with a fixed diagonal preconditioner, decoupled
decay is a scale-adjusted L2 penalty, and the engine derives the penalty's constant.

A preconditioned step theta <- theta - alpha*M*grad with M = diag(s)^(-1) is SGD with lr alpha/s
in each coordinate (one coordinate suffices: every stage is element-wise). Decoupled decay
theta <- (1 - lambda)*theta - alpha*g/s is compared with plain preconditioned steps on
f + c*||theta (.) sqrt(s)||^2, whose gradient adds 2*c*s*theta: the engine solves for c.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.compare import compare
from optequiv.derive.derivation import Equation, Prose, label
from optequiv.derive.narrate import comparison_blocks
from optequiv.proofs.registry import Theorem, claim_equivalent, combine

DECOUPLED = "sgd(lr=alpha/s, weight_decay=lam, decay=independent)"
PENALTY = "sgd(lr=alpha/s, weight_decay=2*c*s)"
alpha, lam, c = Y.hyper("alpha"), Y.hyper("lam"), Y.hyper("c")


def build(theorem: Theorem):
    comparison = compare(DECOUPLED, PENALTY)
    blocks = [Prose("Model the fixed preconditioner $M = diag(s)^(-1)$ as the per-coordinate "
                    "learning rate $alpha/s$; the penalty $c*s*theta^2$ has gradient "
                    "$2*c*s*theta$, which is L2 with `weight_decay=2*c*s`.")]
    blocks += comparison_blocks(comparison, "decoupled", "penalty")
    verdict = claim_equivalent(comparison)
    if comparison.equivalent:
        found = comparison.mapping[c]
        lam_prime = sp.Symbol("lambda'", positive=True)
        blocks.append(Equation(label("c"), sp.factor(found), found,
                               "the constant the engine solved for"))
        blocks.append(Equation(label("c"), lam_prime / 2, found.subs(lam, lam_prime * alpha),
                               "in terms of $lambda' = lambda/alpha$"))
        blocks.append(Prose("So decoupled decay $lam$ under a fixed preconditioner "
                            "$diag(s)^(-1)$ is exactly plain preconditioned descent on "
                            "$f + (lambda'/2) s theta^2$ (per coordinate; "
                            "$(lambda'/2) norm(theta odot sqrt(s))^2$ over all of them) with "
                            "$lambda' = lam/alpha$: an L2 penalty that is stronger where $s$ is "
                            "large, i.e. where the preconditioner $diag(s)^(-1)$ is small (the "
                            "coordinates that take small steps)."))
    return theorem.derivation(combine([verdict]), blocks)


THEOREM = Theorem(
    name="fixed-preconditioner",
    title="Fixed preconditioner: decoupled decay is a scale-adjusted L2 (Prop. 3)",
    claim="With a fixed diagonal preconditioner $diag(s)^(-1)$ and learning rate $alpha$, "
          "decoupled decay $lam$ equals plain steps on $f + c norm(theta odot sqrt(s))^2$ for one "
          "constant $c$, derived by the engine.",
    context="Decoupled decay is not a penalty on the loss in general, but under a fixed "
            "diagonal preconditioner it is one, scaled per coordinate.",
    reference="Loshchilov & Hutter (2019), Prop. 3",
    specs=(DECOUPLED, PENALTY),
    build=build,
)
