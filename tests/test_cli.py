"""The command line: outputs, JSON contracts, and one-line errors with exit status 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_compare_text_explains_the_divergence():
    rc, out, err = run("compare", "sgd(lr=eta, momentum=mu, weight_decay=lam)",
                       "sgd(lr=eta, momentum=mu, weight_decay=lam2, decay=decoupled)")
    assert rc == 1, err  # as cmp and diff: 1 means different
    assert "NOT EQUIVALENT: first divergent step 2" in out
    assert "eta*lam*mu*theta_0" in out
    assert "one scalar coordinate suffices" in out


def test_compare_json_contract():
    rc, out, _ = run("compare", "sgd(lr=eta, weight_decay=lam)",
                     "sgd(lr=eta, weight_decay=k, decay=independent)", "--json")
    data = json.loads(out)
    assert rc == 0
    assert list(data) == ["verdict", "equivalent", "a", "b", "mapping", "valid_when",
                          "first_divergent_step", "difference", "conditions", "counterexample",
                          "reason", "certificate"]
    assert data["verdict"] == "proven" and data["valid_when"] == [] and data["reason"] is None
    assert data["a"] == "sgd(lr=eta, weight_decay=lam)"
    assert data["certificate"]["kind"] == "induction"
    assert data["equivalent"] is True and data["mapping"] == {"k": "eta*lam"}
    assert data["first_divergent_step"] is None and data["counterexample"] is None


def test_compare_json_divergence():
    rc, out, _ = run("compare", "adam(weight_decay=lam)", "adamw(weight_decay=lam2)", "--json")
    data = json.loads(out)
    assert data["equivalent"] is False and data["first_divergent_step"] == 1
    assert data["mapping"] is None and isinstance(data["difference"], str)
    assert all(isinstance(k, str) and isinstance(v, str) for c in data["conditions"]
               for k, v in c.items())
    assert set(data["counterexample"]) >= {"loss", "theta_A", "theta_B", "hyperparameters"}


def test_compare_schedule_option():
    rc, out, _ = run("compare", "sgd(lr=eta, weight_decay=lam)",
                     "sgd(lr=eta, weight_decay=k, decay=independent)", "--schedule", "eta",
                     "--json")
    assert rc == 1 and json.loads(out)["first_divergent_step"] == 2


def test_compare_exit_status_follows_cmp():
    """0 proven, 1 refuted, 3 undecided; 2 stays bad input."""
    assert run("compare", "sgd(lr=eta)", "sgd(lr=e2)")[0] == 0
    assert run("compare", "sgd(lr=eta, maximize=true)", "sgd(lr=e2)")[0] == 1
    rc, out, _ = run("compare", "adam(amsgrad=true, weight_decay=lam)", "adam(lr=e2)",
                     "--steps", "1", "--json")
    data = json.loads(out)
    assert (rc, data["verdict"]) in ((1, "refuted"), (3, "undecided"))
    if rc == 3:
        assert data["reason"]
    assert run("compare", "sgd(lr=-1)", "sgd")[0] == 2


def test_compare_text_names_the_initial_state_of_a_counterexample():
    """From a general state the printed point must be replayable: buf_0 is named."""
    rc, out, _ = run("compare", "sgd(lr=eta, momentum=mu, weight_decay=lam)",
                     "sgd(lr=eta, momentum=mu, weight_decay=lam2, decay=decoupled)",
                     "--from", "state")
    assert rc == 1
    line = next(l for l in out.splitlines() if "counterexample (exact)" in l)
    assert "buf_0 = " in line


def test_unroll_text_and_latex():
    rc, out, _ = run("unroll", "sgd(lr=eta, momentum=mu, weight_decay=lam)", "--steps", "2")
    assert rc == 0 and "buf_2 = buf_1*mu + g_2 + lam*theta_1" in out
    rc, out, _ = run("unroll", "adamw", "--steps", "1", "--format", "latex", "--from", "state")
    assert rc == 0 and out.startswith("\\begin{align*}") and "\\theta_{1}" in out
    assert "\\beta_1" in out and "\\gamma" in out
    rc, out, _ = run("unroll", "sgd(lr=eta)", "--steps", "2", "--loop", "closed")
    assert rc == 0 and "grad_f(theta_1)" in out


def test_latex_never_prints_two_symbols_alike():
    # the default lr prints as gamma (torch's docs), so a user's own gamma takes the letter and
    # lr is spelled out, in every row of the output alike
    rc, out, _ = run("unroll", "sgd(momentum=gamma)", "--steps", "2", "--from", "state",
                     "--format", "latex")
    assert rc == 0 and out.count("\\mathrm{lr}") == 2 and "b_{0} \\gamma" in out
    rc, out, _ = run("unroll", "sgd(momentum=0.9, weight_decay=lam)", "--steps", "1",
                     "--format", "latex")
    assert rc == 0 and "\\gamma" in out and "\\mathrm" not in out  # no clash, no change


def test_list():
    rc, out, _ = run("list", "--json")
    data = json.loads(out)
    from optequiv.derive.catalogue import NAMES, NOT_MODELLED
    assert rc == 0 and set(data) == set(NAMES) | set(NOT_MODELLED)
    assert {"sgd", "adam", "adamw"} <= {n for n, info in data.items() if info["modelled"]}
    assert not any(data[n]["modelled"] for n in NOT_MODELLED) and data["lbfgs"]["reason"]
    assert data["adamw"]["keys"]["weight_decay"]["torch_default"] == "1e-2"
    rc, out, _ = run("list")
    assert rc == 0 and "decoupled" in out


@pytest.mark.parametrize("args, message", [
    (["compare", "sgd(lr=-1.0)", "sgd"], "Invalid learning rate: -1.0"),
    (["compare", "adam(betas=(1.5, 0.9))", "adam"], "Invalid beta parameter at index 0: 1.5"),
    (["compare", "sgd(weight_decay=-0.1)", "sgd"], "Invalid weight_decay value: -0.1"),
    (["compare", "adam(eps=-1)", "adam"], "Invalid epsilon value: -1"),
    (["compare", "sgd(nesterov=true)", "sgd"], "Nesterov momentum requires a momentum and zero dampening"),
    (["compare", "lamb", "sgd"], "unknown optimizer 'lamb'; valid names: sgd, adam, adamw"),
    (["compare", "sgd(beta=1)", "sgd"], "unknown key 'beta' for sgd; valid keys:"),
    (["compare", "sgd(lr=0.1", "sgd"], "invalid spec"),
    (["compare", "sgd(lr=__import__('os').system('id'))", "sgd"], "unexpected character"),
    (["compare", "sgd(nesterov=x, momentum=1)", "sgd"], "nesterov must be true or false"),
    (["compare", "sgd", "sgd", "--steps", "0"], "--steps must be a whole number"),
    (["compare", "sgd", "sgd", "--schedule", "zz"], "--schedule names zz"),
    (["compare", "sgd"], "required"),
    (["unroll", "sgd"], "required: --steps"),
    (["unroll", "sgd", "--steps", "2", "--format", "pdf"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    rc, out, err = run(*args)
    assert rc == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == ""
