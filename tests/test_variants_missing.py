"""step_counter and missing_grad: what the generated optimizer does for a parameter without a
gradient at a step.

torch skips it (its state and its step count stay; a late parameter starts at step 1); Keras
counts optimizer.iterations (a count that advances anyway: per_group, global); optax steps it on
a zero gradient (zeros). The reference is a hand-written simulator of those semantics around
Adam's documented step (torch 2.13 adam.py's single-tensor loop: m, v as EMAs, step size
lr/(1 - beta1^t), denominator sqrt(v)/sqrt(1 - beta2^t) + eps; AdamW's theta*(1 - lr*wd)
first), sharing nothing with derive/ or numeric/. The generated optimizer (loop, foreach, fused)
runs a scenario with a parameter that has no gradient at some steps, one that joins late, a
param group added mid-run and a restart from state_dict. torch.optim.AdamW is the independent
reference at the default values. Negative controls plant a wrong counter and a wrong
missing-gradient rule and show the same comparison catches them.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optequiv.derive.compare import compare
from optequiv.derive.errors import UserError
from optequiv.numeric import torch_optimizer
from optequiv.numeric.c_build import find_compiler
from optequiv.numeric.reference import torch_reference
from optequiv.numeric.testing import assert_matches_spec
from optequiv.numeric.variants import nearest_variants, same_optimizer_at

LR, BETAS, EPS, WD = 0.05, (0.9, 0.999), 1e-8, 0.1
STEPS = 8
NAMES = ("a", "b", "c", "d")
# which parameter has a gradient at which step (1-based): b misses some, c joins late, d is in
# a group added after step 3
HAS_GRAD = {"a": lambda k: True, "b": lambda k: k not in (2, 3, 6), "c": lambda k: k >= 5,
            "d": lambda k: k >= 4}
ADDED_AT = 4  # d's group is added before this step
IMPLEMENTATIONS = ["loop", "foreach"] + (["fused"] if find_compiler() is not None else [])
COUNTERS = ("per_parameter", "per_group", "global")
MISSING = ("skip", "zeros")


def grads_at(k: int) -> dict:
    g = torch.Generator().manual_seed(100 + k)
    return {n: (torch.randn(5, generator=g, dtype=torch.float64) if HAS_GRAD[n](k) else None)
            for n in NAMES}


def init() -> dict:
    g = torch.Generator().manual_seed(1)
    return {n: torch.randn(5, generator=g, dtype=torch.float64) for n in NAMES}


def simulate(counter: str, missing: str) -> list:
    """The semantics, by hand: per step, each group's count advances (per_group, global: the
    optimizer's count, which a group added later starts from); each parameter with a gradient,
    or every parameter under zeros, takes one AdamW step with t its own count + 1 (torch) or the
    group's count. Returns the parameters after each step."""
    theta = {n: v.numpy().copy() for n, v in init().items()}
    state, out = {}, []
    groups = [["a", "b", "c"]]
    group_count = [0]
    for k in range(1, STEPS + 1):
        if k == ADDED_AT:
            groups.append(["d"])
            group_count.append(group_count[0] if counter == "global" else 0)
        grads = grads_at(k)
        for gi, names in enumerate(groups):
            group_count[gi] += 1
            for n in names:
                g = grads[n]
                if g is None and missing == "skip":
                    continue
                g = np.zeros(5) if g is None else g.numpy()
                s = state.setdefault(n, {"t": 0, "m": np.zeros(5), "v": np.zeros(5)})
                s["t"] = s["t"] + 1 if counter == "per_parameter" else group_count[gi]
                b1, b2 = BETAS
                theta[n] = theta[n] * (1 - LR * WD)
                s["m"] = b1 * s["m"] + (1 - b1) * g
                s["v"] = b2 * s["v"] + (1 - b2) * g * g
                bc1, bc2 = 1 - b1 ** s["t"], 1 - b2 ** s["t"]
                denom = np.sqrt(s["v"]) / math.sqrt(bc2) + EPS
                theta[n] = theta[n] - (LR / bc1) * s["m"] / denom
        out.append({n: v.copy() for n, v in theta.items()})
    return out


def spec_for(counter: str, missing: str) -> str:
    return f"adamw(lr={LR}, weight_decay={WD}, step_counter={counter}, missing_grad={missing})"


def run(factory, restart_at: int | None = None) -> list:
    """The scenario on an optimizer: factory(params) -> optimizer. restart_at: rebuild it from
    its state_dict before that step, as a resumed job does."""
    params = {n: torch.nn.Parameter(v.clone()) for n, v in init().items()}
    opt = factory([params[n] for n in ("a", "b", "c")])
    out = []
    for k in range(1, STEPS + 1):
        if k == ADDED_AT:
            opt.add_param_group({"params": [params["d"]]})
        if k == restart_at:
            saved = opt.state_dict()
            opt = factory([params[n] for n in ("a", "b", "c")])
            if k > ADDED_AT:
                opt.add_param_group({"params": [params["d"]]})
            opt.load_state_dict(saved)
        for n, g in grads_at(k).items():
            params[n].grad = None if g is None else g.clone()
        opt.step()
        out.append({n: p.detach().numpy().copy() for n, p in params.items()})
    return out


def generated(counter, missing, implementation, base=None):
    cls = base or torch_optimizer(spec_for(counter, missing))
    kwargs = {"loop": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[implementation]
    return lambda params: cls(params, **kwargs)


def first_difference(got: list, want: list):
    for k, (g, w) in enumerate(zip(got, want), 1):
        for n in NAMES:
            if not np.allclose(g[n], w[n], rtol=1e-12, atol=1e-14):
                return k, n
    return None


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("missing", MISSING)
@pytest.mark.parametrize("counter", COUNTERS)
def test_generated_optimizer_follows_the_semantics(counter, missing, implementation):
    want = simulate(counter, missing)
    assert first_difference(run(generated(counter, missing, implementation)), want) is None
    # a restart from state_dict carries the group's count (a param_groups key) and the state
    assert first_difference(run(generated(counter, missing, implementation), restart_at=6),
                            want) is None


def test_the_semantics_differ_where_a_gradient_is_missing():
    """The scenario tells every pair of values apart (else the test above shows little), and
    the first step at which they part is one where some parameter had no gradient."""
    runs = {(c, m): simulate(c, m) for c in COUNTERS for m in MISSING}
    torch_like = runs[("per_parameter", "skip")]
    for pair, trajectory in runs.items():
        if pair == ("per_parameter", "skip"):
            continue
        found = first_difference(trajectory, torch_like)
        assert found is not None, pair
        k, name = found
        assert any(not HAS_GRAD[name](j) for j in range(1, k + 1)), (pair, found)
    # under zeros every parameter steps at every step: per_parameter and per_group count alike;
    # global starts d's group, added after step 3, at 3
    assert first_difference(runs[("per_group", "zeros")], runs[("per_parameter", "zeros")]) \
        is None
    assert first_difference(runs[("global", "zeros")], runs[("per_parameter", "zeros")]) == \
        (ADDED_AT, "d")


def test_default_is_torchs_adamw():
    """per_parameter and skip are torch's: torch.optim.AdamW is the reference there."""
    want = run(lambda ps: torch.optim.AdamW(ps, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD))
    assert first_difference(simulate("per_parameter", "skip"), want) is None
    assert first_difference(run(generated("per_parameter", "skip", "loop")), want) is None


@pytest.mark.parametrize("key, value", [("step_counter", "per_group"), ("step_counter", "global"),
                                        ("missing_grad", "zeros")])
def test_torch_reference_refuses_them_with_one_line(key, value):
    with pytest.raises(UserError) as error:
        torch_reference(f"adam(lr=0.1, {key}={value})")
    text = str(error.value)
    assert "\n" not in text and f"{key}={value}" in text and "torch.optim.Adam" in text


def test_the_symbolic_rule_does_not_see_them():
    """compare proves them the same rule (it assumes a gradient at every step), and says so
    nowhere else than where a user looks: `optequiv list`'s note on the key."""
    assert compare("adam(lr=eta)", "adam(lr=eta, step_counter=global, missing_grad=zeros)") \
        .equivalent is True
    from optequiv.derive.cli import catalogue

    for name, info in catalogue().items():
        if info["modelled"]:
            for key in ("step_counter", "missing_grad"):
                assert "numeric only" in info["keys"][key]["note"], (name, key)


def test_nearest_variants_offer_them_only_where_they_change_something():
    assert not any("missing_grad" in str(v) or "step_counter" in str(v)
                   for v in nearest_variants("adam(lr=0.01)"))  # not asked for
    adam = [str(v) for v in nearest_variants("adam(lr=0.01)", missing_grads=True)]
    assert "adam(lr=0.01, step_counter=per_group)" in adam
    assert "adam(lr=0.01, missing_grad=zeros)" in adam
    # global is per_group in any run whose groups are there from the first step
    assert "adam(lr=0.01, step_counter=global)" not in adam
    # plain SGD has no count, and a zero gradient moves nothing: neither key changes it
    assert [str(v) for v in nearest_variants("sgd(lr=0.1)", missing_grads=True)
            if "missing" in str(v) or "counter" in str(v)] == []
    # with momentum a zero gradient still moves theta (the buffer decays)
    assert "sgd(lr=0.1, momentum=0.9, missing_grad=zeros)" in [
        str(v) for v in nearest_variants("sgd(lr=0.1, momentum=0.9)", missing_grads=True)]
    # the rules are the same, but that proves nothing about a step without a gradient
    assert not same_optimizer_at("adam(lr=0.01)", "adam(lr=0.01, step_counter=per_group)")


def test_assert_matches_spec_tells_the_counter_and_names_it():
    """The harness's scenario has steps without a gradient: torch's Adam matches the default,
    and fails a per-group counter; a Keras-style counter is named as what it matches."""
    adam = lambda ps: torch.optim.Adam(ps, lr=0.01)  # noqa: E731
    check = assert_matches_spec(adam, "adam(lr=0.01)")
    assert not check.unresolved
    with pytest.raises(AssertionError):
        assert_matches_spec(adam, "adam(lr=0.01, step_counter=per_group)")
    keras_like = torch_optimizer("adam(lr=0.01, step_counter=global)")
    with pytest.raises(AssertionError, match=r"it matches adam\(lr=0.01, step_counter=per_group\)"):
        assert_matches_spec(lambda ps: keras_like(ps), "adam(lr=0.01)")
    # with the parts of the scenario that leave gradients out switched off, it cannot tell
    assert_matches_spec(lambda ps: keras_like(ps), "adam(lr=0.01)", missing_grads=False,
                        late_param=False)


# -- negative controls: a planted wrong counter, a planted wrong missing-gradient rule ------------

def _planted(kind: str, counter: str, missing: str):
    base = torch_optimizer(spec_for(counter, missing))

    class Planted(base):
        if kind == "the count does not advance without a gradient":
            def _set_counts(self, group, params):
                return None
        elif kind == "a missing gradient skipped":
            _zeros = False
        elif kind == "a global count restarted for a new group":
            def add_param_group(self, param_group):
                super().add_param_group(param_group)
                self.param_groups[-1]["step_count"] = 0

    return Planted


@pytest.mark.parametrize("kind, counter, missing", [
    ("the count does not advance without a gradient", "per_group", "skip"),
    ("a missing gradient skipped", "per_parameter", "zeros"),
    ("a global count restarted for a new group", "global", "skip"),
])
def test_a_planted_wrong_machinery_is_caught(kind, counter, missing):
    planted = _planted(kind, counter, missing)
    found = first_difference(run(generated(counter, missing, "loop", base=planted)),
                             simulate(counter, missing))
    assert found is not None, f"planted '{kind}' slipped through"


def test_a_checkpoint_of_torchs_continues_from_the_count_its_state_reached():
    """torch's state_dict has no group count: a per_group optimizer loading one takes the
    largest step count among the group's parameters, then counts on from there."""
    params = [torch.nn.Parameter(torch.ones(3, dtype=torch.float64)) for _ in range(2)]
    torch_adam = torch.optim.Adam(params, lr=0.1)
    for k in range(3):
        params[0].grad = torch.ones(3, dtype=torch.float64)
        params[1].grad = torch.ones(3, dtype=torch.float64) if k == 0 else None
        torch_adam.step()
    ours = torch_optimizer("adam(lr=0.1, step_counter=per_group)")(params)
    ours.load_state_dict(torch_adam.state_dict())
    for p in params:
        p.grad = torch.ones(3, dtype=torch.float64)
    ours.step()
    assert ours.param_groups[0]["step_count"] == 4
    assert [float(ours.state[p]["step"]) for p in params] == [4.0, 4.0]
