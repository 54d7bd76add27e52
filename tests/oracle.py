"""One step of torch.optim (the independent reference) and of our symbolic rule, on numbers.

Used by the property tests: the symbolic step, evaluated at random hyperparameters, states and
gradients, must equal torch.optim's own float64 step on the same inputs.
"""
from __future__ import annotations

import math

import sympy as sp
import torch

from optequiv.derive.rules import build_rule
from optequiv.derive.spec import as_spec, parse_spec
from optequiv.numeric.reference import torch_reference


def torch_step(spec, theta: float, grad: float, state: dict | None):
    """theta_t and the state after one torch.optim step (single-tensor loop, float64)."""
    cls, kwargs = torch_reference(spec)
    keys = {s.name: s.key for s in as_spec(spec).entry.states}  # the catalogue's torch keys
    p = torch.nn.Parameter(torch.tensor([theta], dtype=torch.float64))
    opt = cls([p], foreach=False, **kwargs)
    if state:
        slot = opt.state[p]
        for name, value in state.items():
            if name == "t":
                slot["step"] = torch.tensor(float(value), dtype=torch.float32)
            else:
                slot[keys[name]] = torch.tensor([value], dtype=torch.float64)
    p.grad = torch.tensor([grad], dtype=torch.float64)
    opt.step()
    out = {}
    for name, key in keys.items():
        if key in opt.state[p]:
            value = opt.state[p][key]
            out[name] = float(value.reshape(-1)[0])
    return float(p.detach()[0]), out


def symbolic_step(spec, theta: float, grad: float, state: dict | None, rule=None):
    """The same step computed from derive's symbolic rule at 40 significant digits."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    rule = rule or build_rule(spec)
    # 40-digit floats, not the spec's exact rationals: sqrt(1 - beta2**t) of a 16-digit rational
    # sends SymPy into integer factorisation
    h = {k: sp.Float(v, 40) for k, v in spec.hyper(numeric=True).items()}
    if state:
        start = {n: (sp.Integer(int(v)) if n == "t" else sp.Float(v, 40)) for n, v in state.items()}
    else:
        start = rule.initial_state("start")
    new_state, new_theta = rule.step(start, sp.Float(theta, 40), sp.Float(grad, 40), h)
    return to_float(new_theta), {n: to_float(v) for n, v in new_state.items() if v is not None}


def to_float(value) -> float:
    """SymPy's unsigned infinity (m/0 with eps = 0) becomes inf; torch's is signed."""
    if value.has(sp.zoo, sp.oo, -sp.oo):
        return math.inf
    return float(value)


def close(a: float, b: float, scale: float) -> bool:
    """Agreement to 1e-12 relative to the magnitudes involved in the step (float64); NaN and inf
    must appear on both sides alike (0/0 with eps = 0 is NaN in torch and in the model)."""
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return (math.isnan(a) and math.isnan(b)) or (math.isinf(a) and math.isinf(b))
    return abs(a - b) <= 1e-12 * max(abs(a), abs(b), scale, 1e-300)
