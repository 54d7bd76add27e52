"""Theorem 2: with momentum, L2 and decoupled decay agree on step 1 and differ from step 2.

For torch's momentum (the buffer copies the first gradient), the seed's zero-buffer EMA form
(dampening = momentum) and Nesterov: no constant mapping of the decay coefficient exists.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.compare import compare
from optequiv.derive.derivation import Equation, Prose, label
from optequiv.derive.narrate import comparison_blocks
from optequiv.proofs.registry import PROVEN, REFUTED, Theorem, claim_divergent, combine

FORMS = (
    ("torch's momentum (the buffer copies the first gradient)",
     "sgd(lr=eta, momentum=mu, weight_decay=lam)",
     "sgd(lr=eta, momentum=mu, weight_decay=lam2, decay=decoupled)"),
    ("the seed's EMA momentum $v_t = mu*v_{t-1} + (1 - mu)*g_t$ with a zero buffer",
     "sgd(lr=eta, momentum=mu, dampening=mu, weight_decay=lam, buffer=zero)",
     "sgd(lr=eta, momentum=mu, dampening=mu, weight_decay=lam2, buffer=zero, decay=decoupled)"),
    ("Nesterov momentum",
     "sgd(lr=eta, momentum=mu, nesterov=true, weight_decay=lam)",
     "sgd(lr=eta, momentum=mu, nesterov=true, weight_decay=lam2, decay=decoupled)"),
)
eta, mu, lam = Y.hyper("eta"), Y.hyper("mu"), Y.hyper("lam")


def _multiple_of_lr_mu_lam_theta0(c) -> tuple:
    """The torch-form difference at step 2 divided by lr*momentum*lambda*theta_0: a non-zero
    constant exactly when the claim's 'multiple of' holds."""
    ratio = sp.cancel(c.difference / (eta * mu * lam * Y.theta(0)))
    return ratio, bool(ratio.is_number and ratio != 0)


def build(theorem: Theorem):
    blocks, verdicts = [], []
    for index, (words, a, b) in enumerate(FORMS):
        c = compare(a, b)
        agree_first = bool(c.trail) and bool(c.trail[0].solutions)
        verdicts.append(claim_divergent(c, 2) if agree_first else REFUTED)
        blocks.append(Prose(f"Part {index + 1}: {words}."))
        blocks += comparison_blocks(c, "L2", "decoupled")
        if index == 0 and c.equivalent is False:
            ratio, ok = _multiple_of_lr_mu_lam_theta0(c)
            verdicts.append(PROVEN if ok else REFUTED)
            blocks.append(Equation(
                label("(theta^B_2 - theta^A_2)/(eta*mu*lam*theta_0)"),
                ratio, c.difference / (eta * mu * lam * Y.theta(0)),
                "the difference is a constant multiple of $eta*mu*lam*theta_0$"))
    return theorem.derivation(combine(verdicts), blocks)


THEOREM = Theorem(
    name="momentum-l2-vs-decay",
    title="SGD with momentum: L2 and decoupled decay differ from step 2",
    claim="With torch's momentum, the zero-buffer EMA momentum and Nesterov momentum, L2 and "
          "decoupled weight decay agree on step 1 (after mapping the coefficient) and differ "
          "from step 2 on; for torch's form the difference at step 2 is a constant multiple of "
          "$eta*mu*lam*theta_0$ (learning rate $eta$, momentum $mu$); no constant mapping of the "
          "coefficient exists.",
    context="Loshchilov & Hutter's SGDW moves the decay out of the momentum buffer; the buffer "
            "then carries past decay terms in L2 but not in SGDW, so one step cannot tell them "
            "apart and two can.",
    reference="Loshchilov & Hutter (2019), Sec. 2 and Algorithm 1 (SGD with momentum, SGDW)",
    specs=tuple(s for _, a, b in FORMS for s in (a, b)),
    build=build,
)
