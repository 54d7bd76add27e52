"""Theorem 3: heavy-ball momentum with the gradient switched off.

With g = 0 each rule is a linear map of (theta, buf). Its characteristic polynomial says how
fast theta shrinks: decoupled decay shrinks by exactly (1 - lr*lambda) per step, while L2's
shrink is the dominant root of z^2 - (1 + mu - lr*lambda) z + mu. Expanding that root in
x = lr*lambda shows the two effective decay rates match only to first order, at
lambda_L2 = (1 - mu) * lambda_wd.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.derivation import Equation, Prose, label
from optequiv.derive.identity import zero_test
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.derive.narrate import recurrence
from optequiv.proofs.registry import PROVEN, REFUTED, Theorem, combine

L2 = "sgd(momentum=momentum, weight_decay=weight_decay)"
DECOUPLED = "sgd(momentum=momentum, weight_decay=weight_decay, decay=decoupled)"
lr, mu, lam = Y.hyper("lr"), Y.hyper("momentum"), Y.hyper("weight_decay")
lam_l2, lam_wd = sp.Symbol("lambda_L2", positive=True), sp.Symbol("lambda_wd", positive=True)
z, x = sp.Symbol("z"), sp.Symbol("x")
a1, a2 = sp.Symbol("a_1"), sp.Symbol("a_2")


def linear_map(spec_text: str) -> sp.Matrix:
    """The rule's step with g = 0 as a matrix acting on (theta_{t-1}, buf_{t-1})."""
    spec = parse_spec(spec_text)
    th, buf = Y.theta("t-1"), Y.state("buf", "t-1")
    state, theta = build_rule(spec).step({"buf": buf}, th, sp.Integer(0), spec.hyper())
    rows = [theta, state["buf"]]
    return sp.Matrix([[sp.diff(r, th), sp.diff(r, buf)] for r in rows])


def characteristic(matrix: sp.Matrix) -> sp.Expr:
    return sp.expand((z * sp.eye(2) - matrix).det())


def build(theorem: Theorem):
    blocks, verdicts = [recurrence(parse_spec(L2), "L2"),
                        recurrence(parse_spec(DECOUPLED), "decoupled")], []
    blocks.append(Prose("Switch the gradient off ($g_t = 0$). Each step is then a linear map of "
                        "$(theta_{t-1}, buf_{t-1})$; its characteristic polynomial governs how "
                        "fast $theta$ shrinks towards 0."))
    m_l2, m_dec = linear_map(L2), linear_map(DECOUPLED)
    p_l2, p_dec = characteristic(m_l2), characteristic(m_dec)
    claimed_l2 = z**2 - (1 + mu - lr * lam) * z + mu
    blocks.append(Equation(label("det(z I - M_L2)"), claimed_l2, p_l2,
                           "characteristic polynomial of L2 heavy ball"))
    verdicts.append(PROVEN if zero_test(p_l2 - claimed_l2).verdict == PROVEN else REFUTED)
    factored = sp.factor(p_dec)
    blocks.append(Equation(label("det(z I - M_decoupled)"), factored, p_dec,
                           "characteristic polynomial of decoupled decay"))

    # decoupled: from torch's start the buffer copies g = 0 and stays 0, so theta shrinks by
    # exactly (1 - lr*lambda): induction on (buf = 0, theta_t = (1 - lr*lambda) theta_{t-1})
    rule, h = build_rule(parse_spec(DECOUPLED)), parse_spec(DECOUPLED).hyper()
    state, theta = rule.step(rule.initial_state("start"), Y.theta(0), sp.Integer(0), h)
    blocks.append(Equation(label("theta_1"), (1 - lr * lam) * Y.theta(0), theta,
                           "first step from torch's start, $g = 0$; $buf_1 = 0$"))
    gen_state, gen_theta = rule.step({"buf": sp.Integer(0)}, Y.theta("t-1"), sp.Integer(0), h)
    blocks.append(Equation(label("theta_t"), (1 - lr * lam) * Y.theta("t-1"), gen_theta,
                           "a step from $buf_{t-1} = 0$; and $buf_t = 0$ again"))
    shrink_exact = (state["buf"] == 0 and gen_state["buf"] == 0 and
                    zero_test(gen_theta - (1 - lr * lam) * Y.theta("t-1")).verdict == PROVEN)
    verdicts.append(PROVEN if shrink_exact else REFUTED)
    blocks.append(Prose("By induction $theta_t = (1 - lr*weight_decay)^t theta_0$: decoupled "
                        "decay shrinks by exactly $1 - lr*weight_decay$ per step." if shrink_exact
                        else "Decoupled decay does not shrink by exactly $1 - lr*weight_decay$ "
                        "per step."))

    # L2: the root of p_L2 near 1 as a series in x = lr*lambda (implicit function, exact)
    p_x = p_l2.subs(lr * lam, x).subs(lam, x / lr)
    p_x = sp.expand(p_x)
    trial = sp.expand(p_x.subs(z, 1 + a1 * x + a2 * x**2))
    orders = [trial.coeff(x, n) for n in range(3)]
    sol = sp.solve(orders[1:], [a1, a2], dict=True)[0]
    residual = sum(sp.expand(o.subs(sol)) * x**n for n, o in enumerate(orders))
    blocks.append(Prose("L2's slow mode is the root of $p_L2$ near $z = 1$. Write $x = lr*weight_decay$ "
                        "and $r(x) = 1 + a_1 x + a_2 x^2 + O(x^3)$; the coefficients of $x^0$, "
                        "$x^1$, $x^2$ in $p_L2(r(x))$ must vanish:"))
    blocks.append(Equation(label("a_1"), sp.factor(sol[a1]), sol[a1], "order $x$"))
    blocks.append(Equation(label("a_2"), sp.factor(sol[a2]), sol[a2], "order $x^2$"))
    blocks.append(Equation(label("p_L2(r(x)) up to x^2"), sp.Integer(0), residual,
                           "the series solves the characteristic equation"))
    r_l2 = 1 + sol[a1] * x + sol[a2] * x**2

    # match the per-step shrinks 1 - lr*lambda_wd (decoupled) and r(lr*lambda_L2) (L2)
    first = sp.solve(sp.Eq(r_l2.coeff(x, 1) * lr * lam_l2, -lr * lam_wd), lam_l2)[0]
    blocks.append(Equation(label("lambda_L2"), (1 - mu) * lam_wd, first,
                           "first order: $r(lr*lambda_L2) = 1 - lr*lambda_wd + O(lr^2)$"))
    verdicts.append(PROVEN if zero_test(first - (1 - mu) * lam_wd).verdict == PROVEN
                    else REFUTED)
    second = sp.expand(r_l2.subs(x, lr * first) - (1 - lr * lam_wd))
    blocks.append(Equation(label("r(lr*lambda_L2) - (1 - lr*lambda_wd)"), sp.factor(second),
                           second, "with $lambda_L2 = (1 - momentum)*lambda_wd$, to second order"))
    mismatch = zero_test(second).verdict == "refuted"
    verdicts.append(PROVEN if mismatch else REFUTED)
    blocks.append(Prose("The second-order term does not vanish (unless $momentum = 0$): the "
                        "effective decay rates agree only to first order in $lr*weight_decay$."
                        if mismatch else
                        "The second-order term vanishes."))
    return theorem.derivation(combine(verdicts), blocks)


THEOREM = Theorem(
    name="heavy-ball-shrink",
    title="Heavy ball with the gradient off: exact and effective shrink",
    claim="With $g = 0$, L2 heavy ball has characteristic polynomial $z^2 - (1 + momentum - "
          "lr*weight_decay) z + momentum$; decoupled decay shrinks $theta$ by exactly "
          "$1 - lr*weight_decay$ per step; the two effective decay rates match only to first "
          "order, at $lambda_L2 = (1 - momentum)*lambda_wd$.",
    context="How fast does weight decay pull a parameter to 0 once the loss is flat? Decoupled "
            "decay answers with one factor; L2 answers with a root of the momentum recurrence, "
            "and the two only look alike for small $lr*weight_decay$.",
    reference="Polyak (1964), heavy-ball method; Loshchilov & Hutter (2019), Sec. 2",
    specs=(L2, DECOUPLED),
    build=build,
)
