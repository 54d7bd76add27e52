"""Derivations: ordered blocks of prose, recurrences and equalities, each equality checked.

A Derivation is data. Its printers (derive.printers) render the same blocks as text, LaTeX,
Markdown or JSON. Every Equation carries, beside what is displayed (lhs = rhs), the `value` that
lhs stands for, computed from the rules; the check is zero_test(value - rhs), run when the block
is made, so a displayed equality that SymPy cannot confirm is visible as such and lowers the
derivation's verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .identity import PROVEN, REFUTED, SUPPORTED, nonzero_number, zero_test


def label(name: str) -> sp.Symbol:
    """A symbol for a displayed quantity such as theta^A_2 (printed, never solved for)."""
    return sp.Symbol(name)


@dataclass
class Prose:
    text: str


@dataclass
class Recurrence:
    title: str  # e.g. "A: sgd(lr=eta, momentum=mu, weight_decay=lam)"
    lines: list  # derive.trace.Assign


@dataclass
class Equation:
    lhs: sp.Expr
    rhs: sp.Expr
    value: sp.Expr  # what lhs stands for, computed from the rules
    reason: str = ""
    betas: tuple = ()  # symbols known to lie in [0, 1), for the check
    check: str = field(init=False)

    def __post_init__(self):
        self.check = zero_test(self.value - self.rhs, betas=self.betas).verdict


@dataclass
class Inequality:
    """lhs != rhs, shown by exact values at a stated point (a witness)."""

    lhs: sp.Expr
    rhs: sp.Expr
    lhs_value: sp.Expr
    rhs_value: sp.Expr
    reason: str = ""
    check: str = field(init=False)

    def __post_init__(self):
        self.check = PROVEN if nonzero_number(self.lhs_value - self.rhs_value) else REFUTED


@dataclass
class Derivation:
    name: str
    title: str
    claim: str
    specs: list
    verdict: str  # the theorem's computed verdict: proven | refuted | supported | undecided
    blocks: list = field(default_factory=list)
    context: str = ""  # a sentence on why the question matters, for the documents
    reference: str = ""  # where the statement comes from (Loshchilov & Hutter, Prop. 1)

    # Jupyter shows a Derivation as its Markdown page (text/markdown), or as its formulas
    # (text/latex) where a front end prefers LaTeX
    def _repr_markdown_(self) -> str:
        from .printers import to_markdown

        return to_markdown(self)

    def _repr_latex_(self) -> str:
        from .printers import to_math

        return to_math(self)

    def add(self, *blocks):
        self.blocks.extend(blocks)
        return self

    def checked(self) -> list:
        return [b for b in self.blocks if isinstance(b, (Equation, Inequality))]

    def final_verdict(self) -> str:
        """The computed verdict, lowered to 'supported' when a displayed step has only numeric
        support; a displayed step that fails its check is a bug and raises."""
        checks = {b.check for b in self.checked()}
        if REFUTED in checks:
            bad = [b for b in self.checked() if b.check == REFUTED]
            raise AssertionError(f"{self.name}: a displayed step fails its own check: {bad[0]}")
        if self.verdict == PROVEN and SUPPORTED in checks:
            return SUPPORTED
        return self.verdict
