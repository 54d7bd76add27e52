"""Where eps goes: torch's m_hat/(sqrt(v_hat) + eps) against the raw form
lr*sqrt(1 - beta2^t)/(1 - beta1^t) * m/(sqrt(v) + eps_raw) (Keras 3, Hugging Face 4.x AdamW,
TF legacy, MXNet).

Both are Adam; they agree at step t exactly when eps_raw = eps*sqrt(1 - beta2^t), a value that
changes with t, so no constant eps_raw reproduces torch's eps: the engine finds step 1's mapping,
refutes every constant one at step 2 and gives the difference there. The per-step value is
solved from one generic step of the two rules (from a general state), not written down.
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
from optequiv.proofs.registry import PROVEN, REFUTED, Theorem, claim_divergent, combine

TORCH = "adam(eps=eps)"
RAW = "adam(eps=eps_raw, eps_added_to=sqrt_v)"
SAME = "adam(eps=eps, eps_added_to=sqrt_v)"
eps, eps_raw = Y.hyper("eps"), Y.hyper("eps_raw")
b1, b2 = Y.hyper("beta1"), Y.hyper("beta2")


def _generic_step(text: str, **h):
    """theta_t of one step of `text` from a general state at step t (t_{t-1} = t - 1)."""
    spec = parse_spec(text)
    rule = build_rule(spec)
    hyper = {**spec.hyper(), **h}
    _, theta = rule.step(rule.initial_state("state"), Y.theta(0), Y.grad(1), hyper)
    return theta


def build(theorem: Theorem):
    blocks, verdicts = [], []

    c = compare(TORCH, RAW, want_conditions=False)  # Part 3 states where they coincide
    verdicts.append(claim_divergent(c, 2))
    first = c.trail[0].solutions[0] if c.trail and c.trail[0].solutions else {}
    blocks.append(Prose("Part 1. torch adds $eps$ to $sqrt(v_hat)$; the raw form adds its own "
                        "$eps_raw$ to $sqrt(v)$ and moves the bias correction into the step "
                        "size. Is there a constant $eps_raw$ that makes them the same optimizer?"))
    blocks += comparison_blocks(c, "torch", "raw")
    if eps_raw in first:
        blocks.append(Equation(label("eps_raw (step 1)"), eps * sp.sqrt(1 - b2), first[eps_raw],
                               "the mapping the engine solved for step 1", betas=(b1, b2)))
    else:
        verdicts.append(REFUTED)

    # Part 2: the value that makes a generic step t coincide, solved from the two rules
    torch_t = _generic_step(TORCH)
    raw_t = _generic_step(RAW)
    t = Y.state("t", 0) + 1
    # check=False: the solution is checked below, as two Equations (3x faster than solve's own)
    solved = sp.solve(sp.Eq(raw_t, torch_t), eps_raw, check=False)
    blocks.append(Prose("Part 2. One generic step $t$ of each, from the same general state "
                        "($t_0 = t - 1$, $m_0$, $v_0$): the raw form's $eps_raw$ that makes "
                        "this step coincide with torch's, solved from the two steps."))
    if len(solved) == 1:
        blocks.append(Equation(label("eps_raw (step t)"), eps * sp.sqrt(1 - b2 ** t),
                               solved[0], "the only solution; $t = t_0 + 1$", betas=(b1, b2)))
        at = _generic_step(RAW, eps=solved[0])  # h is by canonical name
        blocks.append(Equation(label("theta^raw_t - theta^torch_t"), sp.Integer(0),
                               at - torch_t, "with that $eps_raw$, the steps coincide",
                               betas=(b1, b2)))
        moves = zero_test(sp.diff(solved[0], Y.state("t", 0))).verdict != PROVEN
        verdicts.append(PROVEN if moves else REFUTED)
    else:
        verdicts.append(REFUTED)
    weight = float(1 / sp.sqrt(1 - parse_spec("adam").hyper(numeric=True)["beta2"]))
    blocks.append(Prose("It depends on $t$: $eps*sqrt(1 - beta2^t)$ grows from "
                        "$eps*sqrt(1 - beta2)$ towards $eps$, so no constant $eps_raw$ serves "
                        "every step (Part 1's step 2 is where the first one fails). Late in a "
                        "run the two coincide up to $beta2^t$; early, the raw form's $eps$ "
                        f"weighs $1/sqrt(1 - beta2^t)$ times more (about {weight:.1f} at step 1 "
                        "with torch's $beta2 = 0.999$)."))

    c = compare(TORCH, SAME)
    verdicts.append(claim_divergent(c, 1))
    blocks.append(Prose("Part 3. The same $eps$ in both places (a value copied from a torch "
                        "recipe into Keras): different from step 1."))
    blocks += comparison_blocks(c, "torch", "raw, same eps")
    return theorem.derivation(combine(verdicts), blocks)


THEOREM = Theorem(
    name="eps-placement",
    title="Where $eps$ goes: $sqrt(v_hat) + eps$ (torch) or $sqrt(v) + eps$ (Keras, Hugging "
          "Face 4.x AdamW)",
    claim="Adam with $eps$ added to $sqrt(v_hat)$ and Adam with $eps_raw$ added to $sqrt(v)$ "
          "(the bias correction in the step size) agree at step $t$ exactly when "
          "$eps_raw = eps*sqrt(1 - beta2^t)$: step 1 coincides at $eps_raw = eps*sqrt(1 - beta2)$, "
          "and no constant $eps_raw$ makes them agree beyond, the first divergent step is 2; "
          "with the same $eps$ they differ from step 1.",
    context="A recipe moved between torch and Keras (or Hugging Face's 4.x AdamW) keeps its "
            "`eps`, which then means another optimizer, most visibly in the first steps.",
    reference="`torch.optim.Adam`'s documentation; Keras 3 `Adam`; Kingma & Ba (2015), "
              "Section 2, the 'more efficient' order of computation",
    specs=(TORCH, RAW, SAME),
    build=build,
)
