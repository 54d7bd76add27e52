"""Shared by the catalogue-entry tests (tests/test_catalogue_<name>.py): each test file supplies
what is specific to its optimizer (its specs, an independent exact recurrence, planted bugs,
torch's figures); the checks here compare those with derive's rule, the generated optimizers,
torch.optim and the command line. Nothing here knows an optimizer.

References, all independent of derive: torch.optim's class (its loop, foreach and fused),
torch.optim with weight_decay=0 plus the decoupled shrink written here (for the conventions
torch lacks: the direction never depends on theta, so that is the convention's definition),
torch's own ValueError texts, and the test file's hand-written recurrence in exact arithmetic.
"""
from __future__ import annotations

import copy
import inspect
import json
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction

import numpy
import pytest
import sympy as sp
import torch

from dropin import default_dtype  # noqa: F401  (re-exported: the entry tests switch it)
from optequiv.derive import stages as S
from optequiv.derive import symbols as Y
from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.derive.unroll import unroll
from optequiv.numeric import c_build, numpy_step, torch_optimizer
from optequiv.numeric.against_torch import crosscheck
from optequiv.numeric.harness import Scenario, side_by_side
from optequiv.numeric.reference import torch_reference

F64 = torch.float64
HAS_CC = c_build.find_compiler() is not None
NEEDS_CC = pytest.mark.skipif(not HAS_CC, reason="no C compiler on this machine")


# -- the command line -----------------------------------------------------------------------------

def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def listed(name: str, torch_class: str) -> dict:
    """`list --json`'s block for the entry, which is modelled after `torch_class`."""
    rc, out, err = cli("list", "--json")
    assert rc == 0, err
    info = json.loads(out)[name]
    assert info["modelled"] and info["torch_class"] == torch_class, info
    return info


def compare_json(a: str, b: str) -> dict:
    rc, out, err = cli("compare", a, b, "--json")
    assert rc in (0, 1), err
    data = json.loads(out)
    assert rc == (0 if data["verdict"] == "proven" else 1), (rc, data["verdict"])
    return data


def assert_proven_under(a: str, b: str, mapping: dict) -> None:
    """`compare a b` proves them equal under `mapping`, by induction."""
    data = compare_json(a, b)
    assert data["verdict"] == "proven" and data["mapping"] == mapping, data
    assert data["certificate"]["kind"] == "induction"


def assert_refuted_at(a: str, b: str, step: int) -> dict:
    """`compare a b` refutes them, first at `step`, with a refutation certificate."""
    data = compare_json(a, b)
    assert data["verdict"] == "refuted" and data["first_divergent_step"] == step, data
    assert data["certificate"]["kind"] == "refutation"
    return data


# -- symbolic: derive's rule at exact numbers -----------------------------------------------------

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
    their size (sympy.simplify decides it too, in minutes on nested roots such as a centered
    RMSprop's third step; two different numbers of this size are nowhere near 1e-45 apart)."""
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


def assert_matches_recurrence(text: str, hand, theta0="3/2", grads=("1/2", "-2", "3/4")):
    """`hand(h, theta0, grads)`: the entry's independent recurrence, returning per step
    (theta, {state name: value}) for the state names it models."""
    h = parse_spec(text).hyper(numeric=True)
    ours = exact_steps(text, theta0, grads)
    theirs = hand(h, rational(theta0), [rational(g) for g in grads])
    assert len(ours) == len(theirs)
    for k, ((theta, state), (t_theta, t_state)) in enumerate(zip(ours, theirs), start=1):
        assert same_number(theta, t_theta), f"{text} step {k}: theta {theta} != {t_theta}"
        for name, value in t_state.items():
            assert same_number(state[name], value), \
                f"{text} step {k}: {name} {state[name]} != {value}"


# -- planted rules: the entry's rule with a stage changed -----------------------------------------

def planted(**fns):
    """rule_for: the entry's rule with each named stage's function replaced."""
    def rule_for(spec):
        rule = build_rule(spec)
        assert set(fns) <= {s.name for s in rule.stages}, "a plant names no stage of the rule"
        return replace(rule, stages=tuple(replace(s, fn=fns[s.name]) if s.name in fns else s
                                          for s in rule.stages))
    return rule_for


def decay_moved_after(stage: str):
    """rule_for: torch's L2 moved behind `stage` as a decoupled shrink (optax's form)."""
    def rule_for(spec):
        rule = build_rule(spec)
        stages = [s for s in rule.stages if s.name != "decay"]
        at = [s.name for s in stages].index(stage) + 1
        return replace(rule, stages=tuple(stages[:at] + [S.DECAY_DECOUPLED] + stages[at:]))
    return rule_for


# -- numeric, through the harness (numeric.against_torch, numeric.harness) ------------------------

def assert_crosscheck(text: str, dtype=F64, steps: int = 20, fused: bool = False,
                      implementations=("loop", "foreach"), rule_for=None,
                      scenario: Scenario | None = None, device: str = "cpu") -> dict:
    """The harness run (two groups, an lr schedule, switches off and on, a late parameter, a
    missing gradient, a checkpoint restart, unless `scenario` says otherwise), params and every
    state entry compared after every step, same keys; returns {implementation: comparison}.
    20 steps by default: in fewer, the late parameter joins while group 2's momentum is
    switched off, and torch's own RMSprop then raises KeyError 'momentum_buffer' when it is
    switched on again."""
    extra = {} if scenario is None else {"scenario": scenario}
    if rule_for is not None:
        extra["rule_for"] = rule_for
    report = crosscheck(text, steps=steps, dtype=dtype, fused=fused, device=device,
                        implementations=implementations, **extra)
    assert report.passed, json.dumps(report.to_json()["first_mismatch"])
    assert {c.reference for c in report.comparisons} == set(implementations)
    assert all(c.steps == steps for c in report.comparisons)
    return {c.reference: c for c in report.comparisons}


def max_ulp(comparisons: dict) -> dict:
    return {k: c.max_ulp for k, c in comparisons.items()}


def assert_planted_is_caught(text: str, plant, dtype=F64, steps: int = 20, fused: bool = False,
                             scenario: Scenario | None = None, margin: float | None = 30) -> int:
    """A planted wrong rule (rule_for) fails the same cross-check that the true rule passes,
    by more than `margin` times the tolerance (not a marginal call) unless margin is None;
    returns the first failing step."""
    extra = {} if scenario is None else {"scenario": scenario}
    assert_crosscheck(text, dtype=dtype, steps=steps, fused=fused, implementations=("loop",),
                      **extra)
    report = crosscheck(text, steps=steps, dtype=dtype, fused=fused, rule_for=plant,
                        implementations=("loop",), **extra)
    assert not report.agree, f"planted bug in {text} slipped through"
    cmp = report.comparisons[0]
    if margin is not None:
        assert cmp.max_rel_error > margin * cmp.rtol, (cmp.max_rel_error, cmp.rtol)
    return cmp.first_mismatch.step


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
    cls, kwargs = torch_reference(text)
    [cmp] = side_by_side({"loop": lambda ps: cls(ps, foreach=False, **kwargs),
                          "kernel": kernel_forced(text)}, [("kernel", "loop")], steps=steps,
                         dtype=dtype, scenario=Scenario(resume_at=None))
    assert cmp.passed, str(cmp.first_mismatch)
    return cmp.max_rel_error / torch.finfo(dtype).eps


# -- numeric, one parameter stepped side by side with torch.optim ---------------------------------

N = 40


def gradients(steps: int, dtype, seed: int = 1) -> list:
    """Gradients with sign changes, exact zeros and a wide range of magnitudes."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(steps):
        x = torch.randn(N, generator=g, dtype=F64) * 10.0 ** (k % 3 - 1)
        x[: 4 + k % 5] = 0.0 if k % 3 == 2 else x[: 4 + k % 5]
        x[N // 2:] = x[N // 2:].abs() * (1 if k % 2 else -1)  # a run of sign flips
        out.append(x.to(dtype))
    return out


def start(dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, generator=g, dtype=F64).to(dtype)


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
    return getattr(torch.optim, parse_spec(name).entry.class_name)


def ours(name: str, rule_for=build_rule):
    return torch_optimizer(name, rule_for=rule_for)


def spec_text(name: str, kw: dict) -> str:
    """The spec language's text for torch keyword arguments."""
    def show(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, tuple):
            return "(" + ", ".join(map(repr, v)) + ")"
        return repr(v)
    return f"{name}({', '.join(f'{k}={show(v)}' for k, v in kw.items())})"


def numpy_trajectory(text: str, steps: int = 10, rule_for=build_rule) -> list:
    """numeric.numpy_step over the same gradients, state keyed as torch keys it."""
    entry = parse_spec(text).entry
    step = numpy_step(text, rule_for=rule_for)
    theta = start(F64).numpy()
    state, out = None, []
    for grad in gradients(steps, F64):
        state, theta = step(state, theta, grad.numpy())
        out.append((torch.from_numpy(numpy.array(theta)),
                    {entry.state(n).key: torch.as_tensor(numpy.array(v, dtype=numpy.float64))
                     for n, v in state.items() if v is not None}))
    return out


def distance(a: list, b: list) -> float:
    """The largest elementwise relative difference of params and state entries over all steps
    (inf when the state keys or the nan positions differ)."""
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


def torch_loop(text: str, steps: int = 10, dtype=F64) -> list:
    """torch.optim's loop for `text` (its class, foreach off), stepped as above."""
    cls, kwargs = torch_reference(text)
    return trajectory(cls, {**kwargs, "foreach": False}, dtype, steps)


def numpy_against_torch(text: str, steps: int = 10, rule_for=build_rule) -> float:
    """numeric.numpy_step(text) and torch.optim's loop (float64) fed the same gradients: the
    largest relative difference of theta and of every state entry (under torch's keys)."""
    return distance(numpy_trajectory(text, steps, rule_for), torch_loop(text, steps))


def assert_float64_matches_torch(name: str, kw: dict, torch_foreach: float = 1e-12,
                                 with_numpy: bool = True) -> None:
    """The generated optimizer (loop, foreach, and the C kernel where there is a compiler) and
    numeric.numpy_step match torch's loop to 1e-12 relative, params and state after every
    step; torch's own foreach is within `torch_foreach` of its loop."""
    Ref, Ours = torch_class(name), ours(name)
    want = trajectory(Ref, {**kw, "foreach": False}, F64)
    assert distance(trajectory(Ref, {**kw, "foreach": True}, F64), want) <= torch_foreach
    assert distance(trajectory(Ours, kw, F64), want) <= 1e-12
    assert distance(trajectory(Ours, {**kw, "foreach": True}, F64), want) <= 1e-12
    if HAS_CC:
        assert distance(trajectory(Ours, {**kw, "fused": True}, F64), want) <= 1e-12
    if with_numpy:
        assert distance(numpy_trajectory(spec_text(name, kw)), want) <= 1e-12


def float32_runs(name: str, kw: dict) -> tuple:
    """(torch's loop, {"eager": the generated optimizer, "fused": its C kernel where there is
    a compiler}) in float32, as trajectories."""
    Ours = ours(name)
    runs = {"eager": trajectory(Ours, kw, torch.float32)}
    if HAS_CC:
        runs["fused"] = trajectory(Ours, {**kw, "fused": True}, torch.float32)
    return trajectory(torch_class(name), kw, torch.float32), runs


def planted_distances(name: str, kw: dict, rule_for, with_numpy: bool = True) -> list:
    """How far a planted rule's generated optimizer (and numpy step) end from torch's loop."""
    want = trajectory(torch_class(name), kw, F64)
    out = [distance(trajectory(ours(name, rule_for), kw, F64), want)]
    if with_numpy:
        out.append(distance(numpy_trajectory(spec_text(name, kw), rule_for=rule_for), want))
    return out


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


def normwise_ulp(a: list, b: list) -> float:
    """The largest |a - b| over all steps in float32 ulps of the parameter's largest magnitude:
    cancellation (an element near 0 that is the difference of two large terms) counts as what
    it is, a rounding of the large terms, not as many ulps of a tiny result."""
    eps = torch.finfo(torch.float32).eps
    return max(((pa.double() - pb.double()).abs().max() / (eps * pb.double().abs().max())).item()
               for (pa, _), (pb, _) in zip(a, b, strict=True))


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
    want = trajectory(lambda ps: Decoupled(ps, cls, kwargs, decay), {}, F64, steps)
    assert distance(trajectory(generated, {}, F64, steps), want) <= 1e-12


def load_torchs_checkpoint(theirs, ours, a: list, b: list, reload_torch: bool = False) -> None:
    """The generated optimizer restarted from torch's checkpoint (its params copied, its
    state_dict loaded) and, where `reload_torch`, torch restarted from its own. The copies:
    torch's state_dict aliases its live state."""
    with torch.no_grad():
        for p, q in zip(a, b):
            q.copy_(p)
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))
    if reload_torch:
        theirs.load_state_dict(copy.deepcopy(theirs.state_dict()))


# -- the generated class's surface: signature, messages -------------------------------------------

def assert_signature_is_torchs(name: str, fused_added: bool) -> None:
    """The generated class's signature is torch's class's (names, kinds, defaults), then the
    compiled kernel's keyword-only `fused` where torch's class lacks it (`fused_added`), after
    optequiv's own keys (Hyper.torch False: another framework's convention) at torch's value."""
    def params(cls):
        return [(p.name, p.kind, p.default) for p in inspect.signature(cls).parameters.values()]
    generated = torch_optimizer(name)
    own = [(k, inspect.Parameter.KEYWORD_ONLY, inspect.signature(generated).parameters[k].default)
           for k in ENTRIES[name].own_for(parse_spec(name))]
    tail = own + ([("fused", inspect.Parameter.KEYWORD_ONLY, None)] if fused_added else [])
    assert params(generated) == params(torch_class(name)) + tail


def assert_sparse_refused_as_torch(name: str, message: str) -> None:
    """A sparse gradient: torch's RuntimeError `message`, from both classes."""
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.zeros(3).to_sparse()
    for cls in (torch_optimizer(name), torch_class(name)):
        with pytest.raises(RuntimeError, match=f"^{message}$"):
            cls([p]).step()


def torch_message(cls, **kwargs) -> str:
    p = torch.nn.Parameter(torch.zeros(2))
    try:
        cls([p], **kwargs)
    except ValueError as error:
        return str(error)
    raise AssertionError(f"torch.optim.{cls.__name__} accepted {kwargs}")


def assert_refused_as_torch(name: str, kwargs: dict, on_cli: bool = False) -> None:
    """A bad value gets torch's message through the generated constructor and, where the spec
    language can write it (it has no nan literal), through the spec language too; `on_cli`:
    also on the command line (exit 2, that message on one line of stderr, nothing on stdout)."""
    expected = torch_message(torch_class(name), **kwargs)
    try:
        torch_optimizer(name)([torch.nn.Parameter(torch.zeros(2))], **kwargs)
    except ValueError as error:
        assert str(error) == expected, f"{kwargs}: {error} != {expected}"
    else:
        raise AssertionError(f"the generated {name} accepted {kwargs}")
    if "nan" in str(kwargs):
        return
    text = spec_text(name, kwargs)
    with pytest.raises(UserError) as spec_error:
        parse_spec(text)
    assert str(spec_error.value) == expected
    if on_cli:
        rc, out, err = cli("compare", text, name)
        assert (rc, out, err) == (2, "", f"optequiv: {expected}\n"), (rc, out, err)


def assert_bad_values_refused_as_torch(name: str, bad: dict) -> None:
    """Each bad value, and all of them at once (torch's order of checks), refused as torch
    refuses them, on the command line too."""
    for kwargs in [{k: v} for k, v in bad.items()] + [dict(reversed(list(bad.items())))]:
        assert_refused_as_torch(name, kwargs, on_cli=True)
