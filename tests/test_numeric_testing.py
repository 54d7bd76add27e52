"""numeric.testing.assert_matches_spec: for users' own CI.

It passes for torch's own optimizers and for a user's optimizer that implements a spec torch has
no class for, and fails, naming step, tensor and error, for optimizers that implement something
else (the negative controls).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from numeric import torch_optimizer
from numeric.testing import assert_matches_spec

CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="CUDA is not available (torch.cuda.is_available() is False)")


class ZeroBufferSGD(torch.optim.Optimizer):
    """A user's optimizer: momentum as an EMA from a zero buffer (the seed's form), which
    torch.optim.SGD cannot express."""

    def __init__(self, params, lr, momentum):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad, alpha=1 - group["momentum"])
                p.add_(buf, alpha=-group["lr"])


PASSING = {
    "torch SGD": (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                  "sgd(lr=0.1, momentum=0.9, nesterov=true)"),
    "torch Adam": (lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.1),
                   "adam(lr=0.01, amsgrad=true, weight_decay=0.1)"),
    "torch AdamW, defaults": (torch.optim.AdamW, "adamw"),
    "torch fused AdamW": (lambda ps: torch.optim.AdamW(ps, lr=0.01, fused=True),
                          "adamw(lr=0.01)"),
    "user EMA momentum, buffer=zero": (lambda ps: ZeroBufferSGD(ps, lr=0.1, momentum=0.9),
                                       "sgd(lr=0.1, momentum=0.9, dampening=0.9, buffer=zero)"),
    "generated, decay=independent": (
        torch_optimizer("adamw(lr=0.01, weight_decay=1e-3, decay=independent)"),
        "adamw(lr=0.01, weight_decay=1e-3, decay=independent)"),
}


@pytest.mark.parametrize("case", sorted(PASSING))
def test_passes_for_optimizers_that_implement_the_spec(case):
    factory, spec = PASSING[case]
    assert_matches_spec(factory, spec)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_passes_in_each_dtype_and_device(dtype, device):
    assert_matches_spec(lambda ps: torch.optim.Adam(ps, lr=0.01), "adam(lr=0.01)",
                        steps=30, dtype=dtype, device=device, seed=3)


FAILING = {
    # (factory, spec, the first mismatch's step, a piece of its tensor's name)
    "Adam+L2 for AdamW": (lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
                          "adamw(lr=0.01, weight_decay=0.1)", 1, ""),
    "wrong lr": (lambda ps: torch.optim.SGD(ps, lr=0.1), "sgd(lr=0.2)", 1, ""),
    "torch's buffer for buffer=zero": (
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.9),
        "sgd(lr=0.1, momentum=0.9, dampening=0.9, buffer=zero)", 1, ""),
    # AdamW(lr=a, weight_decay=k/a) is the paper's lr-independent decay only at constant lr;
    # the check's lr schedule separates them (at step 2, when the lr first changes)
    "lr-scaled decay for decay=independent": (
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
        "adamw(lr=0.01, weight_decay=1e-3, decay=independent)", 2, ""),
    "undampened momentum": (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
                            "sgd(lr=0.1, momentum=0.9, dampening=0.5)", 2, "momentum_buffer"),
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_fails_naming_step_tensor_and_error(case):
    factory, spec, step, tensor = FAILING[case]
    with pytest.raises(AssertionError) as caught:
        assert_matches_spec(factory, spec)
    message = str(caught.value)
    assert f"first mismatch at step {step}, " in message
    assert tensor in message and "relative" in message and spec in message
    assert "\n" not in message


def test_a_check_that_would_compare_nothing_is_refused():
    wrong = lambda ps: torch.optim.Adam(ps, lr=0.1)  # noqa: E731 - would fail any real check
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps must be a whole number >= 1"):
            assert_matches_spec(wrong, "sgd(lr=0.1)", steps=steps)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_cuda_without_a_gpu_is_a_configuration_error_not_a_mismatch():
    with pytest.raises(ValueError, match="CUDA is not available on this machine") as info:
        assert_matches_spec(torch.optim.SGD, "sgd(lr=0.1)", device="cuda")
    assert not isinstance(info.value, AssertionError)


def test_the_pytest_plugin_offers_the_check_as_a_fixture(tmp_path):
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        import torch

        def test_mine(assert_matches_spec):
            assert_matches_spec(lambda ps: torch.optim.SGD(ps, lr=0.1), "sgd(lr=0.1)")

        def test_wrong(assert_matches_spec):
            try:
                assert_matches_spec(lambda ps: torch.optim.SGD(ps, lr=0.3), "sgd(lr=0.1)")
            except AssertionError as error:
                assert "step 1" in str(error)
            else:
                raise RuntimeError("the wrong optimizer passed")
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "numeric.pytest_plugin",
                           "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
