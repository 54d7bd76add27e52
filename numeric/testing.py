"""Check your own optimizer against a spec, in your own CI.

    from numeric.testing import assert_matches_spec

    def test_my_adamw():
        assert_matches_spec(lambda params: MyAdamW(params, lr=1e-3, weight_decay=0.1),
                            "adamw(lr=1e-3, weight_decay=0.1)")

The reference is the optimizer generated from the spec's symbolic rule (numeric.torch_optimizer),
not torch.optim, so specs torch has no class for work too (decay=independent, buffer=zero).
Both optimizers run side by side on numeric.problems (open loop: the same gradients for both,
some of them None, one parameter joining late, an lr schedule applied through param_groups,
and a restart of yours from its state_dict halfway). Parameters are compared after every step,
and so are the state entries both optimizers keep under the same name (torch's names: step,
momentum_buffer, exp_avg, exp_avg_sq, max_exp_avg_sq).
"""
from __future__ import annotations

import torch

from derive.spec import as_spec

from .harness import Scenario, require_device, side_by_side
from .metrics import EPS_UNITS
from .optimizer import torch_optimizer

SCENARIO = Scenario(groups=False, switch_off=None)


def assert_matches_spec(factory, spec, *, steps=20, dtype=torch.float64, device="cpu", seed=0):
    """Raise AssertionError, naming the first mismatching step, tensor and error, unless
    `factory(params)` builds an optimizer that implements `spec` (a spec string or Spec, all
    values numeric) to the tolerance of `dtype` (numeric.metrics)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"assert_matches_spec: steps must be a whole number >= 1, got {steps!r}")
    require_device(device, f"assert_matches_spec(device={str(device)!r})")
    text = spec if isinstance(spec, str) else str(spec)
    spec = as_spec(spec)
    reference = torch_optimizer(spec)
    [result] = side_by_side({"reference": reference, "candidate": factory},
                            [("candidate", "reference")], steps=steps, dtype=dtype,
                            device=device, seed=seed, scenario=SCENARIO, strict=False,
                            stop_early=True)
    if not result.passed:
        eps = EPS_UNITS.get(dtype)
        raise AssertionError(
            f"the optimizer does not implement {text}: first mismatch at {result.first_mismatch} "
            f"(tolerance: relative {result.rtol:.3g} = {eps} eps of {str(dtype).split('.')[-1]}, "
            f"against numeric.torch_optimizer({text!r}))")


__all__ = ["assert_matches_spec"]
