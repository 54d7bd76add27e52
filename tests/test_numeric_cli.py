"""`optequiv crosscheck`: exit 0 when the generated optimizer agrees with every torch.optim
implementation on every step, 1 when it does not (printing the first mismatch) or when a
comparison was partial (torch raised; the steps compared and torch's exception are printed),
2 for bad input (one line on stderr, no traceback). `--skip IMPL` leaves one out on purpose."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import optequiv.numeric.against_torch as against
from optequiv.derive.cli import main
from optequiv.numeric import torch_optimizer

CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="CUDA is not available (torch.cuda.is_available() is False)")
KEYS = {"passed", "steps", "max_abs_error", "max_rel_error", "max_ulp"}


def cli(capsys, *argv):
    code = main(["crosscheck", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_installed_command_prints_json_and_exits_0():
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", "crosscheck",
                           "adamw(lr=1e-3, weight_decay=0.1)", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert KEYS <= set(data) and data["passed"] is True and data["steps"] == 200
    assert data["implementations"]["loop"]["max_ulp"] == 0
    assert isinstance(data["max_ulp"], int) and data["first_mismatch"] is None


def test_text_report_names_every_implementation(capsys):
    code, out, err = cli(capsys, "adam(lr=0.1, amsgrad=true)", "--steps", "30", "--dtype",
                         "float32", "--seed", "7")
    assert code == 0 and err == ""
    assert "float32 on cpu, 30 steps, seed 7" in out and out.rstrip().endswith("result: agree")
    for impl in ("loop", "foreach", "fused"):
        assert f"  {impl:<8} agree    30/30 steps " in out


NESTEROV = "sgd(momentum=0.9, nesterov=true)"  # torch 2.13's fused SGD raises at step 5 here


def test_a_partial_comparison_exits_1_and_says_what_torch_raised(capsys):
    code, out, err = cli(capsys, NESTEROV)
    assert code == 1 and err == ""
    assert "  fused    PARTIAL  4/200 steps " in out
    assert "torch raised at step 5: TypeError: expected Tensor" in out
    for impl in ("loop", "foreach"):
        assert f"  {impl:<8} agree    200/200 steps " in out
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("result: INCOMPLETE: fused compared on 4 of 200 steps (torch raised "
                           "TypeError at step 5)") and "--skip fused" in last
    assert "result: agree" not in out
    code, out, _ = cli(capsys, NESTEROV, "--json")
    data = json.loads(out)
    assert code == 1 and data["passed"] is False and data["complete"] is False
    assert data["agree"] is True and data["reference_errors"]["fused"].startswith("step 5: ")
    fused = data["implementations"]["fused"]
    assert fused["passed"] is False and fused["steps"] == fused["steps_compared"] == 4
    assert fused["steps_requested"] == 200 and fused["raised"]["step"] == 5


def test_skip_leaves_an_implementation_out_on_purpose(capsys):
    code, out, err = cli(capsys, NESTEROV, "--skip", "fused")
    assert code == 0 and err == ""
    assert "  fused    left out on request (--skip fused)" in out
    assert out.rstrip().endswith("result: agree (fused left out on request)")
    code, out, _ = cli(capsys, NESTEROV, "--skip", "fused", "--skip", "foreach", "--json")
    data = json.loads(out)
    assert code == 0 and data["passed"] is True and set(data["implementations"]) == {"loop"}
    assert data["left_out"] == {"foreach": "on request (--skip)", "fused": "on request (--skip)"}


@pytest.fixture
def wrong_optimizer(monkeypatch):
    """Negative control: the command's generated optimizer replaced by one with twice the lr."""
    monkeypatch.setattr(against, "torch_optimizer",
                        lambda spec, rule_for=None: torch_optimizer("adam(lr=0.02)"))


def test_a_mismatch_exits_1_and_prints_the_first_one(capsys, wrong_optimizer):
    code, out, _ = cli(capsys, "adam(lr=0.01)", "--steps", "10")
    assert code == 1
    assert "MISMATCH" in out and "first mismatch: step 1, " in out
    code, out, _ = cli(capsys, "adam(lr=0.01)", "--steps", "10", "--json")
    data = json.loads(out)
    assert code == 1 and data["passed"] is False
    assert data["first_mismatch"]["step"] == 1 and data["first_mismatch"]["tensor"]


BAD = {
    "symbolic spec": ["sgd(lr=eta)"],
    "decay torch has no class for": ["adamw(decay=independent)"],
    "zero buffer": ["sgd(momentum=0.9, buffer=zero)"],
    "invalid hyperparameter": ["adam(lr=-1)"],
    "syntax": ["adam(lr=)"],
    "unknown optimizer": ["yogi"],
    "dtype": ["adam", "--dtype", "float16"],
    "steps": ["adam", "--steps", "0"],
    "seed": ["adam", "--seed", "-3"],
    "device": ["adam", "--device", "tpu"],
    "skip": ["adam", "--skip", "fusd"],
    "skip everything": ["adam", "--skip", "loop", "--skip", "foreach", "--skip", "fused"],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_exit_2(case, capsys):
    code, out, err = cli(capsys, *BAD[case])
    assert code == 2 and out == ""
    assert err.startswith("optequiv: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line_and_exit_2(capsys):
    code, out, err = cli(capsys, "adam", "--device", "cuda")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "CUDA is not available" in err


@CUDA
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_crosscheck(dtype, capsys):
    code, out, _ = cli(capsys, "adamw(lr=1e-3, weight_decay=0.1)", "--device", "cuda",
                       "--dtype", dtype, "--json")
    assert code == 0, out
    assert json.loads(out)["device"] == "cuda"


def test_the_command_is_a_plugin_that_needs_torch_only_when_it_runs():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from optequiv.derive.cli import build_parser, main\n"
            "assert 'crosscheck' in build_parser().format_help()\n"
            "from optequiv import numeric\nimport numpy\n"
            "s = numeric.numpy_step('adam')\n"
            "print(s(s.init(numpy.ones(2)), numpy.ones(2), numpy.ones(2))[1])\n"
            "sys.exit(main(['crosscheck', 'adam']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "optequiv: crosscheck needs torch: pip install 'optequiv[torch]'"
