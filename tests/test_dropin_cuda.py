"""The compile drop-in matrix on CUDA: inductor, and CUDA graphs (mode="reduce-overhead": the
step count stays a device tensor, so the graph can be replayed), against torch.optim's own
class compiled the same way. Skipped, with the reason, where there is no GPU."""
from __future__ import annotations

import pytest
import torch

from dropin import SPECS, compare, spec_id
from test_dropin_compile import RTOL, reference, run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="CUDA is not available (torch.cuda.is_available() is False)")
MODES = [None, "reduce-overhead"]  # plain inductor; CUDA graphs


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_compiled_step_on_cuda_matches_compiled_torch(spec, mode):
    ours, _ = run(spec, "ours", torch.float32, "inductor", device="cuda", mode=mode)
    theirs, _ = reference(spec, torch.float32, "inductor", device="cuda", mode=mode)
    d = compare(ours, theirs, torch.float32)
    assert d["rel"] <= RTOL[torch.float32], d


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_tensor_lr_on_cuda_compiles_once(spec):
    ours, _ = run(spec, "ours", torch.float32, "inductor", tensor_lr=True, steps=25,
                  strict=True, device="cuda")
    theirs, _ = reference(spec, torch.float32, "inductor", tensor_lr=True, steps=25,
                          strict=True, device="cuda")
    assert compare(ours, theirs, torch.float32)["rel"] <= RTOL[torch.float32]


def test_negative_control_planted_bug_is_caught_on_cuda():
    ours, _ = run(SPECS[-1], "ours", torch.float32, "inductor", plant=True, device="cuda",
                  mode="reduce-overhead")
    theirs, _ = reference(SPECS[-1], torch.float32, "inductor", device="cuda",
                          mode="reduce-overhead")
    assert compare(ours, theirs, torch.float32)["rel"] > 30 * RTOL[torch.float32]
