"""Shared by the numeric tests: a torch.optim optimizer and a generated one on identical
parameters, fed identical gradients, and the comparison of their parameters and state."""
from __future__ import annotations

import pytest
import torch

from optequiv.numeric.metrics import tolerance
from optequiv.numeric.optimizer import torch_optimizer
from optequiv.numeric.reference import torch_reference

CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="CUDA is not available (torch.cuda.is_available() is False)")


def twins(spec, shapes=((3, 4), (5,), ()), dtype=torch.float64, device="cpu", seed=0, **extra):
    """(torch's loop, the generated optimizer (with `extra` keywords), their params), identical
    initial values."""
    g = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    cls, kwargs = torch_reference(spec)
    a = [torch.nn.Parameter(x.to(device, dtype).clone()) for x in init]
    b = [torch.nn.Parameter(x.to(device, dtype).clone()) for x in init]
    return cls(a, foreach=False, **kwargs), torch_optimizer(spec)(b, **extra), a, b


def feed(params_a, params_b, step, skip=()):
    """The same gradients to both (None for the indices in `skip`)."""
    g = torch.Generator().manual_seed(1000 + step)
    for i, (p, q) in enumerate(zip(params_a, params_b)):
        grad = None if i in skip else torch.randn(p.shape, generator=g, dtype=torch.float64)
        p.grad = None if grad is None else grad.to(p.device, p.dtype).clone()
        q.grad = None if grad is None else grad.to(q.device, q.dtype).clone()


def assert_matches(opt_a, opt_b, params_a, params_b, exact: bool = True):
    """Parameters and every state tensor: bit for bit (exact), or within the dtype's stated
    tolerance; the same state keys, dtypes and shapes, for the same parameters."""
    for p, q in zip(params_a, params_b):
        rtol = 0.0 if exact else tolerance(p.dtype)
        torch.testing.assert_close(q, p, rtol=rtol, atol=rtol, equal_nan=True)
        assert (p in opt_a.state) == (q in opt_b.state)
        assert set(opt_b.state.get(q, {})) == set(opt_a.state.get(p, {}))
        for key, value in opt_a.state.get(p, {}).items():
            mine = opt_b.state[q][key]
            assert mine.dtype == value.dtype and mine.shape == value.shape, key
            torch.testing.assert_close(mine, value, rtol=rtol, atol=rtol, equal_nan=True)


def closure(params, opt):
    """A closure as torch documents it: zero the gradients, recompute the loss, backward."""
    def run():
        opt.zero_grad()
        loss = (params[0] ** 2).sum()
        loss.backward()
        return loss
    return run


def switch_features(group: dict, step: int, off=range(6, 9)) -> None:
    """Momentum and weight_decay to 0 during `off`, then back: a structural switch that torch
    re-reads from param_groups at every step."""
    for key in ("momentum", "weight_decay"):
        if key in group:
            group.setdefault(f"saved_{key}", group[key])
            group[key] = 0.0 if step in off else group[f"saved_{key}"]
