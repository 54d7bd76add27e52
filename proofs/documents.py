"""The documents: a complete LaTeX article, a Markdown page and one LaTeX fragment per theorem,
all printed from the computed derivations; the PDF when pdflatex is on the PATH."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path

from optequiv.derive.atomic import output_folder, write_atomic
from optequiv.derive.errors import UserError
from optequiv.derive.latex import notation_rows
from optequiv.derive.printers import prose_latex, prose_markdown, tex_escape, to_latex, to_markdown

from . import catalogue_pages
from .catalogue_pages import INTRO as CATALOGUE_INTRO
from .registry import prove_all, theorems

FIGURES_GROUP = "optequiv.figures"

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
# lmodern + T1: scalable Type 1 fonts (copied text keeps its ligatures); hyperref last;
# emergencystretch 6em: a certificate's exact equations (square roots of large integers) leave
# too few break points for 2em
PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[T1]{fontenc}
\usepackage{lmodern}
\usepackage{amsmath,amssymb}
\usepackage[margin=2cm]{geometry}
\usepackage{graphicx}
\usepackage{longtable}
\usepackage[unicode,hidelinks]{hyperref}
\allowdisplaybreaks
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.5em}
\emergencystretch=6em
"""


def _specs(derivations) -> list:
    from optequiv.derive.spec import parse_spec

    return [parse_spec(s) for d in derivations for s in d.specs]


def notation_latex(derivations) -> str:
    rows = [f"${tex}$ & {prose_latex(meaning, paragraph=False)} \\\\"
            for tex, _, meaning in notation_rows(_specs(derivations))]
    return ("\\section*{Notation}\n\\addcontentsline{toc}{section}{Notation}\n"
            + prose_latex(NOTATION_INTRO) + "\n\n"
            # longtable: the table outgrew one page as the catalogue grew (a tabular cannot break)
            "\\begin{longtable}{cp{0.8\\textwidth}}\n" + "\n".join(rows) +
            "\n\\end{longtable}\n")


def notation_markdown(derivations) -> str:
    rows = [f"| ${tex}$ | {prose_markdown(meaning)} |"
            for tex, _, meaning in notation_rows(_specs(derivations))]
    return ("## Notation\n\n" + prose_markdown(NOTATION_INTRO) + "\n\n| symbol | meaning |\n"
            "|:---:|---|\n" + "\n".join(rows) + "\n")


def figures_latex(figures) -> str:
    if not figures:
        return ""
    out = ["\\section{Figures}",
           prose_latex("Drawn by `optequiv plot` from the generated optimizers and the "
                       "symbolic rules.")]
    for f in figures:
        out += ["\\begin{figure}[htbp]", "\\centering",
                f"\\includegraphics[width={f.width:.2f}\\textwidth]{{{f.png.name}}}",
                f"\\caption{{{prose_latex(f.caption, paragraph=False)}}}\\label{{fig:{f.name}}}",
                "\\end{figure}"]
    return "\n".join(out) + "\n"


def figures_markdown(figures) -> str:
    if not figures:
        return ""
    out = ["", "## Figures", "", prose_markdown("Drawn by `optequiv plot` from the generated "
                                            "optimizers and the symbolic rules."), ""]
    for f in figures:
        alt = f.name.replace("-", " ")
        out += [f"![{alt}]({f.svg.name})", "", prose_markdown(f.caption), ""]
    return "\n".join(out)


def catalogue_latex(pages) -> str:
    return ("\\section{The optimizers}\n" + prose_latex(CATALOGUE_INTRO) + "\n\n"
            + "\n".join(to_latex(p, level="subsection") for p in pages))


def catalogue_markdown(pages) -> str:
    return ("## The optimizers\n\n" + prose_markdown(CATALOGUE_INTRO) + "\n\n"
            + "\n".join(to_markdown(p, level=3) for p in pages))


def article(derivations, figures=(), pages=()) -> str:
    body = (catalogue_latex(pages) if pages else "") + "\n".join(to_latex(d) for d in derivations)
    return (PREAMBLE + f"\\title{{{tex_escape(TITLE)}}}\n\\author{{optequiv}}\n\\date{{}}\n"
            "\\begin{document}\n\\maketitle\n" + tex_escape(INTRO) + "\n\n"
            "\\tableofcontents\n\n" + notation_latex(derivations) + "\n" + body +
            figures_latex(figures) + "\n\\end{document}\n")


def markdown(derivations, figures=(), pages=()) -> str:
    # no hand-made contents or anchors: GitHub, MkDocs Material and Jupyter each build their
    # own from the headings, and raw HTML would render differently in each
    return (f"# {TITLE}\n\n{prose_markdown(INTRO)}\n\n" + notation_markdown(derivations) + "\n"
            + (catalogue_markdown(pages) + "\n" if pages else "")
            + "\n".join(to_markdown(d) for d in derivations) + figures_markdown(figures))


def figure_maker():
    """The figures plugin (entry-point group optequiv.figures), or None where it is not
    installed or matplotlib is missing: the documents are then written without figures."""
    for plugin in entry_points(group=FIGURES_GROUP):
        try:
            return plugin.load()
        except ImportError:
            return None
    return None


PDF_TIMEOUT = 120  # seconds: a pdflatex that waits for input or loops is an error, not a hang
SCRATCH = ".optequiv-pdflatex-"  # pdflatex's scratch folders, inside the output folder
STALE = 3600  # seconds after which a scratch folder is one a killed run left behind


def compile_pdf(tex: str, where: Path, assets=()) -> bytes:
    """pdflatex in a scratch folder inside `where` (so that a run killed with SIGKILL leaves
    nothing in the system's temporary folder, and the next run removes what it left), with the
    figures it includes; the PDF's bytes, or UserError with TeX's first error."""
    _remove_stale_scratch(where)
    with tempfile.TemporaryDirectory(prefix=SCRATCH, dir=where) as scratch:
        for asset in assets:
            shutil.copyfile(asset, Path(scratch) / Path(asset).name)
        source = Path(scratch) / "optequiv.tex"
        source.write_text(tex, encoding="utf-8")
        for _ in range(2):  # the second run fills in the table of contents
            try:
                proc = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode",
                                       "optequiv.tex"], cwd=scratch, capture_output=True,
                                      text=True, timeout=PDF_TIMEOUT, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise UserError(f"pdflatex did not finish within {PDF_TIMEOUT} s; nothing was "
                                "written (--no-pdf writes the other documents)") from None
            except OSError as error:
                raise UserError(f"pdflatex could not be run: {error.strerror or error}") from None
            if proc.returncode != 0:
                break
        pdf = Path(scratch) / "optequiv.pdf"
        if proc.returncode != 0 or not pdf.exists():
            errors = [line for line in proc.stdout.splitlines() if line.startswith("!")]
            raise UserError("pdflatex failed: " + (errors[0] if errors else f"exit {proc.returncode}")
                            + "; nothing was written")
        return pdf.read_bytes()


def _remove_stale_scratch(where: Path) -> None:
    now = time.time()
    for folder in where.glob(SCRATCH + "*"):
        try:
            if folder.is_dir() and not folder.is_symlink() and now - folder.stat().st_mtime > STALE:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # another run removed it first


def write_documents(out_dir, pdf: bool = True, figures="installed") -> list:
    """`figures`: a function out_dir -> rendered figures, None for none, or "installed" for the
    optequiv.figures plugin when it is there."""
    out = output_folder(out_dir)
    derivations = prove_all(t.name for t in theorems())
    pages = catalogue_pages.pages()
    maker = figure_maker() if figures == "installed" else figures
    with tempfile.TemporaryDirectory(prefix=SCRATCH, dir=out) as staging:
        # the figures are drawn aside and the PDF compiled first: when pdflatex fails nothing
        # is written, and the folder keeps a matching set (the earlier .tex beside the earlier
        # PDF), never a new .tex beside an old PDF
        drawn = maker(Path(staging)) if maker else []
        tex = article(derivations, drawn, pages)
        compiled = compile_pdf(tex, out, [f.png for f in drawn]) \
            if pdf and shutil.which("pdflatex") else None
        written = []
        for path in (p for f in drawn for p in (f.png, f.svg)):
            os.replace(path, out / path.name)  # same file system: an atomic rename
            written.append(out / path.name)
    for d in derivations:
        written.append(write_atomic(out / f"{d.name}.tex", to_latex(d)))
    written.append(write_atomic(out / "optequiv.tex", tex))
    written.append(write_atomic(out / "optequiv.md", markdown(derivations, drawn, pages)))
    if compiled is not None:
        written.append(write_atomic(out / "optequiv.pdf", compiled))
    else:  # an earlier run's PDF no longer matches optequiv.tex; a concurrent run may have
        (out / "optequiv.pdf").unlink(missing_ok=True)  # removed it already
    return written
