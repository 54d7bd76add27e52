"""The Lion box: with eta*lam <= 1 and |theta_0| <= 1/lam, |theta_t| <= 1/lam for every t.

Proven by induction from the lion entry's own step (derive.rules; the update is not retyped).
In the scaled variables u = lam*theta_{t-1} and x = eta*lam the step is
lam*theta_t = F(u, x, s), s the sign of Lion's interpolation; derive.regions splits the sign
into its three regions (s = 1, -1, 0, which cover every m and g). In each region F has
degree at most 1 in u and in x separately, so on the box |u| <= 1, 0 <= x <= 1 (the hypotheses)
it takes its extremes at the four corners: the bound is checked there, exactly. Without the
hypotheses the box fails: exact one-step counterexamples from the same rule.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.derivation import Equation, Inequality, Prose, label
from optequiv.derive.identity import PROVEN, REFUTED
from optequiv.derive.narrate import recurrence
from optequiv.derive.regions import regions
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.proofs.registry import Theorem, combine

SPEC = "lion(lr=eta, weight_decay=lam)"
eta, lam = Y.hyper("eta"), Y.hyper("lam")
u, x = sp.Symbol("u", real=True), sp.Symbol("x", nonnegative=True)  # lam*theta_{t-1}, eta*lam
CORNERS = [(sp.Integer(cu), sp.Integer(cx)) for cu in (-1, 1) for cx in (0, 1)]
# the counterexamples: (what fails, spec with numbers, theta_0, g_1)
FAILURES = (
    ("$eta*lam = 3 > 1$ (with $|theta_0| = 1/lam$)", "lion(lr=3, betas=(0.9, 0.99), weight_decay=1)",
     1, 1),
    ("$|theta_0| = 2 > 1/lam$ (with $eta*lam = 1/2$)",
     "lion(lr=1/2, betas=(0.9, 0.99), weight_decay=1)", 2, -1),
)


def scaled_step(spec_text: str = SPEC):
    """lam*theta_t as a function of u = lam*theta_{t-1}, x = eta*lam and the generic m, g."""
    spec = parse_spec(spec_text)
    _, theta = build_rule(spec).step({"m": Y.state("m", "t-1")}, Y.theta("t-1"), Y.grad("t"),
                                     spec.hyper())
    return sp.expand(lam * theta.xreplace({Y.theta("t-1"): u / lam, eta: x / lam}))


def _region_checks(piece) -> tuple:
    """(multilinear in u and x, corner values, every corner inside [-1, 1])."""
    multilinear = piece.is_polynomial(u, x) and sp.Poly(piece, u, x).degree(u) <= 1 \
        and sp.Poly(piece, u, x).degree(x) <= 1 and piece.free_symbols <= {u, x}
    values = [piece.xreplace({u: cu, x: cx}) for cu, cx in CORNERS]
    inside = all(v.is_number and -1 <= v <= 1 for v in values)
    return multilinear, values, inside


def build(theorem: Theorem):
    spec = parse_spec(SPEC)
    blocks = [recurrence(spec, "Lion"),
              Prose("Write $u = lam*theta_{t-1}$ and $x = eta*lam$: the hypotheses are "
                    "$|u| <= 1$ (the induction hypothesis, at $t = 1$ the assumption on "
                    "$theta_0$) and $0 <= x <= 1$. One step of the rule, scaled by $lam$:")]
    scaled = scaled_step()
    blocks.append(Equation(label("lam*theta_t"), scaled, scaled, "the rule's step, with "
                           "$theta_{t-1} = u/lam$ and $eta = x/lam$"))
    pieces = regions(scaled)
    verdicts = [PROVEN if pieces and len(pieces) == 3 else REFUTED]
    blocks.append(Prose("The sign splits the step into its regions (the interpolation "
                        "$c = beta1*m_{t-1} + (1 - beta1)*g_t$ positive, negative or zero: "
                        "every $m$ and $g$ lies in one). In each, the step has degree at most 1 "
                        "in $u$ and in $x$ separately, so on the box its extremes are at the "
                        "corners $u = -1, 1$ and $x = 0, 1$:"))
    for piece, conds in sorted(pieces or [], key=lambda pc: sp.default_sort_key(pc[0])):
        where = " and ".join(f"{c} {'= 0' if kind == 'eq' else '> 0' if kind == 'gt' else '>= 0'}"
                             for kind, c in conds)
        multilinear, values, inside = _region_checks(piece)
        verdicts.append(PROVEN if multilinear and inside else REFUTED)
        blocks.append(Equation(label("lam*theta_t"), sp.factor(piece), piece,
                               f"where ${where}$"))
        blocks.append(Prose("At the corners $(u, x)$ = " + ", ".join(
            f"$({cu}, {cx})$: ${v}$" for (cu, cx), v in zip(CORNERS, values))
            + (": every value lies in $[-1, 1]$." if inside and multilinear else
               ": the bound fails here." if multilinear else
               ": not of degree 1 in $u$ and $x$; the corners decide nothing.")))
    blocks.append(Prose("So $|theta_{t-1}| <= 1/lam$ implies $|theta_t| <= 1/lam$ for every "
                        "$m_{t-1}$ and $g_t$; with $|theta_0| <= 1/lam$, by induction "
                        "$|theta_t| <= 1/lam$ for every $t$, whatever the gradients."))

    blocks.append(Prose("Without the hypotheses the box fails, from the same rule:"))
    for words, text, theta0, g1 in FAILURES:
        s = parse_spec(text)
        _, theta1 = build_rule(s).step(build_rule(s).initial_state(), sp.Integer(theta0),
                                       sp.Integer(g1), s.hyper(numeric=True))
        bound = 1 / s.hyper(numeric=True)["weight_decay"]
        outside = bool(theta1.is_number and abs(theta1) > bound)
        verdicts.append(PROVEN if outside else REFUTED)
        blocks.append(Prose(f"{words}: `{text}` from $theta_0 = {theta0}$ with $g_1 = {g1}$ "
                            f"gives $theta_1 = {theta1}$, outside $[-{bound}, {bound}]$."
                            if outside else f"{words}: `{text}` stays in the box."))
        blocks.append(Inequality(label("|theta_1|"), label("1/lam"), abs(theta1), bound,
                                 "one step of the rule at these exact values"))
    return theorem.derivation(combine(verdicts), blocks)


THEOREM = Theorem(
    name="lion-box",
    title="The Lion box: with $eta*lam <= 1$, $|theta_t| <= 1/lam$ for every $t$",
    claim="For Lion with decoupled decay ($lr = eta$, `weight_decay` $= lam$), if "
          "$eta*lam <= 1$ and $|theta_0| <= 1/lam$ then $|theta_t| <= 1/lam$ at every step, for "
          "every gradient sequence; dropping either hypothesis breaks the bound.",
    context="Lion's update has magnitude $eta$ in every coordinate, so decoupled decay is what "
            "keeps the parameters bounded: it confines them to the box $[-1/lam, 1/lam]$, the "
            "constraint of the optimisation problem Lion with decay solves.",
    reference="Chen et al. (2023), Symbolic Discovery of Optimization Algorithms; Chen, Liu, "
              "Liang & Liu (2024), Lion Secretly Solves Constrained Optimization",
    specs=(SPEC,),
    build=build,
)
