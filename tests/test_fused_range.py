"""The fused kernel at the edge of float32's range: where torch's loop stays finite, so does it
(issue 13, defect 9: with gradients of 1e20, (1 - beta2)*(g*g) overflowed where torch's
addcmul computes ((1 - beta2)*g)*g = 1e37)."""
from __future__ import annotations

import pytest
import torch

from optequiv.numeric.c_build import find_compiler
from test_numeric_crosscheck import SPECS, short
from twins import assert_matches, twins

pytestmark = pytest.mark.skipif(find_compiler() is None, reason="no C compiler on this machine")
EDGE = (1e20, -3e19, 1.5e19, -1e20, 2e-38, 1.0)  # g*g overflows float32 for the first four


def _run(spec, grads, **extra):
    ta, tb, a, b = twins(spec, shapes=((len(EDGE),),), dtype=torch.float32, fused=True, **extra)
    for g in grads:
        for p in (a[0], b[0]):
            p.grad = torch.tensor(g, dtype=torch.float32)
        ta.step(), tb.step()
    return ta, tb, a, b


@pytest.mark.parametrize("spec", SPECS, ids=short)
def test_fused_stays_finite_where_torch_does(spec):
    ta, tb, a, b = _run(spec, [EDGE, EDGE[::-1], EDGE])
    assert_matches(ta, tb, a, b, exact=False)
    finite_torch = [torch.isfinite(x).all() for x in [a[0], *ta.state[a[0]].values()]]
    finite_ours = [torch.isfinite(x).all() for x in [b[0], *tb.state[b[0]].values()]]
    assert finite_ours == finite_torch


def test_negative_control_the_square_first_overflows():
    # the same comparison catches the overflow: a gradient past sqrt(float32 max) squared first
    g = torch.tensor(1e20, dtype=torch.float32)
    assert torch.isinf(0.001 * (g * g)) and torch.isfinite((0.001 * g) * g)
    ta, tb, a, b = _run("adam(lr=0.01)", [EDGE])
    tb.state[b[0]]["exp_avg_sq"][0] = float("inf")
    with pytest.raises(AssertionError):
        assert_matches(ta, tb, a, b, exact=False)
