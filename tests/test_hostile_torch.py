"""Where the generated optimizers meet odd input, they do what torch does, or refuse in torch's
words (issue 13, defect 13)."""
from __future__ import annotations

import warnings

import numpy
import pytest
import torch

from optequiv.numeric import numpy_step, torch_optimizer


def _pair(spec, cls, **kwargs):
    a, b = (torch.nn.Parameter(torch.tensor([1.0, -0.5], dtype=torch.float64)) for _ in "ab")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn about the duplicate parameter
        return cls([a, a], **kwargs), torch_optimizer(spec)([b, b], **kwargs), a, b


@pytest.mark.parametrize("spec, cls, kwargs", [
    ("sgd", torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    ("sgd", torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("sgd", torch.optim.SGD, dict(lr=0.1)),
    ("adam", torch.optim.Adam, dict(lr=0.1)),
    ("adamw", torch.optim.AdamW, dict(lr=0.1, amsgrad=True)),
])
@pytest.mark.parametrize("fused", [False, True])
def test_a_parameter_listed_twice_steps_as_torchs(spec, cls, kwargs, fused):
    ta, tb, a, b = _pair(spec, cls, **kwargs)
    if fused:
        tb.param_groups[0]["fused"] = True
    for step in range(3):
        g = torch.tensor([0.3 + step, -0.2], dtype=torch.float64)
        a.grad, b.grad = g.clone(), g.clone()
        ta.step(), tb.step()
        torch.testing.assert_close(b, a, rtol=1e-12, atol=0)
        for key, value in ta.state[a].items():
            torch.testing.assert_close(tb.state[b][key], value, rtol=1e-12, atol=0)


def test_negative_control_sequential_steps_differ_from_torch_for_sgd_momentum():
    # what the generated SGD did before: the second occurrence saw the first one's buffer
    ta, _, a, _ = _pair("sgd", torch.optim.SGD, lr=0.1, momentum=0.9)
    b = torch.nn.Parameter(a.detach().clone())
    tb = torch.optim.SGD([b], lr=0.1, momentum=0.9)
    a.grad = torch.tensor([0.3, -0.2], dtype=torch.float64)
    ta.step()
    for _ in range(2):
        b.grad = torch.tensor([0.3, -0.2], dtype=torch.float64)
        tb.step()
    a.grad = b.grad = torch.tensor([1.3, -0.2], dtype=torch.float64)
    ta.step(), tb.step(), tb.step()
    assert not torch.allclose(a, b)


def test_lr_true_is_accepted_as_torch_does():
    a = torch.nn.Parameter(torch.ones(2))
    b = torch.nn.Parameter(torch.ones(2))
    ta, tb = torch.optim.SGD([a], lr=True), torch_optimizer("sgd")([b], lr=True)
    a.grad, b.grad = torch.full((2,), 0.5), torch.full((2,), 0.5)
    ta.step(), tb.step()
    assert torch.equal(a, b) and float(b.detach()[0]) == 0.5


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_an_sgd_checkpoint_into_adam_raises_as_torch(name, cls):
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    sgd = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sgd.step()
    checkpoint = sgd.state_dict()["state"]
    errors = []
    for opt in (cls([p], lr=0.1), torch_optimizer(name)([p], lr=0.1)):
        with pytest.raises(KeyError) as raised:
            opt.load_state_dict({**opt.state_dict(), "state": checkpoint})
        errors.append(raised.value.args)
    assert errors[0] == errors[1] == ("step",)
    # negative control: SGD takes an Adam checkpoint, in torch and here
    adam = torch.optim.Adam([p], lr=0.1)
    adam.step()
    for opt in (torch.optim.SGD([p], lr=0.1), torch_optimizer("sgd")([p], lr=0.1)):
        opt.load_state_dict({**opt.state_dict(), "state": adam.state_dict()["state"]})


def test_numpy_step_refuses_a_gradient_of_another_shape():
    step = numpy_step("adam(lr=0.1)")
    theta = numpy.ones(3)
    with pytest.raises(ValueError, match=r"grad of shape \(4, 3\) does not match theta of shape \(3,\)"):
        step(step.init(theta), theta, numpy.ones((4, 3)))
    state, new = step(step.init(theta), theta, numpy.ones(3))  # the same shape: a step
    assert new.shape == (3,)
