"""AdamW as an exponential moving average (Wang & Aitchison 2024).

With the adamw entry's rule and its direction u_t kept opaque (the stages from the decoupled
decay on run on a symbol u_t in place of Adam's m_hat/(sqrt(v_hat) + eps)), one step is
theta_t = (1 - eta*lam)*theta_{t-1} - eta*u_t: an EMA of -u_t/lam with rate eta*lam. By
induction on t (the sums are SymPy Sums with a symbolic upper limit, not unrolled):
    theta_t = (1 - eta*lam)^t*theta_0 - eta*Sum_{tau=1..t} (1 - eta*lam)^(t - tau)*u_tau.
The weights fall by e after -1/log(1 - eta*lam) = 1/(eta*lam) - 1/2 + O(eta*lam) steps: the
time scale 1/(eta*lam) in iterations.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import stages as S
from optequiv.derive import symbols as Y
from optequiv.derive.derivation import Equation, Prose, label
from optequiv.derive.identity import PROVEN, REFUTED
from optequiv.derive.narrate import recurrence
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.proofs.registry import Theorem, combine

SPEC = "adamw(lr=eta, weight_decay=lam)"
eta, lam = Y.hyper("eta"), Y.hyper("lam")
t = sp.Symbol("t", integer=True, positive=True)
tau = sp.Symbol("tau", integer=True, positive=True)
x = sp.Symbol("x", positive=True)  # eta*lam, for the time scale
u = sp.Function("u", real=True)  # the direction, one opaque value per step: u(tau)
U = sp.Symbol("u_t", real=True)  # this step's direction
a, b = sp.Symbol("a"), sp.Symbol("b")  # the one-step map theta_t = a*theta_{t-1} + b*u_t


def closed_form(n, a=a, b=b):
    return a**n * Y.theta(0) + b * sp.Sum(a**(n - tau) * u(tau), (tau, 1, n))


def opaque_step(rule, theta_prev, direction):
    """theta_t from the rule's stages after its direction (from the decay stage on), run on
    `direction` in place of the direction the earlier stages compute."""
    names = rule.stage_names()
    if "decay" not in names:
        return None
    carry = S.Carry(theta_prev=theta_prev, theta=theta_prev, u=direction, state={})
    h = rule.spec.hyper()
    for stage in rule.stages[names.index("decay"):]:
        carry = stage.fn(carry, h)
    return carry.theta


def _linear_sums(expr):
    """expr with every c*Sum(f) as Sum(c*f), the sums over the same range merged into one
    (linearity), powers of one base combined: a*a**(t - 1 - tau) is a**(t - tau)."""
    outside, sums = sp.Integer(0), {}
    for term in sp.Add.make_args(sp.expand(expr)):
        inner = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum)]
        if len(inner) != 1:
            outside += term
            continue
        c = sp.Mul(*[f for f in sp.Mul.make_args(term) if not isinstance(f, sp.Sum)])
        sums[inner[0].limits] = sums.get(inner[0].limits, 0) + c * inner[0].function
    merged = [sp.Sum(sp.powsimp(sp.expand(fn)), *lim) for lim, fn in sums.items()]
    return sp.powsimp(outside) + sp.Add(*[m for m in merged if m.function != 0])


def build(theorem: Theorem):
    spec = parse_spec(SPEC)
    rule = build_rule(spec)
    th = Y.theta("t-1")
    blocks, verdicts = [recurrence(spec, "AdamW")], []
    blocks.append(Prose("Keep the direction opaque: $u_t$ stands for whatever the stages before "
                        "the decoupled decay compute (Adam's bias-corrected $m_hat_t/(sqrt(v_hat_t) "
                        "+ eps)$); the decay, the learning rate and the update then act on it."))
    step = opaque_step(rule, th, U)
    if step is None:
        return theorem.derivation(REFUTED, blocks + [Prose("The rule has no decoupled decay "
                                                           "stage: nothing to prove.")])
    # the step is affine in (theta_{t-1}, u_t): read its coefficients off the rule
    A, B = sp.diff(step, th), sp.diff(step, U)
    affine = not (A.has(th, U) or B.has(th, U)) and sp.expand(step - A * th - B * U) == 0
    verdicts.append(PROVEN if affine else REFUTED)
    blocks.append(Equation(label("theta_t"), sp.collect(sp.expand(step), th), step,
                           "one step of the rule on $u_t$: affine in $theta_{t-1}$ and $u_t$"))
    blocks.append(Equation(label("theta_t"), (1 - x) * th + x * (-U / lam), step.xreplace(
        {eta: x / lam}), "with $x = eta*lam$: an EMA of $-u_t/lam$ with rate $x$"))
    blocks.append(Prose("Write the step as $theta_t = a*theta_{t-1} + b*u_t$ and "
                        "$C_t = a^t*theta_0 + b*S_t$, $S_t$ the sum over $tau = 1, ..., t$ of "
                        "$a^(t - tau)*u_tau$. Induction on $t$, with the sums kept as sums "
                        "(symbolic upper limit, nothing unrolled):"))
    base = closed_form(0).doit()
    blocks.append(Equation(label("C_0"), Y.theta(0), base, "base case: the empty sum"))
    verdicts.append(PROVEN if base == Y.theta(0) else REFUTED)
    f = a**(t - tau) * u(tau)
    last = sp.Sum(f, (tau, t, t))
    peel = sp.Sum(f, (tau, 1, t - 1)) + last - sp.Sum(f, (tau, 1, t))
    blocks.append(Equation(label("S_t - (sum up to t-1) - (term tau = t)"), sp.Integer(0), peel,
                           f"the last term of $S_t$ is ${last.doit()}$"))
    peeled = sp.simplify(peel) == 0 and last.doit() == u(t)
    verdicts.append(PROVEN if peeled else REFUTED)
    # C_t - (a*C_{t-1} + b*u_t), S_t written as its first t - 1 terms plus the last
    gap = (closed_form(t) - (a * closed_form(t - 1) + b * u(t))).xreplace(
        {sp.Sum(f, (tau, 1, t)): sp.Sum(f, (tau, 1, t - 1)) + u(t)})
    gap = _linear_sums(gap)
    blocks.append(Equation(label("C_t - (a*C_{t-1} + b*u_t)"), sp.Integer(0), gap,
                           "induction step, for every $t >= 1$"))
    verdicts.append(PROVEN if gap == 0 else REFUTED)
    blocks.append(Equation(label("a"), 1 - eta * lam, A, "read off the rule"))
    blocks.append(Equation(label("b"), -eta, B, "read off the rule"))
    verdicts.append(PROVEN if sp.expand(A - (1 - eta * lam)) == 0 and sp.expand(B + eta) == 0
                    else REFUTED)
    blocks.append(Prose("So by induction, for every $t >= 0$: $theta_t = (1 - eta*lam)^t*theta_0 "
                        "- eta*S_t$, $S_t$ the sum over $tau = 1, ..., t$ of "
                        "$(1 - eta*lam)^(t - tau)*u_tau$."))
    # the time scale: the weight (1 - x)^(t - tau) falls by e after -1/log(1 - x) steps
    steps_e = -1 / sp.log(1 - x)
    series = sp.series(steps_e, x, 0, 2).removeO()
    blocks.append(Prose("Time scale: the weight of $u_tau$ is $(1 - eta*lam)^(t - tau) = "
                        "exp((t - tau)*log(1 - eta*lam))$, which falls by $e$ every "
                        "$-1/log(1 - eta*lam)$ steps; with $x = eta*lam$:"))
    blocks.append(Equation(label("-1/log(1 - x)"), 1 / x - sp.Rational(1, 2) - x / 12, series,
                           "series at $x = 0$, to $O(x^2)$"))
    leading = sp.limit(steps_e * x, x, 0)
    blocks.append(Equation(label("lim_{x->0} x*(-1/log(1 - x))"), sp.Integer(1), leading,
                           "the time scale is $1/(eta*lam)$ iterations to leading order"))
    verdicts.append(PROVEN if leading == 1 else REFUTED)
    blocks.append(Prose("So AdamW averages its directions over about $1/(eta*lam)$ steps: "
                        "changing $eta$ at fixed `weight_decay` changes that window, which is "
                        "why Wang & Aitchison scale $lam$ with $1/eta$ (and with the dataset and "
                        "model size) to keep it fixed."))
    return theorem.derivation(combine(verdicts), blocks)


THEOREM = Theorem(
    name="adamw-ema",
    title="AdamW is an exponential moving average, with time scale $1/(eta*lam)$",
    claim="For AdamW ($lr = eta$, `weight_decay` $= lam$) and any directions $u_t$ (Adam's "
          "$m_hat_t/(sqrt(v_hat_t) + eps)$), $theta_t = (1 - eta*lam)^t*theta_0 - eta*S_t$ at "
          "every step $t$, with $S_t$ the sum over $tau = 1, ..., t$ of "
          "$(1 - eta*lam)^(t - tau)*u_tau$: an EMA of $-u_t/lam$ with rate $eta*lam$, whose "
          "time scale is $1/(eta*lam)$ iterations.",
    context="What does AdamW's `weight_decay` set? Read as an EMA, the product $eta*lam$ "
            "fixes how many recent updates the parameters remember.",
    reference="Wang & Aitchison (2024), How to set AdamW's weight decay as you scale model "
              "and dataset size",
    specs=(SPEC,),
    build=build,
)
