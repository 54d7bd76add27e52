"""The example notebook in docs/ runs, and results show themselves as Markdown with math."""
from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra")
nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra")
pytest.importorskip("ipykernel", reason="ipykernel is in the test extra")

from optequiv.derive import compare  # noqa: E402
from optequiv.derive.derivation import Derivation  # noqa: E402
from optequiv.proofs.registry import prove  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_results_have_jupyter_representations():
    c = compare("sgd(lr=eta, weight_decay=lam)", "sgd(lr=eta, weight_decay=lam2, decay=decoupled)")
    markdown, latex = c._repr_markdown_(), c._repr_latex_()
    assert markdown.startswith("## ") and "**Verdict:** proven" in markdown
    assert latex.startswith("$$\n\\begin{aligned}") and "\\lambda_{2}" in latex
    d = prove("sgd-l2-is-decay")
    assert isinstance(d, Derivation) and d._repr_markdown_().startswith("## Plain SGD")
    assert "\\leftarrow" in d._repr_latex_()


def test_the_example_notebook_executes_and_displays_math():
    notebook = nbformat.read(ROOT / "docs" / "example.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o["data"] for o in outputs if o.output_type == "execute_result"]
    assert len(shown) == 3 and all("text/markdown" in d and "text/latex" in d for d in shown)
    assert "**Verdict:** proven" in shown[0]["text/markdown"]
    assert "**Verdict:** refuted" in shown[1]["text/markdown"]
    assert shown[2]["text/markdown"].startswith("## Heavy ball")
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert printed.startswith("refuted 2 ")
