"""The documents as a reader gets them: the PDF's fonts and boxes (pdflatex's own log, pdffonts),
the Markdown as a CommonMark renderer with a math plugin reads it, and its math in KaTeX in a
real headless browser. Each check has a negative control that plants the fault it looks for."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.printers import prose_markdown
from optequiv.proofs.documents import PREAMBLE, write_documents
from optequiv.proofs.registry import theorems

ROOT = Path(__file__).resolve().parent.parent
KATEX = ROOT / "docs" / "vendor" / "katex" / "katex.min.js"
BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)),
               None)
needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason=(
    "pdflatex is not installed (CI installs texlive-latex-base, texlive-latex-recommended, "
    "texlive-fonts-recommended and lmodern)"))


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    try:  # the figures plugin, as an installed optequiv[plot] provides it to `docs`
        from optequiv.numeric.figures.commands import figures
    except ImportError:
        figures = None
    write_documents(out, pdf=False, figures=figures)
    return out


def pdflatex(folder: Path, name: str = "optequiv") -> str:
    """Two runs (the table of contents), as `docs` does; pdflatex's log."""
    for _ in range(2):
        proc = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode",
                               f"{name}.tex"], cwd=folder, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:]
    return (folder / f"{name}.log").read_text(encoding="latin-1")


def overfull(log: str) -> list:
    return [float(x) for x in re.findall(r"Overfull \\[hv]box \(([\d.]+)pt too", log)]


def type3_fonts(pdf: Path) -> list:
    rows = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True,
                          check=True).stdout.splitlines()[2:]
    return [r for r in rows if "Type 3" in r]


# -- LaTeX ---------------------------------------------------------------------------------------

@needs_tex
def test_the_article_has_no_overfull_box_no_bitmap_font_and_a_contents(docs):
    log = pdflatex(docs)
    assert [w for w in overfull(log) if w > 1.0] == []
    assert "Token not allowed in a PDF string" not in log  # bookmarks are text
    toc = (docs / "optequiv.toc").read_text(encoding="latin-1")
    figures = 1 if (docs / "weight-decay-trajectories.png").exists() else 0
    # + Notation and The optimizers (one subsection per catalogue entry)
    assert toc.count("\\contentsline {section}") == len(theorems()) + 2 + figures
    assert toc.count("\\contentsline {subsection}") >= len(ENTRIES)
    tex = (docs / "optequiv.tex").read_text()
    for t in theorems():
        assert f"\\label{{thm:{t.name}}}" in tex and t.reference
    if shutil.which("pdffonts"):
        assert type3_fonts(docs / "optequiv.pdf") == []
    if shutil.which("pdftotext"):  # copied text keeps its ligatures (fi, ff, ffi)
        text = subprocess.run(["pdftotext", str(docs / "optequiv.pdf"), "-"], capture_output=True,
                              text=True, check=True).stdout
        assert "coefficient" in text and "differ" in text


@needs_tex
def test_negative_controls_overfull_box_and_type3_font_are_caught(tmp_path):
    # the fonts of the EC family without lmodern or cm-super are bitmaps: Type 3
    (tmp_path / "bad.tex").write_text(
        "\\documentclass{article}\\usepackage[T1]{fontenc}\\begin{document}\n"
        "Some text \\mbox{" + "unbreakable" * 20 + "}\n\\end{document}\n")
    log = pdflatex(tmp_path, "bad")
    assert max(overfull(log)) > 100
    if shutil.which("pdffonts") and not list(Path("/usr/share").glob("**/cm-super*")):
        assert type3_fonts(tmp_path / "bad.pdf")


# -- Markdown as CommonMark + dollarmath reads it ------------------------------------------------

def unintended_markup(text: str) -> list:
    """Emphasis, links and HTML outside the math that the printer did not mean to write.
    The printers mean only **Claim.**, **Verdict:**, *Reference:* and *(reason; check)*."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark").use(dollarmath_plugin)
    found = []

    def walk(tokens):
        for i, tok in enumerate(tokens):
            if tok.type == "image" and str(tok.attrs.get("src", "")).startswith("weight-decay-"):
                continue  # the figures, meant
            if tok.type in ("link_open", "html_inline", "html_block", "image"):
                found.append(f"{tok.type}: {tok.content or tok.attrs}")
            if tok.type in ("em_open", "strong_open"):
                inner = tokens[i + 1].content if i + 1 < len(tokens) else ""
                meant = (tok.type == "strong_open" and inner in ("Claim.", "Verdict:")) or \
                    (tok.type == "em_open" and (inner == "Reference:" or inner.startswith("(")))
                if not meant:
                    found.append(f"{tok.type}: {inner!r}")
            if tok.children:
                walk(tok.children)

    walk(md.parse(text))
    return found


def test_markdown_renders_as_written(docs):
    text = (docs / "optequiv.md").read_text()
    assert unintended_markup(text) == []
    # and the prose outside math and code has no ASCII formulas left
    prose = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`", "", text, flags=re.S)
    assert not re.findall(r"\blam\d*\b|\bsqrt\b|\btheta\b|\\\*|\w\*\w", prose)


def test_negative_control_ascii_prose_shows_stray_emphasis():
    # what the documents used to say: lr*lam ... lam*theta turns into italics
    assert unintended_markup("decay k = lr*lam, applied as lam*theta_0 <b>") != []
    assert unintended_markup(prose_markdown("decay $k = lr*lam$, applied as lam*theta <b>")) == []


# -- KaTeX in a headless browser -----------------------------------------------------------------

def _page(markdown_text: str) -> str:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    body = MarkdownIt("commonmark").use(dollarmath_plugin).render(markdown_text)
    # dollarmath writes <span class="math inline"> and <div class="math block">
    script = """
<script>
// throwOnError: an undefined command is an error too, not just red text
for (const el of document.querySelectorAll('.math')) {
  try {
    katex.render(el.textContent, el, {throwOnError: true,
                                      displayMode: el.classList.contains('block')});
  } catch (e) {
    const span = document.createElement('span');
    span.className = 'katex-error';
    span.title = String(e.message);
    el.replaceChildren(span);
  }
}
document.body.setAttribute('data-rendered', document.querySelectorAll('.katex').length);
</script>"""
    return (f"<!doctype html><html><head><meta charset='utf-8'><script src='{KATEX.as_uri()}'>"
            f"</script></head><body>{body}{script}</body></html>")


def render_in_browser(page: str, folder: Path) -> str:
    source = folder / "page.html"
    source.write_text(page, encoding="utf-8")
    proc = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--allow-file-access-from-files", f"--user-data-dir={folder / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", source.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def katex_errors(dom: str) -> list:
    return [html.unescape(m) for m in re.findall(r'class="katex-error"[^>]*title="([^"]*)"', dom)]


@pytest.mark.skipif(BROWSER is None,
                    reason="no chromium on the PATH (CI: apt-get install chromium)")
@pytest.mark.skipif(not KATEX.exists(), reason=f"KaTeX is not vendored at {KATEX}")
def test_one_page_of_markdown_renders_in_katex_without_errors(docs, tmp_path):
    pages = (docs / "optequiv.md").read_text().split("\n## ")
    adam = "## " + next(p for p in pages if p.startswith("Adam + L2"))
    planted = "\n\nA planted error: $\\frac{1}{$ and $\\hat{v}_{t} \\notacommand$\n"
    dom = render_in_browser(_page(pages[0] + "\n" + adam + planted), tmp_path)
    rendered = int(re.search(r'data-rendered="(\d+)"', dom).group(1))
    errors = katex_errors(dom)
    assert rendered > 20  # the page's formulas went through KaTeX
    # the two planted formulas fail (negative control), and nothing else does
    assert len(errors) == 2, errors


# -- compare and unroll for documentation --------------------------------------------------------

def cli(*args) -> tuple:
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    return proc.returncode, proc.stdout


MOMENTUM_L2 = "sgd(lr=eta, momentum=mu, weight_decay=lam)"
MOMENTUM_DECOUPLED = "sgd(lr=eta, momentum=mu, weight_decay=lam2, decay=decoupled)"


def test_compare_prints_the_side_by_side_derivation_as_markdown_and_latex(tmp_path):
    rc, md = cli("compare", MOMENTUM_L2, MOMENTUM_DECOUPLED, "--format", "markdown")
    assert rc == 1  # refuted, as with text
    assert f"A: `{MOMENTUM_L2}`" in md and f"B: `{MOMENTUM_DECOUPLED}`" in md
    assert md.count("\\begin{aligned}") >= 5  # two recurrences, two steps, the witness
    for part in ("Certificate:", "Witness", "They do coincide", "**Verdict:** refuted"):
        assert part in md, part
    assert unintended_markup(md) == []
    rc, tex = cli("compare", MOMENTUM_L2, MOMENTUM_DECOUPLED, "--format", "latex")
    assert rc == 1 and tex.startswith("\\section{") and "Certificate:" in tex
    rc, out = cli("compare", MOMENTUM_L2, MOMENTUM_DECOUPLED, "--json")
    assert rc == 1 and json.loads(out)["certificate"]["kind"] == "refutation"
    if shutil.which("pdflatex"):
        (tmp_path / "compare.tex").write_text(PREAMBLE + "\\begin{document}\n" + tex +
                                              "\\end{document}\n")
        assert [w for w in overfull(pdflatex(tmp_path, "compare")) if w > 1.0] == []


def test_unroll_markdown_and_closed_loop_absolute_values():
    rc, out = cli("unroll", "adam(weight_decay=lam)", "--steps", "1", "--loop", "closed")
    theta = next(line for line in out.splitlines() if line.strip().startswith("theta_1"))
    assert rc == 0 and "Abs(lam*theta_0 + grad_f(theta_0))" in theta and "sqrt" not in theta
    rc, md = cli("unroll", "adam(weight_decay=lam)", "--steps", "2", "--format", "markdown")
    assert rc == 0 and md.count("\\begin{aligned}") == 1 and "\\left|" in md
    assert unintended_markup(md) == []
