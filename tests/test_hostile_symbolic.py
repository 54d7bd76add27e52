"""Symbolic commands on hostile input: no internal error, no wrong verdict from a generated name,
LaTeX for every closed-loop rule (issue 13, defects 5, 6, 8)."""
from __future__ import annotations

import itertools

import pytest

from optequiv.derive import symbols as Y
from optequiv.derive.cli import main
from optequiv.derive.errors import UserError
from optequiv.derive.unroll import unroll


@pytest.fixture(autouse=True)
def bounded(monkeypatch):
    monkeypatch.setenv("OPTEQUIV_TIME_LIMIT", "120")  # the code's budget, not a test timeout


def test_a_value_undefined_at_a_solved_point_is_no_internal_error(capsys):
    # the solver met lam = 0 in lr = eta/lam: an mpf of zoo, an internal error before
    # refuted (exit 1, as cmp), never an internal error
    assert main(["compare", "adamw(lr=eta/lam)", "adamw(eps=eta)"]) == 1, capsys.readouterr().err
    assert "NOT EQUIVALENT" in capsys.readouterr().out


@pytest.mark.parametrize("a, b", [
    ("sgd(lr=eta + eta_1)", "sgd(lr=2*eta_1)"),  # eta_1 would be step 1's copy of eta
    ("sgd(lr=eta)", "sgd(lr=eta, weight_decay=eta_t)"),  # eta_t the generic step's
])
def test_a_user_name_that_a_scheduled_copy_would_take_is_refused(capsys, a, b):
    assert main(["compare", a, b, "--schedule", "eta"]) == 2
    err = capsys.readouterr().err
    assert "taken by the per-step copies of the scheduled eta" in err and err.count("\n") == 1
    with pytest.raises(UserError, match="per-step copies"):
        unroll(b, 2, schedule=(Y.hyper("eta"),))


def test_the_same_names_without_a_schedule_are_ordinary_symbols(capsys):
    # negative control: eta_1 is only refused where it would collide
    assert main(["compare", "sgd(lr=eta + eta_1)", "sgd(lr=2*eta_1)"]) == 1  # refuted, as cmp
    assert "NOT EQUIVALENT" in capsys.readouterr().out
    assert main(["compare", "sgd(lr=eta1 + eta)", "sgd(lr=2*eta1)", "--schedule", "eta"]) == 1
    assert "first divergent step 1" in capsys.readouterr().out  # differs at step 1, as it does


ADAMS = [f"{name}({', '.join(opts)})" for name in ("adam", "adamw")
         for opts in itertools.chain.from_iterable(
             itertools.combinations(["amsgrad=true", "weight_decay=lam", "maximize=true"], r)
             for r in range(3))]


@pytest.mark.parametrize("spec", ADAMS)
def test_closed_loop_latex_for_every_adam(capsys, spec):
    assert main(["unroll", spec, "--steps", "2", "--loop", "closed", "--format", "latex"]) == 0, \
        capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.startswith("\\begin{align*}") and "\\nabla f\\left(\\theta_{1}\\right)" in out
