"""numeric.testing.assert_matches_spec: for users' own CI.

It passes for torch's own optimizers and for a user's optimizer that implements a spec torch has
no class for, and fails, naming step, tensor and error, for optimizers that implement something
else (the negative controls). Where the dtype cannot tell the spec from one of its nearest
variants, float64 is compared as well: the planted AdamW that decays after the step, which
float32 cannot resolve at lr 1e-4, is caught there. An optimizer that raises shows its own
traceback.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback
import warnings

import pytest
import torch

from optequiv.numeric import torch_optimizer
from optequiv.numeric.testing import Check, UnresolvedWarning, assert_matches_spec
from optequiv.numeric.variants import nearest_variants

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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check = assert_matches_spec(factory, spec)
    assert isinstance(check, Check) and str(check).startswith(f"matches {spec} over 20 steps")
    # a warning only for a variant the check could not tell apart, and then it names it
    assert [w.category for w in caught] == [UnresolvedWarning] * bool(check.unresolved)
    for name in check.unresolved:
        assert name in str(caught[0].message)


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
    # parameters before state: the buffer differs at step 2 too, but the parameter decides
    "undampened momentum": (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
                            "sgd(lr=0.1, momentum=0.9, dampening=0.5)", 2, "mlp.w1"),
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
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "optequiv.numeric.pytest_plugin",
                           "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


# -- resolution: a pass must not hide a variant the dtype cannot tell apart ----------------------

SPEC = "adamw(lr=1e-4, weight_decay=0.1)"
# old Hugging Face AdamW: decays the updated parameter, off from the spec by lr²·λ·θ per step
DECAYS_AFTER = torch_optimizer("adamw(lr=1e-4, weight_decay=0.1, decay=after)")


def test_negative_control_float32_cannot_resolve_decay_after_so_float64_catches_it():
    with pytest.raises(AssertionError) as caught:
        assert_matches_spec(DECAYS_AFTER, SPEC, steps=200, dtype=torch.float32)
    message = str(caught.value)
    assert message.startswith(f"the optimizer does not implement {SPEC}: float32 cannot tell ")
    assert "adamw(lr=1e-4, weight_decay=0.1, decay=after) (max relative difference " in message
    assert "float64 compared as well (in float32 it matched to relative " in message
    assert "first mismatch at step 1, " in message and "eps of float64" in message
    assert "\n" not in message


def test_without_float64_the_planted_optimizer_passes_float32_and_the_pass_says_so():
    """The control that shows float64 is what catches it: float32 alone cannot."""
    with pytest.warns(UnresolvedWarning, match=r"cannot tell .*decay=after"):
        check = assert_matches_spec(DECAYS_AFTER, SPEC, steps=200, dtype=torch.float32,
                                    also_float64=False)
    assert check.skipped_float64 and len(check.runs) == 1
    assert "adamw(lr=1e-4, weight_decay=0.1, decay=after)" in check.unresolved
    assert "float32 cannot tell" in str(check)
    assert str(check).endswith("float64 not compared (also_float64=False)")


def test_a_correct_optimizer_still_passes_and_the_pass_states_the_resolution():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float64 tells every variant apart in 200 steps
        check = assert_matches_spec(lambda ps: torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.1),
                                    SPEC, steps=200, dtype=torch.float32)
    assert [r.dtype for r in check.runs] == [torch.float32, torch.float64]
    assert not check.unresolved and check.runs[1].yours.passed
    text = str(check)
    assert "float32 cannot tell " in text and "decay=after" in text
    assert text.endswith("float64 compared as well: max relative error 0, tolerance 9.09e-13; "
                         "it tells them apart")


def test_float64_runs_only_where_the_dtype_cannot_resolve():
    check = assert_matches_spec(lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
                                "adam(lr=0.01, weight_decay=0.1)", dtype=torch.float32)
    assert len(check.runs) == 1 and not check.runs[0].unresolved
    n = len(nearest_variants("adam(lr=0.01, weight_decay=0.1)"))  # every decay=, each flag
    assert n >= 5 and f"it tells {n} of its {n} nearest variants apart" in str(check)


def test_a_variant_that_is_the_spec_at_these_values_is_proven_not_counted_unresolved():
    # with dampening 0, a zero buffer's first step is buf = g: torch's buffer exactly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check = assert_matches_spec(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
                                    "sgd(lr=0.1, momentum=0.9)", dtype=torch.float32)
    assert check.runs[0].same == ("sgd(lr=0.1, momentum=0.9, buffer=zero)",)
    assert len(check.runs) == 1 and "buffer=zero) is the spec itself at these values" in str(check)


def _raising_at(step, factory):
    def mine(params):
        opt, calls = factory(params), [0]
        inner = opt.step

        def my_step(closure=None):
            calls[0] += 1
            if calls[0] == step:
                raise KeyError("a bug of mine")
            return inner(closure)
        opt.step = my_step
        return opt
    return mine


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_an_optimizer_that_raises_shows_its_own_traceback(dtype):
    with pytest.raises(KeyError, match="a bug of mine") as caught:
        assert_matches_spec(_raising_at(3, lambda ps: torch.optim.SGD(ps, lr=0.1)),
                            "sgd(lr=0.1)", dtype=dtype)
    frames = [f.name for f in traceback.extract_tb(caught.value.__traceback__)]
    assert frames[-1] == "my_step"
    assert "(raised by the optimizer under test at step 3 of 20, " in caught.value.__notes__[0]


def test_an_optimizer_that_raises_only_in_the_float64_run_says_why_float64_ran():
    def float32_only(params):
        if params[0].dtype == torch.float64:
            return _raising_at(1, DECAYS_AFTER)(params)
        return DECAYS_AFTER(params)

    with pytest.raises(KeyError) as caught:
        assert_matches_spec(float32_only, SPEC, steps=200, dtype=torch.float32)
    notes = caught.value.__notes__
    assert "step 1 of 200, float64" in notes[0]
    assert "compared float64 as well because float32 cannot tell " in notes[1]
