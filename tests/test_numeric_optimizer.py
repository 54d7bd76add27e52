"""The generated torch optimizer is a drop-in for torch.optim: signature, validation, machinery.

Each test runs the generated optimizer and torch.optim's own (the single-tensor loop) on twin
parameters and requires the same numbers. On the CPU they are bit-identical (the same kernels
in the same order), so most comparisons here are exact; each family has a negative control.
"""
from __future__ import annotations

import inspect
import io
import math

import pytest
import torch

from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.spec import parse_spec
from optequiv.derive.errors import UserError
from optequiv.numeric import torch_optimizer
from optequiv.numeric.reference import torch_reference

from twins import CUDA, assert_matches, closure, feed, switch_features, twins

DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


SPECS = ["sgd(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)",
         "sgd(lr=0.1, momentum=0.9, nesterov=true, maximize=true)",
         "adam(lr=0.01, weight_decay=0.1, amsgrad=true)",
         "adam(lr=0.01, decoupled_weight_decay=true, weight_decay=0.1, maximize=true)",
         "adamw(lr=0.01, weight_decay=0.1)"]


# -- the class -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW)])
def test_signature_is_torchs(name, cls):
    ours = inspect.signature(torch_optimizer(name)).parameters
    theirs = inspect.signature(cls).parameters
    # then optequiv's own keys that the spec reads (another framework's convention: adam's
    # eps_root), keyword-only
    own = list(ENTRIES[name].own_for(parse_spec(name)))
    assert list(ours) == list(theirs) + own
    assert all(ours[k].kind == inspect.Parameter.KEYWORD_ONLY for k in own)
    for key, p in theirs.items():
        assert ours[key].kind == p.kind, key
        assert ours[key].default == p.default, key


def test_spec_values_become_defaults_and_keywords_override_them():
    SGD = torch_optimizer("sgd(lr=0.1, momentum=0.9, nesterov=true)")
    p = torch.nn.Parameter(torch.zeros(2))
    group = SGD([p]).param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.1, 0.9, True)
    assert SGD([p], 0.5, 0.8).param_groups[0]["lr"] == 0.5  # positional, as torch's
    assert SGD([p], lr=0.2).param_groups[0]["lr"] == 0.2
    assert torch_optimizer("adamw")([p]).param_groups[0]["weight_decay"] == 0.01


def test_a_symbolic_spec_has_no_numeric_optimizer():
    with pytest.raises(UserError, match="symbolic"):
        torch_optimizer("sgd(lr=eta)")


BAD = [("sgd", dict(lr=-1.0)), ("sgd", dict(lr=0.1, momentum=-0.5)),
       ("sgd", dict(lr=0.1, weight_decay=-0.1)), ("sgd", dict(lr=0.1, nesterov=True)),
       ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
       ("adam", dict(lr=-1e-3)), ("adam", dict(eps=-1e-8)), ("adam", dict(betas=(1.5, 0.9))),
       ("adam", dict(betas=(0.9, 1.0))), ("adam", dict(betas=(-0.1, 0.9))),
       ("adam", dict(weight_decay=-1)), ("adam", dict(lr=float("nan"))),
       ("adamw", dict(betas=(0.9, -2.0))), ("adamw", dict(lr=-2)),
       ("adamw", dict(weight_decay=float("-inf"))),
       ("adam", dict(lr=torch.tensor(0.1), foreach=True)),
       ("adamw", dict(betas=(torch.tensor(0.9), 0.999)))]
CLASSES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@pytest.mark.parametrize("name,kwargs", BAD, ids=[f"{n}-{k}" for n, k in BAD])
def test_bad_hyperparameters_are_rejected_with_torchs_message(name, kwargs):
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError) as theirs:
        CLASSES[name]([p], **kwargs)
    with pytest.raises(ValueError) as ours:
        torch_optimizer(name)([p], **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_nan_is_rejected_where_torch_lets_it_through():
    p = torch.nn.Parameter(torch.zeros(2))
    torch.optim.SGD([p], lr=float("nan"))  # torch.optim.SGD checks `lr < 0.0` only
    with pytest.raises(ValueError, match="Invalid learning rate: nan"):
        torch_optimizer("sgd")([p], lr=float("nan"))


def test_unknown_or_unsupported_keywords():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(TypeError, match="decoupled_weight_decay"):
        torch_optimizer("adamw")([p], decoupled_weight_decay=True)  # as torch.optim.AdamW
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        torch_optimizer("adam")([p], fused=True, foreach=True)  # as torch.optim.Adam
    torch_optimizer("adam")([p], foreach=True, fused=False)  # accepted: the loop's numbers


def test_generated_source_is_inspectable_and_in_place():
    text = torch_optimizer("adamw").source()
    assert "exp_avg.lerp_(grad" in text and "param.addcdiv_(exp_avg" in text
    assert "param.mul_(" in text and "torch.optim" not in text
    first = torch_optimizer("sgd(momentum=0.9, weight_decay=0.1)").source(first_step=True)
    assert "state['momentum_buffer'] =" in first


# -- the machinery, against torch -------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("spec", SPECS)
def test_steps_with_missing_and_late_gradients_equal_torch(spec, dtype, device):
    ta, tb, a, b = twins(spec, dtype=dtype, device=device)
    for step in range(1, 13):
        skip = {2} if step < 4 else ({1} if step % 3 == 0 else set())
        feed(a, b, step, skip)
        ta.step(), tb.step()
        if device == "cpu":
            assert_matches(ta, tb, a, b)
        else:  # CUDA kernels: compare to the tolerance, not the bits
            for p, q in zip(a, b):
                torch.testing.assert_close(q, p)
    assert b[2] in tb.state  # the 0-dim parameter, stepped from step 4 on


def test_a_parameter_without_gradient_gets_no_state_no_step_and_no_decay():
    ta, tb, a, b = twins("adamw(lr=0.1, weight_decay=0.5)")
    before = b[1].detach().clone()
    feed(a, b, 1, skip={1})
    ta.step(), tb.step()
    assert b[1] not in tb.state and torch.equal(b[1], before)
    assert_matches(ta, tb, a, b)
    # negative control: the same comparison sees a zero gradient (decay, state) as a difference
    feed(a, b, 2)
    b[1].grad = torch.zeros_like(b[1])
    a[1].grad = None
    ta.step(), tb.step()
    with pytest.raises(AssertionError):
        assert_matches(ta, tb, a, b)


@pytest.mark.parametrize("spec", SPECS)
def test_nan_and_inf_gradients_propagate_as_torchs(spec):
    ta, tb, a, b = twins(spec, shapes=((6,),))
    for step in range(1, 5):
        feed(a, b, step)
        if step == 2:
            for p in (a[0], b[0]):
                p.grad[1], p.grad[2], p.grad[3] = float("nan"), float("inf"), -float("inf")
        ta.step(), tb.step()
        assert_matches(ta, tb, a, b)
    assert not torch.isfinite(b[0]).all()
    # negative control: a step that sanitised the gradient would not compare equal
    tc, td, c, d = twins(spec, shapes=((6,),))
    for step in range(1, 5):
        feed(c, d, step)
        if step == 2:
            c[0].grad[1] = float("nan")
        tc.step(), td.step()
    with pytest.raises(AssertionError):
        assert_matches(tc, td, c, d)


@pytest.mark.parametrize("spec", SPECS)
def test_lr_schedulers_drive_the_generated_optimizer(spec):
    ta, tb, a, b = twins(spec)
    schedulers = [torch.optim.lr_scheduler.SequentialLR(
        opt, [torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=4),
              torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)], milestones=[4])
        for opt in (ta, tb)]
    for step in range(1, 16):
        feed(a, b, step)
        ta.step(), tb.step()
        for s in schedulers:
            s.step()
        assert_matches(ta, tb, a, b)
    assert ta.param_groups[0]["lr"] == tb.param_groups[0]["lr"] != 0.1


@pytest.mark.parametrize("spec", SPECS)
def test_hyperparameters_are_reread_every_step(spec):
    """Hand edits of param_groups between steps, a structural switch (momentum and
    weight_decay to 0 and back), and add_param_group."""
    ta, tb, a, b = twins(spec)
    extra_a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    extra_b = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    for step in range(1, 16):
        if step == 5:
            ta.add_param_group({"params": [extra_a], "lr": 0.05})
            tb.add_param_group({"params": [extra_b], "lr": 0.05})
        for opt in (ta, tb):
            group = opt.param_groups[0]
            group["lr"] *= 0.9
            switch_features(group, step)
        feed(a + [extra_a], b + [extra_b], step, skip={3} if step < 5 else ())
        ta.step(), tb.step()
        assert_matches(ta, tb, a + [extra_a], b + [extra_b])


def test_closure_is_evaluated_with_grad_enabled_and_its_loss_returned():
    ta, tb, a, b = twins("adam(lr=0.1)", shapes=((4,),))

    for _ in range(3):
        la, lb = ta.step(closure(a, ta)), tb.step(closure(b, tb))
        assert torch.equal(la, lb)
    assert_matches(ta, tb, a, b)


@pytest.mark.parametrize("spec", SPECS)
def test_state_dict_resume_continues_exactly_and_interoperates_with_torch(spec):
    ta, tb, a, b = twins(spec)
    for step in range(1, 6):
        feed(a, b, step, skip={0} if step == 1 else ())
        ta.step(), tb.step()
    saved_b, saved_a = io.BytesIO(), io.BytesIO()
    torch.save(tb.state_dict(), saved_b), torch.save(ta.state_dict(), saved_a)
    assert tb.state_dict()["state"].keys() == ta.state_dict()["state"].keys()
    cls, kwargs = torch_reference(spec)
    ours = type(tb)(b)
    saved_b.seek(0), saved_a.seek(0)
    ours.load_state_dict(torch.load(saved_b, weights_only=True))
    theirs_from_ours = cls(a, foreach=False, **kwargs)  # torch resumes from our checkpoint
    saved_b.seek(0)
    theirs_from_ours.load_state_dict(torch.load(saved_b, weights_only=True))
    for step in range(6, 12):
        feed(a, b, step)
        theirs_from_ours.step(), ours.step()
        assert_matches(theirs_from_ours, ours, a, b)


def test_loading_torchs_state_dict_into_the_generated_optimizer():
    ta, tb, a, b = twins("adamw(lr=0.01, weight_decay=0.1, amsgrad=true)")
    for step in range(1, 4):
        feed(a, b, step)
        ta.step(), tb.step()
    fresh = type(tb)(b)
    checkpoint = io.BytesIO()  # (load_state_dict keeps tensors it can: a file makes copies)
    torch.save(ta.state_dict(), checkpoint)
    checkpoint.seek(0)
    fresh.load_state_dict(torch.load(checkpoint, weights_only=True))
    for step in range(4, 8):
        feed(a, b, step)
        ta.step(), fresh.step()
        assert_matches(ta, fresh, a, b)


def test_many_parameters_in_one_group():
    ta, tb, a, b = twins("sgd(lr=0.1, momentum=0.9)", shapes=[(i % 5 + 1,) for i in range(40)])
    for step in range(1, 4):
        feed(a, b, step)
        ta.step(), tb.step()
    assert_matches(ta, tb, a, b)


def test_complex_parameters_are_refused():
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))
    p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError, match="real"):
        torch_optimizer("adam")([p]).step()


def test_step_count_is_torchs_float32_cpu_scalar():
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    p.grad = torch.ones_like(p)
    opt = torch_optimizer("adam")([p])
    opt.step()
    step = opt.state[p]["step"]
    assert step.dtype == torch.float32 and step.device.type == "cpu" and step.dim() == 0
    assert math.isclose(float(step), 1.0)


@pytest.mark.parametrize("spec, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_long_float64_runs_stay_bit_for_bit_torchs(spec, cls):
    # torch's bias correction is bias_correction2 ** 0.5; math.sqrt differs from it in the last
    # bit at some step counts (beta2 = 0.95: first at step 709), past any 200-step cross-check,
    # and in float64 training that bit grows (a 3000-step MLP run ended 0.1 apart)
    g = torch.Generator().manual_seed(0)
    start = torch.randn(16, dtype=torch.float64, generator=g)
    grads = torch.randn(800, 16, dtype=torch.float64, generator=g)
    params = [torch.nn.Parameter(start.clone()) for _ in range(2)]
    ours = torch_optimizer(spec)([params[0]], lr=1e-2, betas=(0.9, 0.95))
    theirs = cls([params[1]], lr=1e-2, betas=(0.9, 0.95), foreach=False)
    for k, grad in enumerate(grads, 1):
        for p, opt in zip(params, (ours, theirs)):
            p.grad = grad.clone()
            opt.step()
        assert torch.equal(params[0], params[1]), f"step {k}"


def test_pickle_and_torch_save_round_trip_and_continue_exactly(tmp_path):
    # the class is made at run time; torch.save(optimizer) must still work, as for torch.optim's
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).double()
    opt = torch_optimizer("adamw(weight_decay=0.1)")(model.parameters(), lr=1e-2)
    x = torch.randn(8, 4, dtype=torch.float64)

    def step(m, o):
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()

    for _ in range(3):
        step(model, opt)
    torch.save({"model": model, "opt": opt}, tmp_path / "run.pt")
    saved = torch.load(tmp_path / "run.pt", weights_only=False)
    assert type(saved["opt"]).__name__ == "GeneratedAdamW"
    assert saved["opt"].param_groups[0]["params"][0] is saved["model"].weight
    for _ in range(5):
        step(model, opt), step(saved["model"], saved["opt"])
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(),
                                                 saved["model"].parameters()))


def test_sparse_gradients_are_refused_in_torchs_words_where_torch_refuses_them():
    emb = torch.nn.Embedding(4, 2, sparse=True)
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="Adam does not support sparse gradients"):
        torch_optimizer("adamw")(emb.parameters(), lr=0.1).step()
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        torch_optimizer("sgd")(emb.parameters(), lr=torch.tensor([0.1, 0.2]))
