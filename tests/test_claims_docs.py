"""The claims checker and the documents, through the command line."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from optequiv.derive.atomic import write_atomic
from optequiv.proofs.registry import names

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "proofs" / "claims" / "seed.toml"


def run(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def claim_file(tmp_path, body: str) -> str:
    path = tmp_path / "claims.toml"
    path.write_text(body)
    return str(path)


GOOD = '''
[[claim]]
name = "SGD with L2"
spec = "sgd(lr=eta, weight_decay=lam)"
start = "state"
equals = "theta - eta*(grad + lam*theta)"
names = { theta = "theta_0", grad = "g_1" }
expect = "holds"
'''


def test_seed_claims_check_as_shipped():
    rc, out, err = run("check", str(SEED), "--json")
    data = json.loads(out)
    assert rc == 0, err
    assert data["passed"] is True
    verdicts = {c["name"]: c["verdict"] for c in data["claims"]}
    assert verdicts["seed: plain SGD with L2 written as wd * sum(theta^2)"] == "proven"
    assert verdicts["seed: the post's 'L2' momentum formula, against L2"] == "refuted"


def test_a_true_claim_holds(tmp_path):
    rc, out, _ = run("check", claim_file(tmp_path, GOOD))
    assert rc == 0 and "proven" in out


def test_a_claim_that_disagrees_with_its_expectation_exits_1(tmp_path):
    body = GOOD.replace("eta*(grad + lam*theta)", "eta*grad - eta*lam*theta*2")
    rc, out, _ = run("check", claim_file(tmp_path, body))
    assert rc == 1 and "FAIL" in out and "refuted" in out
    rc, out, _ = run("check", claim_file(tmp_path, body), "--json")
    data = json.loads(out)
    ce = data["claims"][0]["counterexample"]
    assert rc == 1 and ce["model_float"] != ce["claim_float"]


@pytest.mark.parametrize("formula, shows", [
    # complex where the model is real: a refutation, not "supported" (no point ever agreed)
    ("theta - eta*(grad + lam*theta) + sqrt(-grad**2 - 1)", "*I"),
    # off by 1e-40: refuted exactly, and the decimals printed differ
    ("theta - eta*(grad + lam*theta) + 10**(-40)*grad", None),
])
def test_refutations_show_values_that_differ(tmp_path, formula, shows):
    body = GOOD.replace("theta - eta*(grad + lam*theta)", formula)
    rc, out, _ = run("check", claim_file(tmp_path, body), "--json")
    ce = json.loads(out)["claims"][0]["counterexample"]
    assert rc == 1 and ce["model_decimal"] != ce["claim_decimal"]
    if shows:
        assert shows in ce["claim_decimal"] and ce["claim_float"] is None
    rc, out, _ = run("check", claim_file(tmp_path, body))
    assert rc == 1 and f"model {ce['model_decimal']}, claim {ce['claim_decimal']}" in out


def test_multi_step_claims_and_where_definitions(tmp_path):
    body = '''
[[claim]]
name = "two steps of SGD momentum from torch's start"
spec = "sgd(lr=eta, momentum=mu)"
steps = 2
equals = "theta1 - eta*(mu*g_1 + g_2)"
where = { theta1 = "theta_0 - eta*g_1" }
expect = "holds"
'''
    rc, out, err = run("check", claim_file(tmp_path, body))
    assert rc == 0, out + err


@pytest.mark.parametrize("body, message", [
    ("[[claim]]\nname = 'x'\n", "missing key 'spec'"),
    ("[[claim]\n", "invalid TOML"),
    ("title = 1\n", "unknown top-level key 'title'"),
    (GOOD.replace('expect = "holds"', 'expect = "maybe"'), "expect must be 'holds' or 'fails'"),
    (GOOD.replace("start = ", "color = 'red'\nstart = "), "unknown key 'color'"),
    (GOOD.replace('"sgd(lr=eta, weight_decay=lam)"', '"sgd(lr=-1)"'),
     "claim 'SGD with L2': Invalid learning rate: -1"),
    (GOOD.replace('theta - eta*(grad + lam*theta)', "theta*sqrt(-1)"), "is not a real number"),
    (GOOD.replace('theta - eta*(grad + lam*theta)', "-" * 1500 + "theta"), None),
    (GOOD.replace('theta - eta*(grad + lam*theta)', 'theta - zeta*grad'), "uses zeta"),
    (GOOD.replace('quantity', 'x').replace('start = "state"', 'start = "state"\nquantity = "m"'),
     "has no state 'm'"),
    (GOOD.replace('theta - eta*(grad + lam*theta)', "__import__('os').system('touch PWNED')"),
     "unexpected character"),
    (GOOD.replace('theta - eta*(grad + lam*theta)', "exec(theta)"), "unknown function 'exec'"),
])
def test_malformed_claims_are_one_line_exit_2(tmp_path, body, message):
    rc, out, err = run("check", claim_file(tmp_path, body), cwd=tmp_path)
    if message is None:  # well formed after all: parsed, checked, exit 0 or 1, never a crash
        assert rc in (0, 1) and err == "", err
        return
    assert rc == 2, out + err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "PWNED").exists()


def test_missing_file_is_exit_2(tmp_path):
    rc, _, err = run("check", str(tmp_path / "nope.toml"))
    assert rc == 2 and "cannot read" in err


def test_prove_cli():
    rc, out, _ = run("prove", "sgd-l2-is-decay", "--json")
    data = json.loads(out)
    assert rc == 0 and data["name"] == "sgd-l2-is-decay" and data["verdict"] == "proven"
    assert {"name", "specs", "verdict", "steps"} <= set(data)
    rc, out, _ = run("prove", "heavy-ball-shrink", "--format", "markdown")
    assert rc == 0 and out.startswith("## ")
    rc, _, err = run("prove", "no-such-theorem")
    assert rc == 2 and "unknown theorem 'no-such-theorem'; valid names: sgd-l2-is-decay" in err
    rc, _, err = run("prove")
    assert rc == 2 and "give one theorem NAME or --all" in err


def test_docs_writes_every_file(tmp_path):
    rc, out, err = run("docs", "-o", str(tmp_path / "out"), "--no-pdf")
    assert rc == 0, err
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    figures = [f for f in files if f.startswith("weight-decay-")]  # with optequiv[plot]
    assert "optequiv.tex" in files and "optequiv.md" in files
    # one .tex per theorem of the registry, plus optequiv.tex and optequiv.md
    assert "momentum-l2-vs-decay.tex" in files and len(files) - len(figures) == len(names()) + 2
    assert len(figures) in (0, 6)
    tex = (tmp_path / "out" / "optequiv.tex").read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    assert not [f for f in files if f.startswith(".")]  # no temporary file left behind


def test_docs_without_a_pdf_removes_a_stale_one(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "optequiv.pdf").write_bytes(b"%PDF- an older article")
    rc, stdout, err = run("docs", "-o", str(out), "--no-pdf")
    assert rc == 0, err
    assert not (out / "optequiv.pdf").exists() and "was removed" in stdout


def test_a_closed_pipe_ends_quietly():
    # `optequiv prove --all | head -1`: the reader leaves early; no 'internal error' line
    proc = subprocess.Popen([sys.executable, "-m", "optequiv.derive", "prove", "--all"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141 and err == ""


def test_docs_output_must_be_a_directory(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    rc, _, err = run("docs", "-o", str(target))
    assert rc == 2 and "not a directory" in err


@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="pdflatex is not installed (CI installs texlive-latex-base and "
                           "texlive-latex-recommended)")
def test_the_article_compiles_with_pdflatex(tmp_path):
    rc, out, err = run("docs", "-o", str(tmp_path))
    assert rc == 0, err
    pdf = tmp_path / "optequiv.pdf"
    assert pdf.exists() and pdf.read_bytes().startswith(b"%PDF")
    # and the same file compiles by hand with -halt-on-error
    proc = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode",
                           "optequiv.tex"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_atomic_write_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    target = tmp_path / "doc.tex"
    target.write_text("old complete document")

    def interrupted(fd):
        raise KeyboardInterrupt  # as if the run were stopped mid-write

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new document " * 1000)
    assert target.read_text() == "old complete document"
    assert [p.name for p in tmp_path.iterdir()] == ["doc.tex"]
