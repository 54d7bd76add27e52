"""The documents: a complete LaTeX article, a Markdown page and one LaTeX fragment per theorem,
all printed from the computed derivations; the PDF when pdflatex is on the PATH."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from derive.atomic import write_atomic
from derive.errors import UserError
from derive.latex import notation_rows
from derive.printers import prose_latex, prose_markdown, tex_escape, to_latex, to_markdown

from .registry import prove, theorems

TITLE = "L2 regularisation and decoupled weight decay, derived and checked"
INTRO = ("Every derivation below was computed by optequiv from SymPy models of torch.optim's "
         "SGD, Adam and AdamW, and every displayed equality was checked by SymPy (its two sides "
         "differ by an expression that simplifies to 0). Verdicts are computed: proven "
         "(symbolically), refuted (with an exact counterexample) or numerically supported. "
         "Every stage of these rules acts coordinate-wise, so one scalar coordinate suffices.")
NOTATION_INTRO = ("Letters follow torch.optim's documentation. Subscripts count steps: "
                  "$theta_t$ is the parameter after step $t$, $theta_{t-1}$ before it. "
                  "Recurrences are written as the rule computes them, one stage per line, "
                  "with $u$ the update direction.")
# lmodern + T1: scalable Type 1 fonts (copied text keeps its ligatures); hyperref last
PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[T1]{fontenc}
\usepackage{lmodern}
\usepackage{amsmath,amssymb}
\usepackage[margin=2cm]{geometry}
\usepackage{graphicx}
\usepackage[unicode,hidelinks]{hyperref}
\allowdisplaybreaks
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.5em}
\emergencystretch=2em
"""


def _specs(derivations) -> list:
    from derive.spec import parse_spec

    return [parse_spec(s) for d in derivations for s in d.specs]


def notation_latex(derivations) -> str:
    rows = [f"${tex}$ & {prose_latex(meaning, paragraph=False)} \\\\"
            for tex, _, meaning in notation_rows(_specs(derivations))]
    return ("\\section*{Notation}\n\\addcontentsline{toc}{section}{Notation}\n"
            + prose_latex(NOTATION_INTRO) + "\n\n\\begin{center}\n"
            "\\begin{tabular}{cp{0.8\\textwidth}}\n" + "\n".join(rows) +
            "\n\\end{tabular}\n\\end{center}\n")


def notation_markdown(derivations) -> str:
    rows = [f"| ${tex}$ | {prose_markdown(meaning)} |"
            for tex, _, meaning in notation_rows(_specs(derivations))]
    return ("## Notation\n\n" + prose_markdown(NOTATION_INTRO) + "\n\n| symbol | meaning |\n"
            "|:---:|---|\n" + "\n".join(rows) + "\n")


def article(derivations) -> str:
    body = "\n".join(to_latex(d) for d in derivations)
    return (PREAMBLE + f"\\title{{{tex_escape(TITLE)}}}\n\\author{{optequiv}}\n\\date{{}}\n"
            "\\begin{document}\n\\maketitle\n" + tex_escape(INTRO) + "\n\n"
            "\\tableofcontents\n\n" + notation_latex(derivations) + "\n" + body +
            "\n\\end{document}\n")


def markdown(derivations) -> str:
    # no hand-made contents or anchors: GitHub, MkDocs Material and Jupyter each build their
    # own from the headings, and raw HTML would render differently in each
    return (f"# {TITLE}\n\n{prose_markdown(INTRO)}\n\n" + notation_markdown(derivations) + "\n"
            + "\n".join(to_markdown(d) for d in derivations))


def compile_pdf(tex: str) -> bytes:
    """pdflatex in a scratch directory; the PDF's bytes, or UserError with TeX's first error."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "optequiv.tex"
        source.write_text(tex, encoding="utf-8")
        for _ in range(2):  # the second run fills in the table of contents
            proc = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode",
                                   "optequiv.tex"], cwd=scratch, capture_output=True,
                                  text=True, timeout=300)
            if proc.returncode != 0:
                break
        pdf = Path(scratch) / "optequiv.pdf"
        if proc.returncode != 0 or not pdf.exists():
            errors = [line for line in proc.stdout.splitlines() if line.startswith("!")]
            raise UserError("pdflatex failed: " + (errors[0] if errors else f"exit {proc.returncode}"))
        return pdf.read_bytes()


def write_documents(out_dir, pdf: bool = True) -> list:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out_dir}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"-o {out_dir}: cannot create the directory: {error.strerror}")
    derivations = [prove(t.name) for t in theorems()]
    tex = article(derivations)
    written = []
    for d in derivations:
        written.append(write_atomic(out / f"{d.name}.tex", to_latex(d)))
    written.append(write_atomic(out / "optequiv.tex", tex))
    written.append(write_atomic(out / "optequiv.md", markdown(derivations)))
    if pdf and shutil.which("pdflatex"):
        written.append(write_atomic(out / "optequiv.pdf", compile_pdf(tex)))
    elif (out / "optequiv.pdf").exists():
        (out / "optequiv.pdf").unlink()  # an earlier run's PDF no longer matches optequiv.tex
    return written
