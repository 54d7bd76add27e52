"""Other frameworks' decay conventions against torch's AdamW, made exact (issue 11).

- decay after the step (old Hugging Face AdamW) is torch's AdamW at other coefficients: the
  engine finds lr' = lr*(1 - lr*lam), lam' = lam/(1 - lr*lam) (Adam's direction is free of lr);
- the proximal decay theta/(1 + lr*lam) (timm's Adan) differs from decoupled decay at step 1
  by lr^2*lam times a factor finite at lr = 0: they agree to first order in lr; it is decoupled
  decay at lr' = lr/(1 + lr*lam), the same lam;
- Composer's decay scaled by lr/initial_lr is lr-independent decay (Loshchilov & Hutter) at
  lam' = lam*lr/initial_lr while the lr is constant; under a schedule that breaks at step 2,
  and torch's own decoupled decay at lam' = lam/initial_lr reproduces it under any schedule.
Every mapping, divergent step and difference is computed by derive.compare, none written here
but the claims they are judged against.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.compare import compare
from optequiv.derive.derivation import Equation, Prose, label
from optequiv.derive.identity import zero_test
from optequiv.derive.narrate import comparison_blocks
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.proofs.registry import PROVEN, REFUTED, Theorem, claim_divergent, \
    claim_equivalent, combine

# the symbols of the other theorems where they mean the same (the notation table is one page)
eta, alpha, eta0 = Y.hyper("eta"), Y.hyper("alpha"), Y.hyper("eta0")
lam, lam2 = Y.hyper("lam"), Y.hyper("lam2")
TORCH = "adamw(lr=eta, weight_decay=lam)"
TORCH_FREE = "adamw(lr=alpha, weight_decay=lam2)"
AFTER = "adamw(lr=eta, weight_decay=lam, decay=after)"
PROXIMAL = "adamw(lr=eta, weight_decay=lam, decay=proximal)"
COMPOSER = "adamw(lr=eta, weight_decay=lam, decay_scale=lr_ratio, initial_lr=eta0)"
INDEPENDENT = "adamw(lr=eta, weight_decay=lam2, decay=independent)"
DECOUPLED = "adamw(lr=eta, weight_decay=lam2)"


def _direction(start: str) -> sp.Expr:
    """Adam's direction u of one step from `start` ("start" or "state"), (theta_0 - theta_1)/lr
    of the same rule without decay: computed from the rule, not written out."""
    plain = parse_spec("adamw(lr=eta, weight_decay=0)")
    rule = build_rule(plain)
    _, theta1 = rule.step(rule.initial_state(start), Y.theta(0), Y.grad(1), plain.hyper())
    return (Y.theta(0) - theta1) / eta


def _first_order(c, where: str) -> tuple:
    """(verdict, block): the step-1 difference is eta^2*lam*(lam*theta_0 + u)/(1 + eta*lam), u
    Adam's direction: a factor finite and non-zero at eta = 0, so the difference and its
    derivative in eta vanish there (equal to first order)."""
    if c.difference is None:
        return REFUTED, Prose(f"{where}: the engine gave no difference.")
    scaled = sp.cancel(c.difference / (eta**2 * lam))
    factor = (lam * Y.theta(0) + _direction(c.start)) / (1 + eta * lam)
    at_zero = scaled.subs(eta, 0)
    ok = not at_zero.has(sp.zoo, sp.nan, sp.oo, -sp.oo) \
        and zero_test(at_zero).verdict == REFUTED and zero_test(scaled - factor).verdict == PROVEN
    return (PROVEN if ok else REFUTED), Equation(
        label("(theta^B_1 - theta^A_1)/(eta^2*lam)"), factor, scaled,
        f"{where}: $u$ the step's Adam direction; finite and non-zero at $eta = 0$")


def build_after_proximal(theorem: Theorem):
    blocks, verdicts = [], []

    c = compare(AFTER, TORCH_FREE, want_conditions=False)
    verdicts.append(claim_equivalent(c, {alpha: eta * (1 - eta * lam),
                                         lam2: lam / (1 - eta * lam)}))
    blocks.append(Prose("Part 1. Decay after the step (old Hugging Face AdamW) is "
                        "$(1 - eta*lam)*(theta - eta*u)$: torch's AdamW at other coefficients, "
                        "since Adam's direction $u$ does not depend on the lr."))
    blocks += comparison_blocks(c, "after", "torch")

    c = compare(TORCH, PROXIMAL, want_conditions=False)
    verdicts.append(claim_divergent(c, 1))
    blocks.append(Prose("Part 2. The proximal decay $theta/(1 + eta*lam)$ after the step "
                        "(timm's Adan) against torch's decoupled decay at the same coefficients."))
    blocks += comparison_blocks(c, "decoupled", "proximal")
    mid = compare(TORCH, PROXIMAL, start="state", want_conditions=False, want_witness=False)
    for where, comparison in (("from torch's start", c), ("from a general mid-run state", mid)):
        verdict, block = _first_order(comparison, where)
        verdicts.append(verdict)
        blocks.append(block)
    blocks.append(Prose("So the two agree to first order in the lr: one step differs by "
                        "$eta^2*lam$ times a factor finite at $eta = 0$, from any shared state, "
                        "as decay after the step does (theorem decay-conventions, Part 4)."))

    c = compare(PROXIMAL, TORCH_FREE, want_conditions=False)
    verdicts.append(claim_equivalent(c, {alpha: eta / (1 + eta * lam), lam2: lam}))
    blocks.append(Prose("Part 3. Yet the proximal decay is decoupled decay exactly, at a smaller "
                        "lr and the same coefficient: $(theta - eta*u)/(1 + eta*lam)$ is "
                        "$theta*(1 - eta'*lam) - eta'*u$ with $eta' = eta/(1 + eta*lam)$."))
    blocks += comparison_blocks(c, "proximal", "torch")
    return theorem.derivation(combine(verdicts), blocks)


def build_schedule_ratio(theorem: Theorem):
    blocks, verdicts = [], []

    c = compare(COMPOSER, INDEPENDENT, want_conditions=False)
    verdicts.append(claim_equivalent(c, {lam2: lam * eta / eta0}))
    blocks.append(Prose("Part 1. Composer's DecoupledAdamW decays by $lam*eta_t/eta_0$ per step. "
                        "At a constant lr that is lr-independent decay (Loshchilov & Hutter) "
                        "at the coefficient $lam*eta/eta_0$."))
    blocks += comparison_blocks(c, "Composer", "independent")

    c = compare(COMPOSER, INDEPENDENT, schedule=[eta], want_conditions=False)
    verdicts.append(claim_divergent(c, 2))
    blocks.append(Prose("Part 2. Under a schedule $eta_t$ no constant coefficient of the "
                        "lr-independent decay follows it: the first step after the lr changes "
                        "parts them."))
    blocks += comparison_blocks(c, "Composer", "independent")

    c = compare(COMPOSER, DECOUPLED, schedule=[eta], want_conditions=False)
    verdicts.append(claim_equivalent(c, {lam2: lam / eta0}))
    blocks.append(Prose("Part 3. What holds under every schedule: torch's own AdamW with "
                        "`weight_decay` $= lam/eta_0$, since "
                        "$lam*eta_t/eta_0 = eta_t*(lam/eta_0)$."))
    blocks += comparison_blocks(c, "Composer", "torch")
    return theorem.derivation(combine(verdicts), blocks)


THEOREMS = (
    Theorem(
        name="decay-after-proximal",
        title="Decay after the step and the proximal decay: torch's AdamW at other coefficients",
        claim="Decay after the step (old Hugging Face AdamW) at $(eta, lam)$ is torch's AdamW at "
              "`lr` $= eta*(1 - eta*lam)$, `weight_decay` $= lam/(1 - eta*lam)$; the proximal "
              "decay "
              "(timm Adan) differs from torch's decoupled decay from step 1, by $eta^2*lam$ "
              "times a factor finite at $eta = 0$ (equal to first order), and is torch's AdamW "
              "at `lr` $= eta/(1 + eta*lam)$ with the same $lam$.",
        context="Recipes move between frameworks that decay before, after or proximally; each "
                "is torch's AdamW at some lr and coefficient, which a user has to convert.",
        reference="transformers 4.x `AdamW` (decay after the step); timm `Adan` "
                  "(`param.div_(1 + lr*weight_decay)`); torch 2.13 torch/optim/adamw.py",
        specs=(AFTER, TORCH_FREE, TORCH, PROXIMAL),
        build=build_after_proximal,
    ),
    Theorem(
        name="decay-schedule-ratio",
        title="Decay scaled by the schedule ratio (Composer): lr-independent only at constant lr",
        claim="Composer's DecoupledAdamW (`decay_scale=lr_ratio`) is lr-independent decay at "
              "$lam*eta/eta_0$ while the lr is constant; under a schedule it parts from every "
              "constant coefficient of it at step 2, and is torch's AdamW with `weight_decay` "
              "$= lam/eta_0$ under every schedule.",
        context="Composer's `weight_decay` is not torch's and not the paper's: converting it "
                "needs the initial lr, and a schedule decides which conversion holds.",
        reference="Composer composer/optim/decoupled_weight_decay.py (DecoupledAdamW: "
                  "`decay_factor = lr/initial_lr`); Loshchilov & Hutter (2019), Algorithm 2",
        specs=(COMPOSER, INDEPENDENT, DECOUPLED),
        build=build_schedule_ratio,
    ),
)
