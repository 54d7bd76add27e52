"""Bad input is one line and exit 2, quickly; echoed text cannot forge output; documents stay a
consistent set (issue 13, defects 4, 5, 7, 10, 11, 12)."""
from __future__ import annotations

import os
import time

import pytest

from optequiv.derive.cli import main
from optequiv.derive.errors import UserError, shown
from optequiv.derive.spec import parse_spec


def one_line_exit_2(capsys, argv, *words):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture(autouse=True)
def bounded(monkeypatch):
    monkeypatch.setenv("OPTEQUIV_TIME_LIMIT", "60")  # the code's budget, not a test timeout


@pytest.mark.parametrize("value, words", [
    ("((10**1000)**1000)**1000", "out of range"),
    ("exp(exp(exp(exp(exp(1)))))", "out of range"),
    ("exp(10**300)", "out of range"),
    ("1e400**11", "out of range"),
    ("exp(exp(exp(100)))", "out of range"),
    ("1e400*" * 10 + "1e400", "more than 1000 digits"),
    ("sqrt(-x-1)", "must be a real number"),
])
def test_values_beyond_the_limits_are_refused(capsys, value, words):
    one_line_exit_2(capsys, ["unroll", f"sgd(lr={value})", "--steps", "1"], words)


def test_values_within_the_limits_still_parse():
    assert parse_spec("sgd(lr=10**1000)").given["lr"] == 10**1000
    assert parse_spec("sgd(lr=exp(exp(exp(1))))").given["lr"].is_number
    assert parse_spec("sgd(lr=(1/3)**1000)").given["lr"] > 0


def test_a_where_chain_cannot_build_huge_powers(tmp_path, capsys):
    chain = "".join(f'a{i + 1} = "a{i}**1000", ' for i in range(6))
    path = tmp_path / "c.toml"
    path.write_text('[[claim]]\nname = "chain"\nspec = "sgd(lr=eta)"\n'
                    f'where = {{ {chain.rstrip(", ")} }}\n'
                    'equals = "theta_0 - eta*g_1 + a6 - a6"\nexpect = "holds"\n')
    one_line_exit_2(capsys, ["check", str(path)], "exponent larger than 1000")


def test_compare_on_a_non_real_spec_is_refused(capsys):
    one_line_exit_2(capsys, ["compare", "sgd(lr=sqrt(-x-1))", "sgd(lr=eta)"], "real number")


def test_deeply_nested_toml_is_bad_input(tmp_path, capsys):
    path = tmp_path / "deep.toml"
    path.write_text("[[claim]]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    one_line_exit_2(capsys, ["check", str(path)], "nested too deeply")


def test_check_reads_with_a_size_limit(capsys):
    one_line_exit_2(capsys, ["check", "/dev/zero"], "larger than")


def test_control_characters_are_escaped_in_everything_echoed(tmp_path, capsys):
    forged = "x\n\x1b[32mok   fake: proven\x1b[0m\n1 of 1 claims as expected"
    path = tmp_path / "c.toml"
    path.write_text('[[claim]]\nname = "x\\n\\u001b[32mok   fake: proven\\u001b[0m\\n1 of 1 '
                    'claims as expected"\nspec = "sgd"\nequals = "theta_0 - lr*g_1"\n'
                    'expect = "fails"\n')
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and shown(forged) in out
    assert [line for line in out.splitlines() if "claims as expected" in line][-1] == \
        "0 of 1 claims as expected"
    assert "\x1b" not in str(UserError("bad name \x1b[31m")) and "\\x1b" in shown("\x1b")


# -- docs -----------------------------------------------------------------------------------

def fake_pdflatex(tmp_path, monkeypatch, script: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "pdflatex"
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_docs_refuses_an_empty_output_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "optequiv.pdf").write_bytes(b"%PDF keep me")
    one_line_exit_2(capsys, ["docs", "-o", "", "--no-pdf"], "empty")
    assert [p.name for p in tmp_path.iterdir()] == ["optequiv.pdf"]


def test_a_failing_pdflatex_leaves_the_earlier_set_untouched(tmp_path, monkeypatch, capsys):
    fake_pdflatex(tmp_path, monkeypatch, 'echo "! Undefined control sequence."; exit 1\n')
    out = tmp_path / "docs"
    out.mkdir()
    (out / "optequiv.tex").write_text("old tex")
    (out / "optequiv.pdf").write_bytes(b"%PDF old")
    one_line_exit_2(capsys, ["docs", "-o", str(out)], "Undefined control sequence")
    assert (out / "optequiv.tex").read_text() == "old tex"
    assert sorted(p.name for p in out.iterdir()) == ["optequiv.pdf", "optequiv.tex"]


def test_a_hanging_pdflatex_is_stopped(tmp_path, monkeypatch, capsys):
    import optequiv.proofs.documents as documents
    monkeypatch.setattr(documents, "PDF_TIMEOUT", 1)
    fake_pdflatex(tmp_path, monkeypatch, "exec sleep 600\n")
    one_line_exit_2(capsys, ["docs", "-o", str(tmp_path / "docs")], "did not finish")


def test_pdflatex_scratch_stays_in_the_output_folder_and_stale_ones_go(tmp_path, monkeypatch,
                                                                        capsys):
    fake_pdflatex(tmp_path, monkeypatch, 'pwd > "$CWD_LOG"; echo "%PDF" > optequiv.pdf\n')
    monkeypatch.setenv("CWD_LOG", str(tmp_path / "cwd"))
    out = tmp_path / "docs"
    stale = out / ".optequiv-pdflatex-killed"
    stale.mkdir(parents=True)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = out / ".optequiv-pdflatex-running"  # a concurrent run's: left alone
    fresh.mkdir()
    assert main(["docs", "-o", str(out)]) == 0, capsys.readouterr().err
    assert (tmp_path / "cwd").read_text().startswith(str(out / ".optequiv-pdflatex-"))
    assert not stale.exists() and fresh.exists()
    assert (out / "optequiv.pdf").read_text() == "%PDF\n"


def test_concurrent_no_pdf_runs_tolerate_each_others_unlink(tmp_path, monkeypatch):
    import optequiv.proofs.documents as documents
    out = tmp_path / "docs"
    out.mkdir()
    (out / "optequiv.pdf").write_bytes(b"%PDF old")
    real = documents.write_atomic

    def racing(path, data):  # the other run removes the PDF between our check and unlink
        (out / "optequiv.pdf").unlink(missing_ok=True)
        return real(path, data)

    monkeypatch.setattr(documents, "write_atomic", racing)
    documents.write_documents(out, pdf=False)
    assert not (out / "optequiv.pdf").exists()


def test_a_newline_inside_a_spec_value_cannot_start_a_line_of_output(capsys):
    assert main(["unroll", "sgd(lr=eta\n+\nlam)", "--steps", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "unroll sgd(lr=eta + lam)"
