"""Theorem 8: an audit of the seed post. Each formula the post states is a claim in
proofs/claims/seed.toml, checked by the claims checker against the model the post attributes
it to; where one fails, the file also checks it against the other convention. The verdict is
whatever the engine finds."""
from __future__ import annotations

from pathlib import Path

from optequiv.derive.derivation import Equation, Inequality, Prose, label
from optequiv.derive.identity import PROVEN, REFUTED
from optequiv.proofs.claims import check_file, spec_betas
from optequiv.proofs.registry import Theorem

SEED_CLAIMS = Path(__file__).resolve().parent.parent / "claims" / "seed.toml"
# the claims that state the post's own attribution (the others re-read a formula elsewhere)
ATTRIBUTED = (
    "seed: plain SGD with L2 written as wd * sum(theta^2)",
    "seed: for plain SGD that same update is weight decay (decoupled, lr-scaled)",
    "seed: momentum v_t = gamma*v_{t-1} + (1 - gamma)*grad (a zero-buffer EMA, not torch's SGD)",
    "seed: momentum with L2, the buffer v_t = gamma*v_{t-1} + (1 - gamma)*grad(J + wd*sum(theta^2))",
    "seed: the post's 'weight decay' momentum formula, against decoupled weight decay with the L2 coefficient 2*wd",
    "seed: the post's 'L2' momentum formula, against L2",
    "seed: Adam's first moment m_t = beta1*m_{t-1} + (1 - beta1)*g_t",
    "seed: Adam's second moment v_t = beta2*v_{t-1} + (1 - beta2)*g_t^2",
    "seed: Adam's update theta_{t+1} = theta_t - eta/(sqrt(v_hat_t) + eps) * m_hat_t",
    "seed: AMSGrad keeps the larger of v_hat_{t-1} and v_hat_t (checked at step 2 from the start)",
)


def build(theorem: Theorem):
    results = check_file(SEED_CLAIMS)
    blocks = [Prose("Each formula of the post, with the model it is attributed to, checked "
                    "symbolically (open loop: gradients are free symbols).")]
    failed = []
    for r in results:
        c = r.claim
        attributed = c.name in ATTRIBUTED
        blocks.append(Prose(f"`{c.name}` — model `{c.spec}`, from "
                            f"{'a general state' if c.start == 'state' else 'the initial state'}"
                            f", ${c.quantity}$ after {c.steps} step(s): {r.verdict.upper()}"
                            + ("" if attributed else " (a re-reading, not the post's attribution)")))
        name = f"{c.quantity}_{c.steps}"
        if r.verdict == REFUTED:
            point = r.counterexample["point"]
            model_at = r.model.xreplace({s: v for s, v in _point(r).items()})
            claim_at = c.equals.xreplace(_point(r))
            blocks.append(Inequality(label(f"{name}^model"), label(f"{name}^post"), model_at,
                                     claim_at, "at " + ", ".join(f"${k} = {v}$" for k, v in
                                                                 point.items())))
            if attributed:
                failed.append(c.name)
        else:
            blocks.append(Equation(label(f"{name}^model"), c.equals, r.model,
                                   "the post's formula" + (" (numerically supported only)"
                                                           if r.verdict != PROVEN else ""),
                                   betas=spec_betas(c.spec)))
    missing = [n for n in ATTRIBUTED if n not in {r.claim.name for r in results}]
    if missing:
        raise AssertionError(f"seed audit: claim {missing[0]!r} is not in {SEED_CLAIMS}")
    findings = []
    for name in failed:
        claim = next(r.claim for r in results if r.claim.name == name)
        instead = [str(r.claim.spec) for r in results if r.claim.name not in ATTRIBUTED
                   and r.verdict == PROVEN and r.claim.equals == claim.equals
                   and r.claim.quantity == claim.quantity]
        findings.append(f"`{name}` fails" + (f"; the same formula holds for "
                                             + " and for ".join(f"`{s}`" for s in instead)
                                             if instead else ""))
    blocks.append(Prose("Findings: " + ("every formula holds as attributed." if not failed
                                        else "; ".join(findings) + ".")))
    return theorem.derivation(REFUTED if failed else PROVEN, blocks)


def _point(result) -> dict:
    import sympy as sp

    from optequiv.derive import symbols as Y

    out = {}
    for name, value in result.counterexample["point"].items():
        symbol = Y.canonical(name) or Y.hyper(name)
        out[symbol] = sp.Rational(value)
    return out


THEOREM = Theorem(
    name="seed-audit",
    title="Audit of the seed post: its formulas against the models",
    claim="Every formula the seed post states holds for the model the post attributes it to.",
    context="A blog post is how most readers meet these formulas; this audit checks each of "
            "its formulas against the model it names (the claims file `proofs/claims/seed.toml`).",
    reference="the seed post, Adam (L2 regularization) and AdamW (weight decay), 2021",
    specs=(),
    build=build,
)
