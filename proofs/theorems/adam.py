"""Theorem 4 (Loshchilov & Hutter, Prop. 2 for Adam): Adam + L2 is not AdamW.

They differ from step 1 and no constant mapping of the coefficient exists. Splitting Adam's first
moment by linearity shows what L2 does instead: m_t = m^g_t + lambda*d_t, where m^g is the EMA of
the gradients and d_t = beta1*d_{t-1} + (1 - beta1)*theta_{t-1} an EMA of past parameters; the
decay part of the step is lr*lambda*d_t / ((1 - beta1^t)(sqrt(v_hat_t) + eps)): lambda divided
coordinate-wise by sqrt(v_hat) + eps, and smoothed by beta1, where AdamW applies lr*lambda*theta.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.compare import compare
from optequiv.derive.derivation import Equation, Prose, label
from optequiv.derive.identity import zero_test
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.derive.narrate import comparison_blocks
from optequiv.proofs.registry import PROVEN, REFUTED, Theorem, claim_divergent, combine

L2 = "adam(weight_decay=weight_decay)"
ADAMW = "adamw(weight_decay=lam2)"
lr, lam = Y.hyper("lr"), Y.hyper("weight_decay")
b1, b2, eps = Y.hyper("beta1"), Y.hyper("beta2"), Y.hyper("eps")
m_g = sp.Symbol("m^g_{t-1}", real=True)  # EMA of the gradients alone
d = sp.Symbol("d_{t-1}", real=True)  # EMA of past parameters


def build(theorem: Theorem):
    c = compare(L2, ADAMW)
    verdicts = [claim_divergent(c, 1)]
    blocks = comparison_blocks(c, "Adam + L2", "AdamW")

    spec = parse_spec(L2)
    rule, h = build_rule(spec), spec.hyper()
    th, g, t, v = Y.theta("t-1"), Y.grad("t"), Y.state("t", "t-1"), Y.state("v", "t-1")
    # induction hypothesis m_{t-1} = m^g_{t-1} + lambda*d_{t-1}; one step of the rule:
    state, theta = rule.step({"t": t, "m": m_g + lam * d, "v": v}, th, g, h)
    m_g_new = b1 * m_g + (1 - b1) * g
    d_new = b1 * d + (1 - b1) * th
    blocks.append(Prose("Why: split Adam's first moment by linearity. Suppose $m_{t-1} = "
                        "m^g_{t-1} + lam*d_{t-1}$, with $m^g$ the EMA of the gradients and $d$ "
                        "the EMA of past parameters. One step of Adam + L2 gives"))
    split = state["m"] - (m_g_new + lam * d_new)
    blocks.append(Equation(label("m_t - (m^g_t + lambda*d_t)"), sp.Integer(0), split,
                           "$m^g_t = beta1*m^g_{t-1} + (1 - beta1)*g_t$, "
                           "$d_t = beta1*d_{t-1} + (1 - beta1)*theta_{t-1}$"))
    verdicts.append(PROVEN if zero_test(split).verdict == PROVEN else REFUTED)
    denominator = (1 - b1 ** state["t"]) * (sp.sqrt(state["v"]) / sp.sqrt(1 - b2 ** state["t"]) + eps)
    decay_part = lr * lam * d_new / denominator
    blocks.append(Equation(label("theta_t - theta_{t-1} + lr*m^g_t/((1-beta1^t)(sqrt(v_hat_t)+eps))"),
                           -decay_part, theta - th + lr * m_g_new / denominator,
                           "the decay part of the Adam + L2 step"))
    blocks.append(Prose("So the L2 step decays $d_t$, an EMA of past parameters "
                        "($d_t/(1 - beta1^t)$ is their bias-corrected average), by $lr*lam$ "
                        "divided coordinate-wise by $sqrt(v_hat_t) + eps$; AdamW decays "
                        "$theta_{t-1}$ itself by $lr*lam$ in every coordinate alike. Even the "
                        "decay parts alone match only where that average equals $theta_{t-1}$ "
                        "and $sqrt(v_hat_t) + eps = 1$ in every coordinate, which no constant "
                        "choice of coefficients arranges; and the gradient parts differ as well, "
                        "since L2's $v_hat$ contains $lam*theta$ and AdamW's does not."))
    return theorem.derivation(combine(verdicts), blocks)


THEOREM = Theorem(
    name="adam-l2-vs-adamw",
    title="Adam + L2 is not AdamW (Loshchilov & Hutter, Prop. 2)",
    claim="Adam with L2 and AdamW differ from step 1 and no constant mapping of the decay "
          "coefficient makes them agree; L2's decay acts as $lam$ divided coordinate-wise by "
          "$sqrt(v_hat) + eps$ (with bias correction), applied to an EMA ($beta1$) of past "
          "parameters rather than to the current ones.",
    context="The reason AdamW exists: in Adam the L2 term passes through the adaptive "
            "denominator, so coordinates with large gradients are decayed less.",
    reference="Loshchilov & Hutter (2019), Prop. 2",
    specs=(L2, ADAMW),
    build=build,
)
