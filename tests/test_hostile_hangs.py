"""Inputs inside the documented limits finish, or are refused up front (issue 13, defect 3).

The bound is the command's own time budget ($OPTEQUIV_TIME_LIMIT, enforced by derive.budget in
the CLI), not a test timeout: a run past it exits 2 with "gave up", which fails these tests."""
from __future__ import annotations

import time

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


class _SlowFinalizer:
    """An object whose __del__ outlasts the budget: the alarm rings inside it, where Python
    prints the exception and swallows it."""

    def __del__(self):
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            pass


def _busy(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("again", [True, False], ids=["as-built", "planted-one-shot-alarm"])
def test_a_budget_swallowed_in_a_finalizer_still_ends_the_block(monkeypatch, again):
    """The ring inside __del__ is lost; the next ring must still end the block. The negative
    control plants a one-shot alarm (no ring again) and shows the block then runs to its end."""
    from optequiv.derive import budget

    if not again:
        monkeypatch.setattr(budget.signal, "setitimer", _one_shot(budget.signal.setitimer))
    began, ended = time.monotonic(), None
    try:
        with budget.within(0.1):
            _SlowFinalizer()  # dropped at once: __del__ runs now, past the deadline
            _busy(2.0)
            ended = "ran to its end"
    except budget.OutOfTime:
        ended = "out of time"
    took = time.monotonic() - began
    if again:
        assert ended == "out of time" and took < 1.5, (ended, took)
    else:
        assert ended == "ran to its end", ended


def _one_shot(setitimer):
    """setitimer that ignores the handler's re-arming (a call from inside _ring)."""
    import sys

    def arm(which, seconds, *rest):
        if sys._getframe(1).f_code.co_name == "_ring":
            return (0.0, 0.0)
        return setitimer(which, seconds, *rest)
    return arm
