"""fused=True (the step compiled from C) against torch.optim: numbers, negative controls, machinery.

The cross-check matrix runs every spec of test_numeric_crosscheck in float32 and float64 for 100
steps of the harness scenario (param groups, lr schedule, momentum and weight_decay switched off
and on, a parameter whose grad is None on some steps and one that joins late, a state_dict
restart) against torch's loop and fused implementations. Tolerance: numeric.metrics, in eps
units (float32 256 eps, float64 4096 eps; observed over 200 steps: at most 2.3 eps (float32)
and 4.0 eps (float64) from torch's loop, 7.8 and 6.6 eps from torch's fused kernels). The fused
kernel rounds apart from torch's loop by a few ulp per step, as torch's own fused kernels do, so
machinery tests here compare to a tolerance, not bit for bit (test_numeric_optimizer does that
for the default implementation). Each family has a negative control.
"""
from __future__ import annotations

import io

import pytest
import torch

from optequiv.numeric import torch_optimizer
from optequiv.numeric.against_torch import crosscheck
from optequiv.numeric.c_build import find_compiler
from optequiv.numeric.c_codegen import GRAIN
from optequiv.numeric.metrics import tolerance
from optequiv.numeric.reference import torch_reference
from twins import assert_matches, closure, feed, switch_features
from twins import twins as torch_and_generated
from test_numeric_crosscheck import MACHINERY, PLANTED, SPECS, assert_agrees, planted_machinery, \
    short

pytestmark = pytest.mark.skipif(find_compiler() is None, reason="no C compiler on this machine")
DTYPES = [torch.float32, torch.float64]




# -- the cross-check matrix ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("spec", SPECS, ids=short)
def test_fused_matches_torch(spec, dtype):
    report = crosscheck(spec, steps=100, dtype=dtype, fused=True,
                        implementations=("loop", "fused"))
    assert_agrees(report)
    assert report.fused and report.to_json()["generated"] == "fused"
    by_impl = {c.reference: c for c in report.comparisons}
    assert by_impl["loop"].steps == 100
    fused = by_impl["fused"]
    if fused.reference_error:  # torch 2.13's fused SGD cannot take a parameter that joins late
        assert spec.startswith("sgd") and fused.reference_error.startswith("step 5:")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_negative_control_planted_rule_is_caught_in_fused_mode(bug, dtype):
    spec, plant, step = PLANTED[bug]
    report = crosscheck(spec, steps=20, dtype=dtype, rule_for=plant, fused=True,
                        implementations=("loop",))
    assert not report.passed, f"planted bug '{bug}' slipped through the fused kernel"
    comparison = report.comparisons[0]
    assert comparison.first_mismatch.step == step, str(comparison.first_mismatch)
    assert comparison.max_rel_error > 30 * comparison.rtol


@pytest.mark.parametrize("kind", sorted(MACHINERY))
def test_negative_control_planted_machinery_is_caught_in_fused_mode(kind, monkeypatch):
    import optequiv.numeric.against_torch as against

    spec = MACHINERY[kind]
    monkeypatch.setattr(against, "torch_optimizer",
                        lambda s, rule_for=None: planted_machinery(kind, spec))
    report = crosscheck(spec, steps=120, implementations=("loop",), fused=True)
    assert not report.passed, f"planted machinery bug '{kind}' slipped through"


# -- machinery, against torch's loop, to the tolerance -------------------------------------------

def twins(spec, **options):
    """torch's loop and the generated optimizer in fused mode, on identical parameters."""
    return torch_and_generated(spec, fused=True, **options)

SPECS_MACHINERY = ["sgd(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)",
                   "adam(lr=0.01, weight_decay=0.1, amsgrad=true)",
                   "adamw(lr=0.01, weight_decay=0.1, maximize=true)"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("spec", SPECS_MACHINERY)
def test_missing_and_late_gradients_and_per_parameter_step_counts(spec, dtype):
    """Params with different step counts share one kernel call; each gets its own bias
    correction. A parameter whose grad is None gets no state and no step."""
    ta, tb, a, b = twins(spec, dtype=dtype)
    for step in range(1, 13):
        skip = {2} if step < 4 else ({1} if step % 3 == 0 else set())
        feed(a, b, step, skip)
        ta.step(), tb.step()
        assert_matches(ta, tb, a, b, exact=False)
        if step < 4:
            assert b[2] not in tb.state
    if "step" in tb.state[b[0]]:
        assert float(tb.state[b[0]]["step"]) == 12 and float(tb.state[b[2]]["step"]) == 9


@pytest.mark.parametrize("spec", SPECS_MACHINERY)
def test_hyperparameters_schedulers_and_structural_switches(spec):
    ta, tb, a, b = twins(spec, dtype=torch.float32)
    schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5) for opt in (ta, tb)]
    extra_a = torch.nn.Parameter(torch.ones(3))
    extra_b = torch.nn.Parameter(torch.ones(3))
    for step in range(1, 14):
        if step == 5:
            ta.add_param_group({"params": [extra_a], "lr": 0.05})
            tb.add_param_group({"params": [extra_b], "lr": 0.05})
        for opt in (ta, tb):
            group = opt.param_groups[0]
            switch_features(group, step)
        feed(a + [extra_a], b + [extra_b], step)
        ta.step(), tb.step()
        for s in schedulers:
            s.step()
        assert_matches(ta, tb, a + [extra_a], b + [extra_b], exact=False)
    assert tb.param_groups[1]["fused"] is True


@pytest.mark.parametrize("spec", SPECS_MACHINERY)
def test_state_dict_round_trips_with_torch_and_the_default_mode(spec):
    ta, tb, a, b = twins(spec)
    for step in range(1, 6):
        feed(a, b, step, skip={0} if step == 1 else ())
        ta.step(), tb.step()
    saved = io.BytesIO()
    torch.save(tb.state_dict(), saved)
    cls, kwargs = torch_reference(spec)
    theirs = cls(a, foreach=False, **kwargs)  # torch resumes from the fused optimizer's file
    saved.seek(0)
    theirs.load_state_dict(torch.load(saved, weights_only=True))
    ours = type(tb)(b, fused=True)
    saved.seek(0)
    ours.load_state_dict(torch.load(saved, weights_only=True))
    assert ours.param_groups[0]["fused"] is True
    for step in range(6, 11):
        feed(a, b, step)
        theirs.step(), ours.step()
        assert_matches(theirs, ours, a, b, exact=False)


def test_a_group_may_be_fused_and_another_not():
    spec = "adamw(lr=0.01, weight_decay=0.1)"
    cls, kwargs = torch_reference(spec)
    a = [torch.nn.Parameter(torch.ones(4) * i) for i in range(1, 3)]
    b = [torch.nn.Parameter(torch.ones(4) * i) for i in range(1, 3)]
    ta = cls([{"params": [a[0]]}, {"params": [a[1]]}], foreach=False, **kwargs)
    tb = torch_optimizer(spec)([{"params": [b[0]], "fused": True}, {"params": [b[1]]}])
    for step in range(1, 5):
        feed(a, b, step)
        ta.step(), tb.step()
    assert_matches(ta, tb, a, b, exact=False)
    assert torch.equal(a[1], b[1])  # the default group: torch's loop bit for bit


def test_tensors_the_kernel_cannot_read_take_the_default_path():
    """float16, a non-contiguous parameter and a float64 one next to float32 ones."""
    spec = "adam(lr=0.01)"
    cls, kwargs = torch_reference(spec)
    init = [torch.randn(4, 3), torch.randn(3, 4).t(), torch.randn(5).half(),
            torch.randn(6, dtype=torch.float64), torch.randn(7)]
    a = [torch.nn.Parameter(x.clone()) for x in init]
    b = [torch.nn.Parameter(x.clone()) for x in init]
    assert not b[1].is_contiguous()
    ta, tb = cls(a, foreach=False, **kwargs), torch_optimizer(spec)(b, fused=True)
    for step in range(1, 5):
        feed(a, b, step)
        ta.step(), tb.step()
    for p, q in zip(a, b):
        torch.testing.assert_close(q, p, rtol=tolerance(torch.float32),
                                   atol=tolerance(torch.float32))
    assert torch.equal(a[2], b[2]) and torch.equal(a[1], b[1])  # the default path, exactly


@pytest.mark.parametrize("spec", SPECS_MACHINERY)
def test_nan_and_inf_gradients_propagate_as_torchs(spec):
    ta, tb, a, b = twins(spec, shapes=((6,),), dtype=torch.float32)
    for step in range(1, 5):
        feed(a, b, step)
        if step == 2:
            for p in (a[0], b[0]):
                p.grad[1], p.grad[2], p.grad[3] = float("nan"), float("inf"), -float("inf")
        ta.step(), tb.step()
        assert_matches(ta, tb, a, b, exact=False)
    assert not torch.isfinite(b[0]).all()
    # negative control: the same comparison sees a NaN in one run only
    b[0].grad = torch.ones(6)
    a[0].grad = torch.ones(6)
    a[0].grad[0] = float("nan")
    ta.step(), tb.step()
    with pytest.raises(AssertionError):
        assert_matches(ta, tb, a, b, exact=False)


def test_step_count_dtype_follows_torch_float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ta, tb, a, b = twins("adam(lr=0.01)")
        for step in range(1, 4):
            feed(a, b, step)
            ta.step(), tb.step()
        assert tb.state[b[0]]["step"].dtype == ta.state[a[0]]["step"].dtype == torch.float64
        assert_matches(ta, tb, a, b, exact=False)
    finally:
        torch.set_default_dtype(previous)


def test_closure_and_autograd_see_the_in_place_update():
    ta, tb, a, b = twins("adam(lr=0.1)", shapes=((4,),))

    for _ in range(3):
        torch.testing.assert_close(tb.step(closure(b, tb)), ta.step(closure(a, ta)))
    assert_matches(ta, tb, a, b, exact=False)
    # a graph that saved a parameter cannot be differentiated after the kernel changed it
    for params, opt in ((a, ta), (b, tb)):
        loss = (params[0] ** 3).sum()
        params[0].grad = torch.ones_like(params[0])
        opt.step()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


def test_many_threads_give_the_same_bits_as_one():
    """Above GRAIN elements per thread the kernel runs an OpenMP loop, each thread over its
    share of the tensors laid end to end; elementwise, so the split cannot change a bit."""
    shapes = ((2 * GRAIN + 17,), (5,), (GRAIN + 3,), (GRAIN // 2,))  # cuts inside and between
    results = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        _, tb, _, b = twins("adamw(lr=0.01, weight_decay=0.1)", shapes=shapes,
                            dtype=torch.float32)
        for step in range(1, 4):
            feed(b, b, step)
            tb.step()
        results.append([p.detach().clone() for p in b])
    for other in results[1:]:
        for x, y in zip(results[0], other):
            assert torch.equal(x, y)


def test_two_parameters_on_one_storage_are_stepped_in_turn():
    """Two parameters on one storage (a parameter listed twice is refused: see
    test_torch_parity_edges): the kernel must not let two threads race on one tensor: it steps
    them one after the other, as the loop does."""
    torch.set_num_threads(2)
    results = []
    for fused in (False, True):
        p = torch.nn.Parameter(torch.linspace(-1, 1, 2 * GRAIN + 5))
        q, alias = torch.nn.Parameter(torch.ones(7)), torch.nn.Parameter(p.data)
        opt = torch_optimizer("adam(lr=0.1)")([p, q, alias], fused=fused)
        for step in range(1, 4):
            p.grad, q.grad = torch.cos(p.detach() * step), torch.ones(7)
            alias.grad = torch.sin(p.detach() * step)
            opt.step()
        results.append((p.detach().clone(), float(opt.state[alias]["step"])))
    (eager, steps), (fused, fused_steps) = results
    assert steps == fused_steps == 3
    torch.testing.assert_close(fused, eager, rtol=tolerance(torch.float32),
                               atol=tolerance(torch.float32))


def test_step_counts_of_two_dtypes_are_batched_apart():
    """A checkpoint may bring a float64 step count next to float32 ones: the kernel reads each
    batch's counts as one type, so the two kinds go in separate calls."""
    ta, tb, a, b = twins("adam(lr=0.01)", shapes=((4,), (5,), (6,)), dtype=torch.float32)
    for step in range(1, 6):
        feed(a, b, step)
        ta.step(), tb.step()
        if step == 2:
            for opt, params in ((ta, a), (tb, b)):
                opt.state[params[1]]["step"] = opt.state[params[1]]["step"].double()
        assert_matches(ta, tb, a, b, exact=False)
    assert tb.state[b[1]]["step"].dtype == torch.float64 and float(tb.state[b[1]]["step"]) == 5


def test_scalar_state_of_two_dtypes_in_one_parameter_takes_the_default_path():
    """torch's load_state_dict casts NAdam's mu_product to a float64 parameter's dtype but
    keeps the step count float32: the kernel reads a parameter's scalars as one type, so such a
    parameter takes the default path (read as double, the float32 count was garbage: the
    planted case of this test, caught before the fix)."""
    ta, tb, a, b = twins("nadam(lr=0.01)", shapes=((4,), (5,)), dtype=torch.float64)
    for step in range(1, 7):
        feed(a, b, step)
        ta.step(), tb.step()
        if step == 3:
            for opt in (ta, tb):
                opt.load_state_dict(opt.state_dict())
            state = tb.state[b[0]]
            assert (state["step"].dtype, state["mu_product"].dtype) == (torch.float32,
                                                                        torch.float64)
        assert_matches(ta, tb, a, b, exact=False)
    assert float(tb.state[b[0]]["step"]) == 6
