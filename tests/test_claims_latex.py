"""Claims written in LaTeX (`equals_latex`), parsed by derive.latex_grammar: the same verdicts as
the plain formula language, and hostile input refused in one line, never evaluated."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from optequiv.derive import symbols as Y
from optequiv.derive.errors import UserError
from optequiv.derive.latex_grammar import parse_latex
from optequiv.proofs.claims import check_claim, parse_claim

ROOT = Path(__file__).resolve().parent.parent


def claim(formula: str, key: str = "equals_latex", **extra) -> dict:
    table = {"name": "c", "spec": "sgd(lr=eta, weight_decay=lam)", "start": "state",
             key: formula, "names": {"lambda": "lam"}, "expect": "holds"}
    table.update(extra)
    return table


def resolve(name: str):
    symbol = Y.canonical(name)
    return symbol if symbol is not None else Y.hyper(name)


def test_latex_and_plain_formulas_are_the_same_claim():
    latex = parse_claim(claim(r"\theta_{t-1} - \eta \left(g_t + \lambda \theta_{t-1}\right)"),
                        0, "test")
    plain = parse_claim(claim("theta_0 - eta*(g_1 + lambda*theta_0)", key="equals"), 0, "test")
    assert sp.simplify(latex.equals - plain.equals) == 0
    assert check_claim(latex).verdict == "proven"


def test_a_wrong_latex_formula_is_refuted():
    wrong = parse_claim(claim(r"\theta_{t-1} - \eta g_t + \eta\lambda\theta_{t-1}"), 0, "test")
    result = check_claim(wrong)
    assert result.verdict == "refuted" and result.counterexample["model"] != \
        result.counterexample["claim"]


def test_adam_in_latex_with_hats_and_where():
    table = {
        "name": "Adam's step", "spec": "adam(lr=eta, betas=(beta1, beta2), eps=eps)",
        "start": "start",
        "equals_latex": r"\theta_{t-1} - \frac{\eta\, \hat{m}_t}{\sqrt{\hat{v}_t} + \epsilon}",
        "where": {"m_hat_t": "(1 - beta1)*g_1/(1 - beta1)",
                  "v_hat_t": "(1 - beta2)*g_1**2/(1 - beta2)"},
        "expect": "holds"}
    assert check_claim(parse_claim(table, 0, "test")).verdict == "proven"


@pytest.mark.parametrize("text, words", [
    (r"x^23", "3*x**2"),  # TeX reads x^23 as x^2 3
    (r"\frac12 + \frac{a}{b}", "a/b + 1/2"),
    (r"|g_t| \cdot \lvert a \rvert", "a*Abs(g_1)"),  # a hyperparameter is nonnegative
    (r"\max(a, b) \times 2", "2*Max(a, b)"),
    (r"\beta_1 m_{t-1} + \mathrm{wd}", "beta1*m_0 + wd"),
])
def test_latex_grammar(text, words):
    assert str(parse_latex(text, "formula", resolve)) == words


HOSTILE = [
    (r"\input{/etc/passwd}", "unknown command \\input"),
    (r"\def\x{1}\x", "unknown command \\def"),
    ("__import__('os').system('touch PWNED')", "unexpected character '.'"),
    (r"\frac{1}{0}", "division by zero"),
    ("2^{2^{2^{2^{10}}}}", "exponent larger than"),
    ("(" * 300 + "1" + ")" * 300, "nested too deeply"),
    (r"\sqrt{-1}", "is not a real number"),
    (r"\log(0)", "log(0) is undefined"),
    (r"\theta_{t-1", "expected '}'"),
    ("$x$", "unexpected character '$'"),
    ("9" * 60, "number out of range"),
    ("x" * 5000, "longer than"),
    (r"\left( x", "expected \\right"),
    ("", "empty"),
]


@pytest.mark.parametrize("text, message", HOSTILE)
def test_hostile_latex_is_refused_with_a_reason(text, message):
    with pytest.raises(UserError, match=None) as error:
        parse_latex(text, "formula", resolve)
    assert message in str(error.value)


def test_hostile_latex_through_the_cli_is_one_line_exit_2(tmp_path):
    formula = r"\input{/etc/passwd} + __import__('os').system('touch PWNED')"
    path = tmp_path / "claims.toml"
    path.write_text("[[claim]]\nname = 'x'\nspec = 'sgd(lr=eta)'\nexpect = 'holds'\n"
                    f"equals_latex = '''{formula}'''\n")
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "invalid LaTeX formula" in proc.stderr and not (ROOT / "PWNED").exists()
    path.write_text("[[claim]]\nname = 'x'\nspec = 'sgd(lr=eta)'\nexpect = 'holds'\n"
                    "equals = 'theta_0'\nequals_latex = '\\theta_0'\n")
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "not both" in proc.stderr


PIECES = list("0123456789abxgt+-*/^_{}()[]|,.' \\") + [
    "\\frac", "\\sqrt", "\\left(", "\\right)", "\\theta", "\\eta", "\\hat", "\\cdot",
    "\\lvert", "\\rvert", "\\mathrm", "\\max", "\\log", "\\beta_1"]
LATEXISH = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(LATEXISH)
def test_any_input_parses_or_is_refused_never_crashes(text):
    try:
        value = parse_latex(text, "formula", resolve)
    except UserError:
        return
    assert isinstance(value, sp.Basic)


def test_the_readme_example_claims_file_checks_as_documented(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Claims files", 1)[1].split("\n## ", 1)[0]
    path = tmp_path / "claims.toml"
    path.write_text(section.split("```toml\n", 1)[1].split("```", 1)[0])
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 of 3 claims as expected" in proc.stdout and "refuted, expected fails" in proc.stdout
