"""Shared by the per-family catalogue tests (test_catalogue_<family>.py): the command line, the
symbolic rule evaluated at exact rationals, the numpy step against torch.optim's loop, and
torch's own ValueError for a bad value."""
from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy
import pytest
import sympy as sp
import torch

from optequiv import numeric
from optequiv.derive import symbols as Y
from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.derive.unroll import unroll
from optequiv.numeric.reference import torch_reference


def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def rational(x) -> sp.Rational:
    x = Fraction(x)
    return sp.Rational(x.numerator, x.denominator)


def unrolled(text: str, steps: int, values: dict, start: str = "start",
             initial: dict | None = None) -> list:
    """[(theta_k, {state name: value}) for k = 1..steps] of derive's rule for `text` (a spec
    whose hyperparameters are symbols), open loop, every symbol replaced by an exact rational:
    `values` names the spec's symbols, theta0 and the gradients g (a list); `initial` the
    mid-run state (start="state")."""
    spec = parse_spec(text)
    run = unroll(spec, steps, start=start)
    at = {s: rational(values[s.name]) for s in spec.symbols()}
    at[Y.theta(0)] = rational(values["theta0"])
    at.update({Y.grad(k + 1): rational(g) for k, g in enumerate(values["g"][:steps])})
    at.update({Y.state(n, 0): rational(v) for n, v in (initial or {}).items()})
    out = []
    for step in run.steps:
        theta = step.theta.xreplace(at)
        state = {n: v.xreplace(at) for n, v in step.state.items() if v is not None}
        out.append((theta, state))
    return out


def assert_exact(expr, expected, what: str) -> None:
    """An expression of exact rationals equals a Fraction exactly."""
    assert expr.is_Rational, f"{what}: {expr} is not an exact rational"
    assert Fraction(int(expr.p), int(expr.q)) == expected, f"{what}: {expr} != {expected}"


def same_number(a, b) -> bool:
    """Two exact numbers (rationals under square roots and rational powers, from derive's rule
    and from a hand recurrence) are the same: structurally, or at 60 digits within 1e-45 of
    their size (sympy.simplify decides it too, in minutes on nested roots; two different
    numbers of this size are nowhere near 1e-45 apart)."""
    a, b = sp.sympify(a), sp.sympify(b)
    if a == b:
        return True
    # each side alone: evalf of a - b, which is 0, raises its precision hunting for digits
    x, y = sp.N(a, 60), sp.N(b, 60)
    return abs(x - y) <= sp.Float("1e-45", 60) * max(abs(x), abs(y), 1)


def exact_steps(text: str, theta0, grads, initial: dict | None = None, rule_for=build_rule):
    """[(theta_k, state_k)] of derive's rule stepped at exact numbers: the spec's values (exact
    rationals), theta0, the gradients, and torch's fresh state or `initial` (a mid-run one)."""
    spec = parse_spec(text)
    rule = rule_for(spec)
    h = spec.hyper(numeric=True)
    state = rule.initial_state("start") if initial is None else \
        {n: rational(v) for n, v in initial.items()}
    theta, out = rational(theta0), []
    for g in grads:
        state, theta = rule.step(state, theta, rational(g), h)
        out.append((theta, dict(state)))
    return out


def torch_messages(cls, generated, kwargs: dict) -> tuple:
    """(torch's ValueError text, the generated optimizer's) for the same constructor call."""
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError) as theirs:
        cls([p], **kwargs)
    with pytest.raises(ValueError) as ours:
        generated([p], **kwargs)
    return str(theirs.value), str(ours.value)


def numpy_against_torch(text: str, steps: int = 10, shape=(7,), seed: int = 0,
                        rule_for=None) -> float:
    """numeric.numpy_step(text) and torch.optim's loop (float64) fed the same gradients for
    `steps` steps: the largest relative difference of theta and of every state entry (the
    state under torch's keys, compared entry by entry; a key one side lacks fails)."""
    cls, kwargs = torch_reference(text)
    entry = ENTRIES[parse_spec(text).name]
    keys = {s.name: s.key for s in entry.states}
    g = torch.Generator().manual_seed(seed)
    theta0 = torch.randn(shape, generator=g, dtype=torch.float64)
    p = torch.nn.Parameter(theta0.clone())
    opt = cls([p], foreach=False, **kwargs)
    step = numeric.numpy_step(text) if rule_for is None else numeric.numpy_step(text,
                                                                                 rule_for=rule_for)
    theta, state = theta0.numpy().copy(), None
    worst = 0.0
    for _ in range(steps):
        grad = torch.randn(shape, generator=g, dtype=torch.float64)
        p.grad = grad.clone()
        opt.step()
        state, theta = step(state, theta, grad.numpy())
        ours = {keys[n]: v for n, v in state.items() if v is not None}
        assert set(ours) == set(opt.state[p]), (sorted(ours), sorted(opt.state[p]))
        pairs = [(theta, p.detach().numpy())] + [
            (numpy.asarray(ours[k], dtype=numpy.float64),
             opt.state[p][k].detach().double().numpy()) for k in ours]
        for a, b in pairs:
            scale = max(float(numpy.max(numpy.abs(b))), 1e-300)
            worst = max(worst, float(numpy.max(numpy.abs(a - b))) / scale)
    return worst


def assert_bad_values_as_torch(name: str, kwargs: dict) -> None:
    """A bad value gets torch's message through the generated constructor and, where the spec
    language can write it (it has no nan literal), through the spec language too."""
    from optequiv.derive.errors import UserError

    cls = getattr(torch.optim, ENTRIES[name].class_name)
    theirs, ours = torch_messages(cls, numeric.torch_optimizer(name), kwargs)
    assert ours == theirs
    if "nan" not in str(kwargs):
        def fmt(v):
            return f"({v[0]!r}, {v[1]!r})" if isinstance(v, tuple) else repr(v)
        text = f"{name}(" + ", ".join(f"{k}={fmt(v)}" for k, v in kwargs.items()) + ")"
        with pytest.raises(UserError) as spec_error:
            parse_spec(text)
        assert str(spec_error.value) == theirs
