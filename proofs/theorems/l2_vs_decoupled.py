"""L2 versus decoupled weight decay, one theorem per catalogue entry that offers both.

Generic over the catalogue: an entry joins by offering decay=l2 and decay=decoupled (an entry
added later is covered when it is merged). Each theorem compares the entry's coupled L2 with
its decoupled form under the compare engine: the first divergent step, the difference there and
the certificate (an exact point where no mapping of the coefficient exists, and a witness) are
what the engine computes. Every switch of the entry is on (momentum as a symbol), so that every
state the decay can reach is present; an entry whose decay=l2 is another entry's torch class
(AdamW's l2 is torch's Adam) is that entry's theorem, not a second one.
"""
from __future__ import annotations

from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.compare import compare
from optequiv.derive.derivation import Prose
from optequiv.derive.narrate import comparison_blocks
from optequiv.proofs.registry import Theorem, claim_divergent

SUFFIX = "-l2-vs-decoupled"


def offers_both(entry) -> bool:
    return entry.has("weight_decay") and {"l2", "decoupled"} <= set(entry.decays) \
        and "l2" not in entry.torch_decays


def specs(entry) -> tuple:
    """(L2, decoupled) with every switch on: a switch's own scalar as a symbol of its name."""
    # torch's switches only: a key of optequiv's own (eps_root) is another framework's rule
    on = [f"{h.key}={h.scalars[0].name}" for h in entry.hypers if not h.pair and h.torch
          and h.key != "weight_decay" and h.scalars[0].name in entry.switches]
    args = "".join(a + ", " for a in on)
    return (f"{entry.name}({args}weight_decay=lam, decay=l2)",
            f"{entry.name}({args}weight_decay=lam2, decay=decoupled)")


def build(theorem: Theorem):
    l2, decoupled = theorem.specs
    # the conditions under which they would coincide (lam = 0, lr = 0) are left out: they
    # cost seconds per entry and say nothing about the decay
    c = compare(l2, decoupled, want_conditions=False)
    k = c.first_divergent_step
    entry = ENTRIES[c.a.name]
    blocks = [Prose(f"{entry.class_name}'s own weight decay ({entry.reference}) is "
                    f"decay={entry.decays[0]}; decoupled decay is $theta*(1 - lr*lam) - lr*u$ "
                    "with $u$ the optimizer's own direction.")]
    blocks += comparison_blocks(c, "L2", "decoupled")
    verdict = claim_divergent(c, k)  # refuted where they coincide, undecided where unknown
    if c.reason:
        blocks.append(Prose(f"The engine's answer: {c.verdict} ({c.reason})."))
    return theorem.derivation(verdict, blocks)


def theorem(entry) -> Theorem:
    shown = entry.class_name
    l2, decoupled = specs(entry)
    return Theorem(
        name=entry.name + SUFFIX,
        title=f"{shown}: L2 versus decoupled weight decay, the first divergent step",
        claim=f"For {shown}, coupled L2 (`{l2}`) and decoupled decay (`{decoupled}`) are "
              "different rules: no constant mapping of the decay coefficient makes them agree "
              "at every step. The first step at which they differ, the difference there and a "
              "certificate are computed.",
        context=f"Is {shown}'s `weight_decay` the same as decoupled decay at some other "
                "coefficient? Only if a constant mapping exists; the engine searches for one "
                "step by step and proves there is none.",
        reference=f"{entry.reference}; Loshchilov & Hutter (2019), Decoupled Weight Decay "
                  "Regularization",
        specs=(l2, decoupled),
        build=build,
    )


THEOREMS = tuple(theorem(e) for e in ENTRIES.values() if offers_both(e))
