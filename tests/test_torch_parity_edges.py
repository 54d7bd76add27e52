"""Careless input a drop-in must treat as torch.optim does (issue 13, defect 13): a parameter
listed twice, booleans as numbers, a checkpoint of another optimizer, a gradient of the wrong
shape. Each runs torch's own optimizer beside the generated one; numbers are compared bit for
bit (the default path) or within the dtype's tolerance (fused), and the errors by their words."""
from __future__ import annotations

import copy
import warnings

import numpy
import pytest
import torch

from optequiv.derive.errors import UserError
from optequiv.numeric import numpy_step, torch_optimizer
from optequiv.numeric.reference import torch_reference

DUPLICATED = ["sgd(lr=0.1, momentum=0.9)", "sgd(lr=0.1, momentum=0.9, dampening=0.5)",
              "sgd(lr=0.1, momentum=0.9, nesterov=true, weight_decay=0.1)",
              "adam(lr=0.1)", "adam(lr=0.1, amsgrad=true, weight_decay=0.1)", "adamw(lr=0.1)"]


def _duplicated_run(cls, kwargs, steps=4):
    """θ and state after `steps` steps of one parameter listed twice in its group."""
    p = torch.nn.Parameter(torch.tensor([1.0, -0.5], dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns of the duplicate: so do we
        opt = cls([p, p], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        (p ** 2).sum().backward()
        opt.step()
    return p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()}


@pytest.mark.parametrize("spec", DUPLICATED)
def test_a_parameter_listed_twice_steps_as_torchs_loop(spec):
    cls, kwargs = torch_reference(spec)
    theirs = _duplicated_run(cls, {**kwargs, "foreach": False})
    ours = _duplicated_run(torch_optimizer(spec), {})
    assert torch.equal(ours[0], theirs[0])
    assert set(ours[1]) == set(theirs[1])
    for key, value in theirs[1].items():
        assert torch.equal(ours[1][key], value), key


@pytest.mark.parametrize("impl", [dict(foreach=True), dict(fused=True)], ids=str)
@pytest.mark.parametrize("spec", DUPLICATED)
def test_a_parameter_listed_twice_is_refused_for_multi_tensor_kernels(spec, impl):
    """torch's foreach and fused kernels step a list stage by stage, so a parameter listed
    twice is stepped otherwise than by its loop (shown here for Adam); the generated optimizer
    steps one parameter at a time and refuses, in one line, rather than differ."""
    cls, kwargs = torch_reference(spec)
    if spec.startswith("adam"):
        assert not torch.equal(_duplicated_run(cls, {**kwargs, **impl})[0],
                               _duplicated_run(cls, {**kwargs, "foreach": False})[0])
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(UserError, match="listed twice in one group with foreach=True"):
            torch_optimizer(spec)([p, p], **impl)
        opt = torch_optimizer(spec)([p], **impl)  # control: once is fine, so is a second group
        with pytest.raises(UserError, match="listed twice"):
            q = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
            opt.add_param_group({"params": [q, q]})
    assert len(opt.param_groups) == 1


def test_duplicate_control_a_second_buffer_update_is_seen():
    """Negative control: stepping the second listing with the buffer the first one made
    (what the generated SGD did) moves θ elsewhere than torch, and the comparison sees it."""
    cls, kwargs = torch_reference(DUPLICATED[0])
    theirs = _duplicated_run(cls, kwargs)
    p = torch.nn.Parameter(torch.tensor([1.0, -0.5], dtype=torch.float64))
    opt = torch_optimizer(DUPLICATED[0])([p])
    for _ in range(4):  # each step, the parameter through the generated step twice in a row
        for _ in range(2):
            opt.zero_grad()
            (p ** 2).sum().backward()
            opt.step()
    assert not torch.equal(p.detach(), theirs[0])


BOOLEAN_NUMBERS = [("sgd", dict(lr=True)), ("sgd", dict(lr=0.1, momentum=True)),
                   ("sgd", dict(lr=0.1, momentum=0.5, dampening=True)),
                   ("adam", dict(lr=True)),
                   ("adam", dict(eps=True)), ("adamw", dict(weight_decay=True)),
                   ("adamw", dict(lr=False))]


@pytest.mark.parametrize("name,kwargs", BOOLEAN_NUMBERS,
                         ids=[f"{n}-{k}" for n, k in BOOLEAN_NUMBERS])
def test_a_boolean_is_the_number_torch_takes_it_for(name, kwargs):
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    a, b = (torch.nn.Parameter(torch.tensor([1.0, -2.0])) for _ in range(2))
    theirs, ours = cls([a], foreach=False, **kwargs), torch_optimizer(name)([b], **kwargs)
    for _ in range(3):
        for p, opt in ((a, theirs), (b, ours)):
            opt.zero_grad()
            (p ** 2).sum().backward()
            opt.step()
    assert torch.equal(a, b)


@pytest.mark.parametrize("betas", [(True, 0.9), (0.9, True), (False, 0.9), (0, 0.9), [0.5, 0.9]])
def test_boolean_betas_are_judged_as_torch_judges_them(betas):
    p = torch.nn.Parameter(torch.zeros(2))
    try:
        torch.optim.Adam([p], betas=betas)
    except ValueError as e:
        with pytest.raises(ValueError) as ours:
            torch_optimizer("adam")([p], betas=betas)
        assert str(ours.value) == str(e)
    else:
        torch_optimizer("adam")([p], betas=betas)


@pytest.mark.parametrize("target", ["adam", "adamw", "adam(amsgrad=true)"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_an_sgd_checkpoint_is_refused_by_adam_as_torch_refuses_it(target, momentum):
    """torch: KeyError 'step' on loading (a state without its step), or KeyError 'betas' at
    the step (a group without Adam's hyperparameters). The generated one raises the same."""
    def outcome(cls):
        p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
        sgd = torch.optim.SGD([p], lr=0.1, momentum=momentum)
        (p ** 2).sum().backward()
        sgd.step()
        opt = cls([p], lr=0.1)
        with pytest.raises(KeyError) as e:
            opt.load_state_dict(sgd.state_dict())
            opt.step()
        return e.value.args

    cls, _ = torch_reference(target)
    assert outcome(torch_optimizer(target)) == outcome(cls)


def test_an_adam_checkpoint_still_loads_into_the_generated_adam():
    """Control: the refusal above is of a foreign checkpoint, not of checkpoints."""
    a, b = (torch.nn.Parameter(torch.tensor([1.0, 2.0])) for _ in range(2))
    theirs = torch.optim.Adam([a], lr=0.1, foreach=False)
    (a ** 2).sum().backward()
    theirs.step()
    ours = torch_optimizer("adam")([b], lr=0.1)
    b.data.copy_(a.data)
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))  # (else the two share tensors)
    for p, opt in ((a, theirs), (b, ours)):
        opt.zero_grad()
        (p ** 2).sum().backward()
        opt.step()
    assert torch.equal(a, b)


def test_amsgrad_switched_on_mid_run_raises_torchs_key_error():
    def outcome(cls):
        p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
        opt = cls([p], lr=0.1)
        (p ** 2).sum().backward()
        opt.step()
        opt.param_groups[0]["amsgrad"] = True
        with pytest.raises(KeyError) as e:
            opt.step()
        return e.value.args
    assert outcome(torch_optimizer("adam")) == outcome(torch.optim.Adam)


@pytest.mark.parametrize("spec", ["sgd(lr=0.1, momentum=0.9)", "adam"])
def test_numpy_step_refuses_a_gradient_of_another_shape(spec):
    step = numpy_step(spec)
    theta = numpy.zeros(3)
    state = step.init(theta)
    with pytest.raises(UserError, match=r"grad of shape \(4, 3\) .* theta of shape \(3,\)"):
        step(state, theta, numpy.ones((4, 3)))
    state, theta = step(state, theta, numpy.ones(3))  # control: the same shape steps
    assert theta.shape == (3,)
    with pytest.raises(UserError, match=r"of shape \(2,\) .* theta of shape \(3,\)"):
        step({k: (v[:2] if isinstance(v, numpy.ndarray) else v) for k, v in state.items()},
             theta, numpy.ones(3))
