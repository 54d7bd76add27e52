"""Theorem 1 (Loshchilov & Hutter, Prop. 1): for plain SGD, coupled L2 is decoupled decay.

Coupled L2 with coefficient lam equals lr-scaled decoupled decay with the same lam, and
lr-independent decay with lam' = lr*lam; with per-step learning rates the lr-independent form
needs its decay to follow the schedule (a constant lam' only matches a constant lr).
"""
from __future__ import annotations

from optequiv.derive import symbols as Y
from optequiv.derive.compare import compare
from optequiv.derive.narrate import parts
from optequiv.proofs.registry import Theorem, claim_divergent, claim_equivalent, combine

L2 = "sgd(lr=eta, weight_decay=lam)"
DECOUPLED = "sgd(lr=eta, weight_decay=lam2, decay=decoupled)"
INDEPENDENT = "sgd(lr=eta, weight_decay=k, decay=independent)"
eta, lam = Y.hyper("eta"), Y.hyper("lam")


def build(theorem: Theorem):
    items = [
        ("Constant learning rate, lr-scaled decoupled decay.",
         compare(L2, DECOUPLED), lambda c: claim_equivalent(c, {Y.hyper("lam2"): lam})),
        ("Constant learning rate, lr-independent decay (the paper's form): the coefficients map "
         "as $k = eta*lam$, i.e. L2's coefficient is the decay rate divided by the learning rate.",
         compare(L2, INDEPENDENT), lambda c: claim_equivalent(c, {Y.hyper("k"): eta * lam})),
        ("Per-step learning rates $eta_t$, lr-scaled decoupled decay: still the same $lam$.",
         compare(L2, DECOUPLED, schedule=[eta]),
         lambda c: claim_equivalent(c, {Y.hyper("lam2"): lam})),
        ("Per-step learning rates, lr-independent decay with a constant $k$: no constant $k$ "
         "works once $eta$ changes (step 2), unless $eta$ is constant.",
         compare(L2, INDEPENDENT, schedule=[eta]), lambda c: claim_divergent(c, 2)),
        ("Per-step learning rates, lr-independent decay that follows the schedule "
         "($k_t$ scheduled): $k_t = eta_t*lam$ at every step.",
         compare(L2, INDEPENDENT, schedule=[eta, Y.hyper("k")]),
         lambda c: claim_equivalent(c, {Y.stepped(Y.hyper("k"), "t"):
                                        Y.stepped(eta, "t") * lam})),
    ]
    blocks, verdicts = parts(items, "L2", "decay")
    return theorem.derivation(combine(verdicts), blocks)


THEOREM = Theorem(
    name="sgd-l2-is-decay",
    title="Plain SGD: coupled L2 is decoupled weight decay (Loshchilov & Hutter, Prop. 1)",
    claim="For SGD without momentum, L2 with coefficient $lam$ equals lr-scaled decoupled decay "
          "with the same $lam$ and lr-independent decay with $k = eta*lam$ (learning rate $eta$), "
          "at every step, for every loss; with per-step learning rates the lr-independent decay "
          "must follow the schedule ($k_t = eta_t*lam$): a constant $k$ matches only a constant "
          "learning rate.",
    context="The question every user of weight decay meets first: is adding $lam*theta$ to the "
            "gradient the same as shrinking $theta$? For plain SGD it is, up to a change of "
            "coefficient, and that change is what the other theorems break.",
    reference="Loshchilov & Hutter (2019), Decoupled Weight Decay Regularization, Prop. 1",
    specs=(L2, DECOUPLED, INDEPENDENT),
    build=build,
)
