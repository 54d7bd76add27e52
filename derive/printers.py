"""Printers for Derivations: text, LaTeX (amsmath), Markdown (GitHub/MkDocs math) and JSON.

All formulas are printed from SymPy expressions (derive.latex for LaTeX, str() for text); prose
is the only hand-written part. Unicode in prose is mapped to LaTeX so that pdflatex needs no
extra packages.
"""
from __future__ import annotations

import sympy as sp

from .derivation import Derivation, Equation, Inequality, Prose, Recurrence
from .latex import latex, latex_names

_TEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}"}
_TEX_UNICODE = {"θ": r"$\theta$", "λ": r"$\lambda$", "μ": r"$\mu$", "τ": r"$\tau$",
                "γ": r"$\gamma$", "β": r"$\beta$", "ε": r"$\epsilon$", "η": r"$\eta$",
                "α": r"$\alpha$", "∇": r"$\nabla$", "≈": r"$\approx$", "≠": r"$\neq$",
                "→": r"$\to$", "≤": r"$\le$", "≥": r"$\ge$", "·": r"$\cdot$", "√": r"$\surd$",
                "²": r"$^2$", "‖": r"$\|$", "⊙": r"$\odot$", "—": "---", "–": "--",
                "’": "'", "“": "``", "”": "''", "…": r"\dots{}", "−": "-", "×": r"$\times$"}


def tex_escape(text: str) -> str:
    out = []
    for ch in text:
        out.append(_TEX_SPECIALS.get(ch) or _TEX_UNICODE.get(ch) or
                   (ch if ord(ch) < 128 else "?"))
    return "".join(out)


def _check_mark(block) -> str:
    return {"proven": "checked", "supported": "numerically supported only",
            "refuted": "FAILS CHECK"}[block.check]


# -- text ----------------------------------------------------------------------------------------

def to_text(d: Derivation) -> str:
    lines = [f"{d.title}  [{d.name}]", "=" * min(78, len(d.title) + len(d.name) + 4),
             f"Claim: {d.claim}", ""]
    for block in d.blocks:
        if isinstance(block, Prose):
            lines += [block.text, ""]
        elif isinstance(block, Recurrence):
            if block.title:
                lines.append(block.title)
            width = max(len(str(a.target)) for a in block.lines)
            for a in block.lines:
                lines.append(f"    {str(a.target):>{width}} <- {a.expr}")
            lines.append("")
        elif isinstance(block, Equation):
            reason = f"   ({block.reason})" if block.reason else ""
            lines.append(f"    {block.lhs} = {block.rhs}{reason}   [{_check_mark(block)}]")
        elif isinstance(block, Inequality):
            lines.append(f"    {block.lhs} = {block.lhs_value} != {block.rhs} = {block.rhs_value}"
                         f"   ({block.reason})   [{_check_mark(block)}]")
    lines += ["", f"Verdict: {d.final_verdict().upper()}"]
    return "\n".join(lines)


# -- LaTeX ---------------------------------------------------------------------------------------

def _printer(d: Derivation):
    """latex() with one naming for the whole derivation (derive.latex.latex_names)."""
    symbols = set()
    for block in d.blocks:
        if isinstance(block, Recurrence):
            exprs = [e for a in block.lines for e in (a.target, a.expr)]
        elif isinstance(block, Equation):
            exprs = [block.lhs, block.rhs]
        elif isinstance(block, Inequality):
            exprs = [block.lhs, block.rhs, block.lhs_value, block.rhs_value]
        else:
            exprs = []
        symbols.update(*(sp.sympify(e).free_symbols for e in exprs))
    names = latex_names(symbols)
    return lambda expr: latex(expr, names)


def to_latex(d: Derivation, level: str = "section") -> str:
    """A fragment: one \\section (or \\subsection) per derivation."""
    tex = _printer(d)
    out = [f"\\{level}{{{tex_escape(d.title)}}}\\label{{thm:{d.name}}}",
           f"\\textbf{{Claim.}} {tex_escape(d.claim)}", ""]
    for block in d.blocks:
        if isinstance(block, Prose):
            out += [tex_escape(block.text), ""]
        elif isinstance(block, Recurrence):
            rows = [f"{tex(a.target)} &\\leftarrow {tex(a.expr)}" for a in block.lines]
            out += [f"\\noindent {tex_escape(block.title)}" if block.title else "",
                    "\\begin{align*}", " \\\\\n".join(rows), "\\end{align*}"]
        elif isinstance(block, Equation):
            tag = f"\\quad\\text{{({tex_escape(block.reason)})}}" if block.reason else ""
            out += ["\\begin{align*}", f"{tex(block.lhs)} &= {tex(block.rhs)}{tag}",
                    "\\end{align*}"]
        elif isinstance(block, Inequality):
            out += ["\\begin{align*}",
                    f"{tex(block.lhs)} &= {tex(block.lhs_value)} \\neq "
                    f"{tex(block.rhs_value)} = {tex(block.rhs)}",
                    "\\end{align*}", tex_escape(block.reason), ""]
    out += [f"\\noindent\\textbf{{Verdict:}} {tex_escape(d.final_verdict())}.", ""]
    return "\n".join(out)


# -- Markdown ------------------------------------------------------------------------------------

def to_markdown(d: Derivation, level: int = 2) -> str:
    tex = _printer(d)
    out = [f"{'#' * level} {d.title}", "", f"**Claim.** {d.claim}", ""]
    for block in d.blocks:
        if isinstance(block, Prose):
            out += [block.text, ""]
        elif isinstance(block, Recurrence):
            rows = " \\\\\n".join(f"{tex(a.target)} &\\leftarrow {tex(a.expr)}"
                                  for a in block.lines)
            out += [block.title, "", "$$", "\\begin{aligned}", rows, "\\end{aligned}",
                    "$$", ""]
        elif isinstance(block, Equation):
            out += ["$$", f"{tex(block.lhs)} = {tex(block.rhs)}", "$$"]
            if block.reason:
                out.append(f"*({block.reason}; {_check_mark(block)})*")
            out.append("")
        elif isinstance(block, Inequality):
            out += ["$$", f"{tex(block.lhs)} = {tex(block.lhs_value)} \\neq "
                    f"{tex(block.rhs_value)} = {tex(block.rhs)}", "$$",
                    f"*({block.reason}; {_check_mark(block)})*", ""]
    out += [f"**Verdict:** {d.final_verdict()}", ""]
    return "\n".join(out)


# -- JSON ----------------------------------------------------------------------------------------

def to_json(d: Derivation) -> dict:
    steps = []
    for block in d.blocks:
        if isinstance(block, Prose):
            steps.append({"kind": "prose", "text": block.text})
        elif isinstance(block, Recurrence):
            steps.append({"kind": "recurrence", "title": block.title,
                          "lines": [{"target": str(a.target), "expr": str(a.expr),
                                     "note": a.note} for a in block.lines]})
        elif isinstance(block, Equation):
            steps.append({"kind": "equation", "lhs": str(block.lhs), "rhs": str(block.rhs),
                          "value": str(block.value), "reason": block.reason,
                          "check": block.check})
        elif isinstance(block, Inequality):
            steps.append({"kind": "inequality", "lhs": str(block.lhs), "rhs": str(block.rhs),
                          "lhs_value": str(block.lhs_value), "rhs_value": str(block.rhs_value),
                          "reason": block.reason, "check": block.check})
    return {"name": d.name, "title": d.title, "claim": d.claim, "specs": list(d.specs),
            "verdict": d.final_verdict(), "steps": steps}


FORMATS = {"text": to_text, "latex": to_latex, "markdown": to_markdown}
__all__ = ["FORMATS", "to_json", "to_latex", "to_markdown", "to_text", "tex_escape"]
