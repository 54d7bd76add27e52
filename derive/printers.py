"""Printers for Derivations: text, LaTeX (amsmath), Markdown (GitHub/MkDocs math) and JSON.

All formulas are printed from SymPy expressions (derive.latex for LaTeX, str() for text); prose
is the only hand-written part, and the formulas in it are written between dollars in the prose
formula language (`$k = lr*lam$`) and printed through the same notation table (derive.latex):
math in LaTeX and Markdown, Unicode in text. Spec strings go between backticks and print as code.
Unicode in prose is mapped to LaTeX so that pdflatex needs no extra packages.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import sympy as sp

from .derivation import Derivation, Equation, Inequality, Prose, Recurrence
from .latex import latex, latex_names, math_latex, math_unicode

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


_PIECES = re.compile(r"(\$[^$]+\$|`[^`]+`)")
_MD_SPECIALS = re.compile(r"([\\*_\[\]<>`$|#~])")


def _pieces(text: str):
    """(kind, content) for the prose, math ($...$) and code (`...`) pieces of a sentence."""
    for piece in _PIECES.split(text):
        if piece.startswith("$") and piece.endswith("$") and len(piece) > 1:
            yield "math", piece[1:-1]
        elif piece.startswith("`") and piece.endswith("`") and len(piece) > 1:
            yield "code", piece[1:-1]
        elif piece:
            yield "text", piece


def prose_text(text: str) -> str:
    return "".join(math_unicode(c) if k == "math" else c for k, c in _pieces(text))


def prose_latex(text: str, paragraph: bool = True) -> str:
    """LaTeX for a sentence; paragraph=False for a table cell (no ragged-right paragraph)."""
    out = []
    for kind, content in _pieces(text):
        if kind == "math":
            out.append(f"${math_latex(content)}$")
        elif kind == "code":
            # break points inside specs (a monospaced spec has no hyphenation), and the
            # paragraph set ragged right, since fixed-width spaces cannot stretch
            code = re.sub(r"([,(=])", r"\1\\allowbreak{}", tex_escape(content))
            out.append(r"\texttt{" + code + "}")
        else:
            out.append(tex_escape(content))
    if paragraph and any(kind == "code" for kind, _ in _pieces(text)):
        return r"{\raggedright " + "".join(out) + r"\par}"
    return "".join(out)


def prose_markdown(text: str) -> str:
    """CommonMark that means what it says: specials outside math and code are escaped, so that
    no `*` or `_` of the prose turns into emphasis and no `<` into HTML."""
    out = []
    for kind, content in _pieces(text):
        if kind == "math":
            out.append(f"${math_latex(content).strip()}$")
        elif kind == "code":
            out.append(f"`{content}`")
        else:
            out.append(_MD_SPECIALS.sub(r"\\\1", content))
    return "".join(out)


def _check_mark(block) -> str:
    return {"proven": "checked", "supported": "numerically supported only",
            "refuted": "FAILS CHECK"}[block.check]


# -- text ----------------------------------------------------------------------------------------

def to_text(d: Derivation) -> str:
    title = prose_text(d.title)
    lines = [f"{title}  [{d.name}]", "=" * min(78, len(title) + len(d.name) + 4)]
    if d.context:
        lines.append(prose_text(d.context))
    if d.reference:
        lines.append(f"Reference: {prose_text(d.reference)}")
    lines += [f"Claim: {prose_text(d.claim)}", ""]
    for block in d.blocks:
        if isinstance(block, Prose):
            lines += [prose_text(block.text), ""]
        elif isinstance(block, Recurrence):
            if block.title:
                lines.append(prose_text(block.title))
            width = max(len(str(a.target)) for a in block.lines)
            for a in block.lines:
                lines.append(f"    {str(a.target):>{width}} <- {a.expr}")
            lines.append("")
        elif isinstance(block, Equation):
            reason = f"   ({prose_text(block.reason)})" if block.reason else ""
            lines.append(f"    {block.lhs} = {block.rhs}{reason}   [{_check_mark(block)}]")
        elif isinstance(block, Inequality):
            lines.append(f"    {block.lhs} = {block.lhs_value} != {block.rhs} = {block.rhs_value}"
                         f"   ({prose_text(block.reason)})   [{_check_mark(block)}]")
    lines += ["", f"Verdict: {d.final_verdict().upper()}"]
    return "\n".join(lines)


# -- LaTeX ---------------------------------------------------------------------------------------

# visible characters of math on one line of the article (11pt, 17 cm of text): longer right-hand
# sides are broken after a term, amsmath-style, rather than run into the margin
WIDTH = 62


def visible_width(tex: str) -> int:
    """About how many characters wide a LaTeX formula prints: a command counts as one, a
    fraction as its wider part, scripts as half."""
    width, i = 0.0, 0
    while i < len(tex):
        if tex.startswith(r"\frac", i):
            i += 5
            parts = []
            for _ in range(2):
                depth, j = 0, i
                while j < len(tex):
                    depth += {"{": 1, "}": -1}.get(tex[j], 0)
                    j += 1
                    if depth == 0:
                        break
                parts.append(visible_width(tex[i + 1:j - 1]))
                i = j
            width += max(parts)
            continue
        if tex.startswith(r"\left", i) or tex.startswith(r"\right", i):
            i += 5 if tex.startswith(r"\left", i) else 6
            continue
        match = re.match(r"\\[A-Za-z]+|\\.", tex[i:])
        if match:
            command = match.group(0)
            width += 0 if command in (r"\,", r"\;", r"\quad", r"\qquad") else 1
            i += len(command)
            continue
        ch = tex[i]
        if ch in "^_":
            width -= 0.5  # roughly: the script's characters count half below
        elif ch not in "{} ":
            width += 1
        i += 1
    return int(width + 0.5)


def _terms(expr) -> list:
    """The top-level terms of a sum, or of the one sum inside a product (c·(a + b + ...)), with
    what multiplies them, for breaking a long formula across lines."""
    expr = sp.sympify(expr)
    if isinstance(expr, sp.Add):
        return sp.Integer(1), list(expr.as_ordered_terms())
    if isinstance(expr, sp.Mul):
        sums = [f for f in expr.args if isinstance(f, sp.Add)]
        if len(sums) == 1:
            rest = sp.Mul(*[f for f in expr.args if f is not sums[0]])
            return rest, list(sums[0].as_ordered_terms())
    return None, []


def broken_rows(lhs: str, relation: str, expr, tex) -> list:
    r"""Rows of an align environment for `lhs relation expr`: one row, or, when expr prints wider
    than WIDTH, its terms spread over several rows (continuation rows start with `&\quad +`)."""
    whole = tex(expr)
    factor, terms = _terms(expr)
    if visible_width(whole) <= WIDTH or len(terms) < 2:
        return [f"{lhs} &{relation} {whole}"]
    pieces = [tex(t) for t in terms]
    pieces = [p if i == 0 or p.startswith("-") else "+ " + p for i, p in enumerate(pieces)]
    lead = "" if factor == 1 else (tex(factor) + r" \Bigl(" if factor != -1 else r"- \Bigl(")
    close = "" if factor == 1 else r" \Bigr)"
    rows, line = [], lead
    for piece in pieces:
        if line.strip() and visible_width(line + piece) > WIDTH:
            rows.append(line)
            line = ""
        line += " " + piece
    rows.append(line + close)
    return [f"{lhs} &{relation} {rows[0]}"] + [r"&\quad " + r for r in rows[1:]]


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


def _math_blocks(d: Derivation, tex):
    """Each block as (kind, payload) with its formulas already broken into rows; LaTeX and
    Markdown differ only in how they wrap them."""
    for block in d.blocks:
        if isinstance(block, Prose):
            yield "prose", block.text, None
        elif isinstance(block, Recurrence):
            rows = [r for a in block.lines
                    for r in broken_rows(tex(a.target), r"\leftarrow", a.expr, tex)]
            yield "rows", rows, block.title
        elif isinstance(block, Equation):
            yield "rows", broken_rows(tex(block.lhs), "=", block.rhs, tex), \
                (block.reason, _check_mark(block))
        elif isinstance(block, Inequality):
            rows = [f"{tex(block.lhs)} &= {tex(block.lhs_value)}",
                    f"&\\neq {tex(block.rhs_value)} = {tex(block.rhs)}"]
            yield "rows", rows, (block.reason, _check_mark(block))


@dataclass(frozen=True)
class _Style:
    """How LaTeX or Markdown writes each part of a derivation; _render lays them out alike."""
    prose: Callable[[str], str]
    heading: Callable  # (derivation, level) -> its heading lines
    reference: str  # str.format pattern of the reference line
    claim: str  # and of the claim line
    caption: Callable[[str], list]  # a recurrence's title -> lines before its display
    display: Callable[[list], list]  # rows (already broken) -> the display's lines
    note: str  # pattern of the line after a checked formula: its reason and check mark
    after: list  # the lines after a display that has no note
    verdict: Callable[[str], str]


def _render(d: Derivation, style: _Style, level) -> str:
    """The heading, context, reference and claim, then each block (prose, or a display with
    its caption or its note), then the verdict where there is one (a catalogue page shows a
    model, not a verdict)."""
    out = style.heading(d, level)
    if d.context:
        out += [style.prose(d.context), ""]
    if d.reference:
        out += [style.reference.format(style.prose(d.reference)), ""]
    out += [style.claim.format(style.prose(d.claim)), ""]
    for kind, payload, extra in _math_blocks(d, _printer(d)):
        if kind == "prose":
            out += [style.prose(payload), ""]
            continue
        if isinstance(extra, str) and extra:
            out += style.caption(extra)
        out += style.display(payload)
        if isinstance(extra, tuple):
            reason, mark = extra
            out += [style.note.format(f"{style.prose(reason)}; {mark}" if reason else mark), ""]
        else:
            out += style.after
    if d.verdict:
        out += [style.verdict(d.final_verdict()), ""]
    return "\n".join(out)


def _latex_heading(d: Derivation, level: str) -> list:
    title = prose_latex(d.title, paragraph=False)
    if "$" in d.title or "`" in d.title:  # the PDF's bookmarks take text, not math or code
        bookmark = tex_escape(d.title.replace("$", "").replace("`", ""))
        title = f"\\texorpdfstring{{{title}}}{{{bookmark}}}"
    return [f"\\{level}{{{title}}}\\label{{thm:{d.name}}}"]


_LATEX = _Style(
    prose=prose_latex, heading=_latex_heading, reference="\\textit{{Reference:}} {}.",
    claim="\\textbf{{Claim.}} {}", caption=lambda text: [f"\\noindent {prose_latex(text)}"],
    display=lambda rows: ["\\begin{align*}", " \\\\\n".join(rows), "\\end{align*}"],
    note="({})", after=[],
    verdict=lambda v: f"\\noindent\\textbf{{Verdict:}} {tex_escape(v)}.")


def to_latex(d: Derivation, level: str = "section") -> str:
    """A fragment: one \\section (or \\subsection) per derivation, with its context, reference
    and claim, each recurrence and checked equality in an align* (long ones broken)."""
    return _render(d, _LATEX, level)


def to_math(d: Derivation) -> str:
    """Every formula of the derivation as one display (Jupyter's text/latex: math only)."""
    tex = _printer(d)
    rows = [row for kind, payload, _ in _math_blocks(d, tex) if kind == "rows" for row in payload]
    return "$$\n\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}\n$$"


# -- Markdown ------------------------------------------------------------------------------------

_MARKDOWN = _Style(
    prose=prose_markdown,
    heading=lambda d, level: [f"{'#' * level} {prose_markdown(d.title)}", ""],
    reference="*Reference:* {}.", claim="**Claim.** {}",
    caption=lambda text: [prose_markdown(text), ""],
    display=lambda rows: ["$$", "\\begin{aligned}", " \\\\\n".join(rows), "\\end{aligned}",
                          "$$"],
    note="*({})*", after=[""], verdict=lambda v: f"**Verdict:** {v}")


def to_markdown(d: Derivation, level: int = 2) -> str:
    """Markdown with $...$ and $$...$$ math, which GitHub, MkDocs Material (arithmatex) and
    Jupyter render alike; display math is an `aligned` block (KaTeX and MathJax both have it)."""
    return _render(d, _MARKDOWN, level)


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
__all__ = ["FORMATS", "broken_rows", "to_math", "prose_latex", "prose_markdown", "prose_text",
           "to_json",
           "to_latex", "to_markdown", "to_text", "tex_escape"]
