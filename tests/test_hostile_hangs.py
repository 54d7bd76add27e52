"""Inputs inside the documented limits finish, or are refused up front (issue 13, defect 3).

The bound is the command's own time budget ($OPTEQUIV_TIME_LIMIT, enforced by derive.budget in
the CLI), not a test timeout: a run past it exits 2 with "gave up", which fails these tests."""
from __future__ import annotations

import pytest

from optequiv.derive.cli import main

BOUND = "60"  # seconds; each case below took from 7 s to minutes before the fix


@pytest.fixture
def bounded(monkeypatch):
    monkeypatch.setenv("OPTEQUIV_TIME_LIMIT", BOUND)


@pytest.mark.parametrize("spec, steps, recurrence", [
    ("sgd(lr=eta, momentum=mu, weight_decay=lam)", "16", "buf_16 = buf_15*mu + g_16 + lam*theta_15"),
    ("sgd(momentum=mu, nesterov=true, weight_decay=lam)", "12", "buf_12 = buf_11*mu"),
    ("adam(amsgrad=true, weight_decay=lam)", "8", "vmax_8 = Max(vmax_7"),
    ("adam(amsgrad=true, weight_decay=lam)", "64", "vmax_64 = Max(vmax_63"),
])
def test_unroll_within_the_documented_steps_finishes(bounded, capsys, spec, steps, recurrence):
    assert main(["unroll", spec, "--steps", steps]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert recurrence in out
    # past the display limits the composed form is summarised, never printed as a huge tree
    assert max(len(line) for line in out.splitlines()) < 20000


def test_unroll_still_expands_small_cases(bounded, capsys):
    assert main(["unroll", "sgd(lr=eta, momentum=mu, weight_decay=lam)", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "theta_2 = " in out and "(in theta_0 and the gradients)" in out


def test_an_eight_step_amsgrad_claim_is_decided(bounded, tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text('[[claim]]\nname = "eight"\nspec = "adam(amsgrad=true)"\nsteps = 8\n'
                    'equals = "theta_0"\nexpect = "fails"\n')
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    assert "1 of 1 claims as expected" in capsys.readouterr().out


def test_the_budget_is_enforced_by_the_command(monkeypatch, capsys):
    # negative control: a budget too small for the work ends the run with one line, exit 2
    monkeypatch.setenv("OPTEQUIV_TIME_LIMIT", "0.01")
    assert main(["unroll", "adam(amsgrad=true, weight_decay=lam)", "--steps", "64"]) == 2
    err = capsys.readouterr().err
    assert "gave up after 0.01 s" in err and err.count("\n") == 1
