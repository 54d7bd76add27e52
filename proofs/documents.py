"""The documents: a complete LaTeX article, a Markdown page and one LaTeX fragment per theorem,
all printed from the computed derivations; the PDF when pdflatex is on the PATH."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from derive.atomic import write_atomic
from derive.errors import UserError
from derive.printers import tex_escape, to_latex, to_markdown

from .registry import prove, theorems

TITLE = "L2 regularisation and decoupled weight decay, derived and checked"
INTRO = ("Every derivation below was computed by optequiv from SymPy models of torch.optim's "
         "SGD, Adam and AdamW, and every displayed equality was checked by SymPy (its two sides "
         "differ by an expression that simplifies to 0). Verdicts are computed: proven "
         "(symbolically), refuted (with an exact counterexample) or numerically supported. "
         "Every stage of these rules acts coordinate-wise, so one scalar coordinate suffices.")
PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[T1]{fontenc}
\usepackage{amsmath,amssymb}
\usepackage[margin=2cm]{geometry}
\allowdisplaybreaks
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.5em}
"""


def article(derivations) -> str:
    body = "\n".join(to_latex(d) for d in derivations)
    return (PREAMBLE + f"\\title{{{tex_escape(TITLE)}}}\n\\author{{optequiv}}\n\\date{{}}\n"
            "\\begin{document}\n\\maketitle\n" + tex_escape(INTRO) + "\n\n" + body +
            "\n\\end{document}\n")


def markdown(derivations) -> str:
    return f"# {TITLE}\n\n{INTRO}\n\n" + "\n".join(to_markdown(d) for d in derivations)


PDF_TIMEOUT = 120  # seconds: a pdflatex that waits for input or loops is an error, not a hang
SCRATCH = ".optequiv-pdflatex-"  # pdflatex's scratch folders, inside the output folder
STALE = 3600  # seconds after which a scratch folder is one a killed run left behind


def compile_pdf(tex: str, where: Path) -> bytes:
    """pdflatex in a scratch folder inside `where` (so that a run killed with SIGKILL leaves
    nothing in the system's temporary folder, and the next run removes what it left); the
    PDF's bytes, or UserError with TeX's first error."""
    _remove_stale_scratch(where)
    with tempfile.TemporaryDirectory(prefix=SCRATCH, dir=where) as scratch:
        source = Path(scratch) / "optequiv.tex"
        source.write_text(tex, encoding="utf-8")
        try:
            proc = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode",
                                   "optequiv.tex"], cwd=scratch, capture_output=True, text=True,
                                  timeout=PDF_TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise UserError(f"pdflatex did not finish within {PDF_TIMEOUT} s; nothing was "
                            "written (--no-pdf writes the other documents)") from None
        except OSError as error:
            raise UserError(f"pdflatex could not be run: {error.strerror or error}") from None
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


def write_documents(out_dir, pdf: bool = True) -> list:
    if str(out_dir).strip() == "":
        raise UserError("-o: empty; give the folder to write the documents into")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out_dir}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"-o {out_dir}: cannot create the directory: {error.strerror}")
    derivations = [prove(t.name) for t in theorems()]
    tex = article(derivations)
    # the PDF first: when pdflatex fails nothing is written, and the folder keeps a matching
    # set (the earlier .tex beside the earlier PDF), never a new .tex beside an old PDF
    compiled = compile_pdf(tex, out) if pdf and shutil.which("pdflatex") else None
    written = []
    for d in derivations:
        written.append(write_atomic(out / f"{d.name}.tex", to_latex(d)))
    written.append(write_atomic(out / "optequiv.tex", tex))
    written.append(write_atomic(out / "optequiv.md", markdown(derivations)))
    if compiled is not None:
        written.append(write_atomic(out / "optequiv.pdf", compiled))
    else:  # an earlier run's PDF no longer matches optequiv.tex; a concurrent run may have
        (out / "optequiv.pdf").unlink(missing_ok=True)  # removed it already
    return written
