"""Checks every catalogue family's tests run (tests/test_catalogue_<family>.py): each family
supplies its specs, an independent hand-written exact recurrence and its planted bugs; the
checks here compare them with derive's rule, the generated optimizers and torch.optim.

References, all independent of derive: torch.optim's class (its loop and foreach), torch.optim
with weight_decay=0 plus the decoupled shrink written here (for the conventions torch lacks:
the direction never depends on theta, so that is the convention's definition), and the family's
hand-written recurrence in exact arithmetic.
"""
from __future__ import annotations

import json
import subprocess
import sys

import sympy as sp
import torch

from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.numeric import numpy_step, torch_optimizer
from optequiv.numeric.against_torch import crosscheck
from optequiv.numeric.metrics import difference
from optequiv.numeric.reference import torch_reference

F64 = torch.float64


def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


# -- symbolic: derive's rule against the family's hand-written exact recurrence ------------------

def exact_steps(text: str, theta0, grads) -> list:
    """(theta_k, {state name: value}) after each step of derive's rule from torch's fresh
    state, every value an exact SymPy number (the spec's numbers are exact rationals)."""
    spec = parse_spec(text)
    rule = build_rule(spec)
    h = spec.hyper(numeric=True)
    state, theta, out = rule.initial_state("start"), sp.nsimplify(theta0), []
    for g in grads:
        state, theta = rule.step(state, theta, sp.nsimplify(g), h)
        out.append((theta, dict(state)))
    return out


def same_number(a, b) -> bool:
    """Two exact numbers (rationals under nested square roots, built by derive's rule and by
    the hand recurrence) are the same: structurally, or their difference evaluated to 60
    digits is below 1e-45 of their size. (sympy.simplify decides these exactly too, but takes
    minutes on a centered RMSprop's third step; two different such numbers of this size are
    nowhere near 1e-45 apart.)"""
    a, b = sp.sympify(a), sp.sympify(b)
    if a == b:
        return True
    scale = max(abs(sp.N(a, 60)), abs(sp.N(b, 60)), 1)
    return abs(sp.N(a - b, 60)) <= sp.Float("1e-45", 60) * scale


def assert_matches_recurrence(text: str, hand, theta0="3/2", grads=("1/2", "-2", "3/4")):
    """`hand(h, theta0, grads)`: the family's independent recurrence, returning per step
    (theta, {state name: value}) for the state names it models."""
    spec = parse_spec(text)
    h = spec.hyper(numeric=True)
    ours = exact_steps(text, theta0, grads)
    theirs = hand(h, sp.nsimplify(theta0), [sp.nsimplify(g) for g in grads])
    assert len(ours) == len(theirs)
    for k, ((theta, state), (t_theta, t_state)) in enumerate(zip(ours, theirs), start=1):
        assert same_number(theta, t_theta), f"{text} step {k}: theta {theta} != {t_theta}"
        for name, value in t_state.items():
            assert same_number(state[name], value), \
                f"{text} step {k}: {name} {state[name]} != {value}"


# -- numeric: the generated optimizer against torch.optim ----------------------------------------

def assert_crosscheck(text: str, dtype=F64, steps: int = 20, fused: bool = False,
                      implementations=("loop", "foreach")) -> dict:
    """The harness run (two groups, an lr schedule, switches off and on, a late parameter, a
    missing gradient, a checkpoint restart), params and every state entry compared after every
    step, same keys; returns {implementation: max ulp}. 20 steps: in fewer, the late parameter
    joins while group 2's momentum is switched off, and torch's own RMSprop then raises
    KeyError 'momentum_buffer' when it is switched on again."""
    report = crosscheck(text, steps=steps, dtype=dtype, fused=fused,
                        implementations=implementations)
    assert report.passed, json.dumps(report.to_json()["first_mismatch"])
    assert {c.reference for c in report.comparisons} == set(implementations)
    assert all(c.steps == steps for c in report.comparisons)
    return {c.reference: c.max_ulp for c in report.comparisons}


def kernel_forced(text: str):
    """The generated class with every group's `fused` set after construction: the compiled C
    kernel of the same program (what `optequiv bench` times), for a class whose torch
    signature has no `fused` keyword."""
    base = torch_optimizer(text)

    class Forced(base):
        def __init__(self, params, *args, **kwargs):
            super().__init__(params, *args, **kwargs)
            for group in self.param_groups:
                group["fused"] = True

    return Forced


def assert_kernel_matches_torch(text: str, dtype=F64, steps: int = 20) -> float:
    """The C kernel (forced as above) against torch's loop, one group, no restart; the
    largest normwise relative error, in eps of the dtype (elementwise ulp counts are
    meaningless here: an entry that passes near 0 by cancellation differs by millions)."""
    from optequiv.numeric.harness import Scenario, side_by_side

    cls, kwargs = torch_reference(text)
    forced = kernel_forced(text)
    [cmp] = side_by_side({"loop": lambda ps: cls(ps, foreach=False, **kwargs),
                          "kernel": forced}, [("kernel", "loop")], steps=steps, dtype=dtype,
                         scenario=Scenario(resume_at=None))
    assert cmp.passed, str(cmp.first_mismatch)
    return cmp.max_rel_error / torch.finfo(dtype).eps


def _problem(n=5, steps=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, generator=g, dtype=F64)
    grads = [torch.randn(n, generator=g, dtype=F64) for _ in range(steps)]
    return theta, grads


def _close(a, b, what):
    d = difference(torch.as_tensor(a, dtype=F64).reshape(-1), torch.as_tensor(b, dtype=F64)
                   .reshape(-1))
    assert not d.nonfinite_differ and d.abs_error <= 1e-12 * max(d.scale, 1.0), \
        f"{what}: |error| {d.abs_error:.3g} (scale {d.scale:.3g})"


def assert_numpy_matches_torch(text: str, steps: int = 10) -> None:
    """numeric.numpy_step against torch.optim's loop in float64: theta and every state entry
    (under torch's key) after every step."""
    cls, kwargs = torch_reference(text)
    keys = {s.name: s.key for s in parse_spec(text).entry.states}
    theta, grads = _problem(steps=steps)
    p = torch.nn.Parameter(theta.clone())
    opt = cls([p], foreach=False, **kwargs)
    step = numpy_step(text)
    state, x = step.init(theta.numpy()), theta.numpy()
    for k, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        state, x = step(state, x, g.numpy())
        _close(x, p.detach(), f"{text} step {k}: theta")
        ours = {keys[n] for n, v in state.items() if v is not None}
        assert ours == set(opt.state[p]), f"{text}: state keys {ours} != {set(opt.state[p])}"
        for name, value in state.items():
            if value is not None:
                _close(value, opt.state[p][keys[name]], f"{text} step {k}: {keys[name]}")


class Decoupled(torch.optim.Optimizer):
    """A decoupled convention torch has no class for, built on torch.optim: the class with
    weight_decay=0 gives the direction, then the shrink of the convention (REFERENCE.md):
    decoupled theta - lr*wd*theta_{t-1}; independent theta - wd*theta_{t-1}; after
    theta' - lr*wd*theta' on the updated theta'. lr is the group's lr."""

    def __init__(self, params, cls, kwargs, decay):
        self.inner = cls(params, foreach=False, **{**kwargs, "weight_decay": 0.0})
        self.wd, self.decay = kwargs["weight_decay"], decay
        self.param_groups, self.state = self.inner.param_groups, self.inner.state

    def step(self, closure=None):
        before = [(g["lr"], p, p.detach().clone()) for g in self.param_groups
                  for p in g["params"] if p.grad is not None]
        self.inner.step()
        with torch.no_grad():
            for lr, p, old in before:
                if self.decay == "decoupled":
                    p.sub_(lr * self.wd * old)
                elif self.decay == "independent":
                    p.sub_(self.wd * old)
                else:  # after
                    p.mul_(1 - lr * self.wd)


def assert_decay_matches_reference(text: str, decay: str, steps: int = 10) -> None:
    """The generated optimizer for `text` with decay=<decay> against Decoupled over torch."""
    cls, kwargs = torch_reference(text)  # text: torch's own convention (l2)
    generated = torch_optimizer(f"{text[:-1]}, decay={decay})")
    theta, grads = _problem(steps=steps, seed=1)
    p, q = torch.nn.Parameter(theta.clone()), torch.nn.Parameter(theta.clone())
    ref, ours = Decoupled([p], cls, kwargs, decay), generated([q])
    for k, g in enumerate(grads, start=1):
        p.grad, q.grad = g.clone(), g.clone()
        ref.step()
        ours.step()
        _close(q.detach(), p.detach(), f"{text} decay={decay} step {k}: theta")
        assert set(ours.state[q]) == set(ref.state[p])
        for key, value in ref.state[p].items():
            _close(ours.state[q][key], value, f"{text} decay={decay} step {k}: {key}")


def assert_planted_is_caught(text: str, plant, dtype=F64, steps: int = 20) -> int:
    """A planted wrong rule (rule_for) fails the same cross-check that the true rule passes;
    returns the first failing step."""
    assert_crosscheck(text, dtype=dtype, steps=steps, implementations=("loop",))
    report = crosscheck(text, steps=steps, dtype=dtype, rule_for=plant,
                        implementations=("loop",))
    assert not report.agree, f"planted bug in {text} slipped through"
    cmp = report.comparisons[0]
    assert cmp.max_rel_error > 30 * cmp.rtol  # far outside, not a marginal call
    return cmp.first_mismatch.step


# -- bad input ------------------------------------------------------------------------------------

def torch_message(cls, **kwargs) -> str:
    p = torch.nn.Parameter(torch.zeros(2))
    try:
        cls([p], **kwargs)
    except ValueError as error:
        return str(error)
    raise AssertionError(f"torch.optim.{cls.__name__} accepted {kwargs}")


def assert_bad_values_refused_as_torch(name: str, bad: dict) -> None:
    """Each bad value (and all of them at once: torch's order of checks) is refused by the
    generated optimizer's constructor with torch's message, and by the spec language (CLI exit
    2, that message on one line of stderr, nothing on stdout)."""
    cls = getattr(torch.optim, parse_spec(name).entry.class_name)
    generated = torch_optimizer(name)
    cases = [{k: v} for k, v in bad.items()] + [dict(reversed(list(bad.items())))]
    for kwargs in cases:
        expected = torch_message(cls, **kwargs)
        try:
            generated([torch.nn.Parameter(torch.zeros(2))], **kwargs)
        except ValueError as error:
            assert str(error) == expected, f"{kwargs}: {error} != {expected}"
        else:
            raise AssertionError(f"the generated {name} accepted {kwargs}")
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        rc, out, err = cli("compare", f"{name}({args})", name)
        assert (rc, out, err) == (2, "", f"optequiv: {expected}\n"), (rc, out, err)


def listed(name: str) -> dict:
    rc, out, err = cli("list", "--json")
    assert rc == 0, err
    return json.loads(out)[name]


def compare_json(a: str, b: str) -> dict:
    rc, out, err = cli("compare", a, b, "--json")
    assert rc in (0, 1), err
    return json.loads(out)
