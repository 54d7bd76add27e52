"""Shared by the drop-in tests (compile, AMP, distributed, checkpoints): the catalogue entries
torch has a class for, each with its optional features on, the two optimizers to compare, the
gradients they see, and a planted bug for each entry.

Every case builds torch.optim's own class and the generated one in the same setting, from the
same spec, and compares what the two leave behind (parameters and state) in units of the
dtype's eps (numeric.metrics)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import torch

from optequiv.derive.rules import build_rule
from optequiv.derive.spec import KEYS, NAMES, as_spec, parse_spec
from optequiv.numeric.metrics import difference
from optequiv.numeric.optimizer import torch_optimizer
from optequiv.numeric.reference import has_torch_class, torch_reference

# a value for each keyword that switches a part of the step on (lazy buffers, decay, Nesterov);
# an entry takes those it has
FEATURES = {"lr": "0.01", "momentum": "0.9", "nesterov": "true", "weight_decay": "0.1"}


def _spec_text(name: str) -> str:
    return f"{name}({', '.join(f'{k}={v}' for k, v in FEATURES.items() if k in KEYS[name])})"


SPECS = [text for text in map(_spec_text, NAMES) if has_torch_class(parse_spec(text))]


def _stage(rule, name, wrap):
    return replace(rule, stages=tuple(replace(s, fn=wrap(s.fn)) if s.name == name else s
                                      for s in rule.stages))


def planted(spec):
    """A wrong rule for `spec`: the bias correction one step ahead (1 - beta1**(t+1)) where the
    rule has Adam's, else the step count counted twice a step where it keeps one, else (SGD) an
    lr 0.1% too large. Each is the size of bug a drop-in must not hide, and each depends on
    values that compile could freeze (the step count, the lr). The count is state that every
    check compares (torch's own compiled step freezes it: test_dropin_compile), and where the
    rule reads it (Adamax's and NAdam's bias corrections, ASGD's schedule) the steps move too.
    An lr 0.1% off is no plant for every entry: Adadelta at lr=0.01 moves its parameters by
    ~1e-5 a step, so that bug changes what is compared by 2e-8 relative, and Adagrad's, Rprop's
    and ASGD's by 8e-7 to 4e-6, where a plant must show 3e-5 (30 float32 tolerances)."""
    rule = build_rule(spec)
    if "adam_direction" in rule.stage_names():
        def ahead(fn):
            def direction(c, h):
                out, t = fn(c, h), c.state["t"]
                return replace(out, u=out.u * (1 - h["beta1"] ** t) / (1 - h["beta1"] ** (t + 1)))
            return direction
        return _stage(rule, "adam_direction", ahead)
    if "count" in rule.stage_names():
        def count_ahead(fn):
            def count(c, h):
                out = fn(c, h)
                return out.with_state(t=out.state["t"] + 1)
            return count
        return _stage(rule, "count", count_ahead)

    def larger(fn):
        def scale(c, h):
            out = fn(c, h)
            return replace(out, u=out.u * 1.001)
        return scale
    return _stage(rule, "scale_lr", larger)


def optimizers(spec, plant: bool = False):
    """(torch.optim's class, its keyword arguments, the generated class) for `spec`; with
    plant=True the generated class runs planted(spec) instead of the rule."""
    cls, kwargs = torch_reference(spec)
    generated = torch_optimizer(spec, rule_for=planted) if plant else torch_optimizer(spec)
    return cls, kwargs, generated


def gradients(params, step: int, skip_every: int = 3, dtype=None) -> None:
    """Deterministic gradients; the last parameter has none on every third step (torch skips
    it entirely: no state, no count, no decay)."""
    g = torch.Generator().manual_seed(1000 + step)
    for i, p in enumerate(params):
        grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
        none = i == len(params) - 1 and step % skip_every == 1
        p.grad = None if none else grad.to(p.device, dtype or p.dtype, copy=True)


def tensors(params, opt) -> torch.Tensor:
    """Parameters, then every state tensor, flattened in one float64 vector: what is compared."""
    parts = [p.detach().reshape(-1).double().cpu() for p in params]
    for p in params:
        for key in sorted(opt.state.get(p, {})):
            value = opt.state[p][key]
            if isinstance(value, torch.Tensor):
                value = value.to_local() if hasattr(value, "to_local") else value
                parts.append(value.detach().reshape(-1).double().cpu())
    return torch.cat(parts)


def compare(ours, theirs, dtype) -> dict:
    """ulp, abs and rel differences of two `tensors` vectors, computed in `dtype`."""
    if ours.shape != theirs.shape:  # different state entries: as far apart as can be
        return {"ulp": float("inf"), "abs": float("inf"), "rel": float("inf")}
    d = difference(ours.to(dtype), theirs.to(dtype))
    return {"ulp": d.ulp, "abs": d.abs_error, "rel": d.rel_error()}


def spec_id(spec) -> str:
    return as_spec(spec).name


@contextmanager
def default_dtype(dtype):
    """torch's default dtype for a block (torch keeps the step count in it)."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)
