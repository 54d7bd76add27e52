"""Shared by the catalogue-entry tests: run a generated optimizer and torch.optim's class side by
side over the same gradients, and measure how far apart they end up (params and every state
entry, after every step). torch.optim is the reference; nothing here knows an optimizer."""
from __future__ import annotations

import numpy
import torch

from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.rules import build_rule
from optequiv.numeric import numpy_step, torch_optimizer
from optequiv.numeric import c_build

HAS_CC = c_build.find_compiler() is not None
N = 40


def gradients(steps: int, dtype, seed: int = 1) -> list:
    """Gradients with sign changes, exact zeros and a wide range of magnitudes."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(steps):
        x = torch.randn(N, generator=g, dtype=torch.float64) * 10.0 ** (k % 3 - 1)
        x[: 4 + k % 5] = 0.0 if k % 3 == 2 else x[: 4 + k % 5]
        x[N // 2:] = x[N // 2:].abs() * (1 if k % 2 else -1)  # a run of sign flips
        out.append(x.to(dtype))
    return out


def start(dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, generator=g, dtype=torch.float64).to(dtype)


def trajectory(make, kw: dict, dtype, steps: int = 10) -> list:
    """[(param, {key: state})] after every step of `make([p], **kw)`."""
    p = torch.nn.Parameter(start(dtype))
    opt = make([p], **kw)
    out = []
    for grad in gradients(steps, dtype):
        p.grad = grad.clone()
        opt.step()
        out.append((p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()}))
    return out


def torch_class(name: str):
    return getattr(torch.optim, ENTRIES[name].torch_class.rsplit(".", 1)[-1])


def ours(name: str, rule_for=build_rule):
    return torch_optimizer(name, rule_for=rule_for)


def distance(a: list, b: list) -> float:
    """The largest relative difference of params and state entries over all steps (inf when
    the state keys differ)."""
    worst = 0.0
    for (pa, sa), (pb, sb) in zip(a, b, strict=True):
        if set(sa) != set(sb):
            return float("inf")
        for x, y in [(pa, pb)] + [(sa[k], sb[k]) for k in sa]:
            x, y = x.double(), y.double()
            if not torch.equal(torch.isnan(x), torch.isnan(y)):
                return float("inf")
            ok = ~torch.isnan(x)
            scale = torch.maximum(x[ok].abs(), y[ok].abs()).clamp_min(1e-300)
            worst = max(worst, ((x[ok] - y[ok]).abs() / scale).max().item() if ok.any() else 0)
    return worst


def ulp(a: list, b: list) -> int:
    """The largest distance in float32 ulp between the params of two float32 trajectories."""
    worst = 0
    for (pa, _), (pb, _) in zip(a, b, strict=True):
        ia = pa.view(torch.int32).long()
        ib = pb.view(torch.int32).long()
        # ordered integers: negative floats count down from 0
        ia = torch.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
        ib = torch.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
        worst = max(worst, (ia - ib).abs().max().item())
    return worst


def spec_text(name: str, kw: dict) -> str:
    """The spec language's text for torch keyword arguments."""
    def show(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, tuple):
            return "(" + ", ".join(map(repr, v)) + ")"
        return repr(v)
    return f"{name}({', '.join(f'{k}={show(v)}' for k, v in kw.items())})"


def numpy_trajectory(name: str, kw: dict, steps: int = 10, rule_for=build_rule) -> list:
    """numeric.numpy_step over the same gradients, state keyed as torch keys it."""
    entry = ENTRIES[name]
    step = numpy_step(spec_text(name, kw), rule_for=rule_for)
    theta = start(torch.float64).numpy()
    state, out = None, []
    for grad in gradients(steps, torch.float64):
        state, theta = step(state, theta, grad.numpy())
        out.append((torch.from_numpy(numpy.array(theta)),
                    {entry.state(n).key: torch.as_tensor(numpy.array(v, dtype=numpy.float64))
                     for n, v in state.items() if v is not None}))
    return out


def normwise_ulp(a: list, b: list) -> float:
    """The largest |a - b| over all steps in float32 ulps of the parameter's largest magnitude:
    cancellation (an element near 0 that is the difference of two large terms) counts as what
    it is, a rounding of the large terms, not as many ulps of a tiny result."""
    eps = torch.finfo(torch.float32).eps
    return max(((pa.double() - pb.double()).abs().max() / (eps * pb.double().abs().max())).item()
               for (pa, _), (pb, _) in zip(a, b, strict=True))
