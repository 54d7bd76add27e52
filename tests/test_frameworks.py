"""The dialects against the real frameworks: for every optax and Keras call optequiv models, the
optimizer generated from the dialect (numeric.torch_optimizer(parse_spec(call))) and the
framework's own optimizer built from the same call take the same gradient sequence in float64,
and their parameters agree after every step. Only the keywords the call writes are passed to
the framework, so its own defaults are checked against the dialect's too. Hugging Face's 4.x
AdamW (a torch optimizer: decay after the step, eps on sqrt(v), correct_bias) is run the same way. Beyond a constant lr and full
gradients: Keras under an lr schedule (where its SGD parts from torch's) and both frameworks with
a parameter left without a gradient (optax's zeros, Keras' global step count). Negative controls
plant a wrong axis value and show the comparison catches it. A framework that is not installed skips
(pip install 'optequiv[frameworks]'); a dialect whose variant key is not in the catalogue yet
skips with the key named."""
from __future__ import annotations

import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported anywhere

import numpy as np
import pytest
import sympy as sp
import torch

from optequiv.derive.dialects import FRAMEWORKS
from optequiv.derive.dialects.parse import parse_call
from optequiv.derive.spec import parse_spec, with_changes
from optequiv.numeric import torch_optimizer

STEPS = 6
# float64, a few operations per step in another order: agreement to ~100 ulp of the values
RTOL, ATOL = 1e-12, 1e-13
# eps and weight_decay far from zero, so that where each enters shows in the parameters
CASES = {
    "optax": (
        "optax.adam(0.05, b1=0.8, b2=0.9, eps=0.1)",
        "optax.adam(learning_rate=0.05, eps=0.01, eps_root=0.02)",
        "optax.adamw(learning_rate=0.05, eps=0.1, weight_decay=0.3)",
        "optax.adamw(0.001)",
        "optax.amsgrad(0.05, eps=0.1)",
        "optax.sgd(0.1)",
        "optax.sgd(0.1, momentum=0.9)",
        "optax.sgd(0.1, 0.9, nesterov=True)",
        "optax.lion(0.01, weight_decay=0.3)",
        "optax.chain(optax.add_decayed_weights(0.3), optax.adam(0.05, eps=0.1))",
        "optax.chain(optax.scale_by_adam(eps=0.1), optax.add_decayed_weights(0.3), "
        "optax.scale_by_learning_rate(0.05))",
        "optax.chain(optax.scale_by_amsgrad(eps=0.1), optax.scale_by_learning_rate(0.05))",
        "optax.chain(optax.trace(0.9), optax.add_decayed_weights(0.2), "
        "optax.scale_by_learning_rate(0.1))",
        "optax.chain(optax.scale_by_lion(b1=0.8), optax.scale_by_learning_rate(0.01))",
        "optax.chain(optax.adam(0.05, eps=0.1), optax.add_decayed_weights(-0.03))",
    ),
    "keras": (
        "keras.Adam(learning_rate=0.05, epsilon=0.1)",
        "keras.Adam(learning_rate=0.05, epsilon=0.1, amsgrad=True, weight_decay=0.3)",
        "keras.AdamW(learning_rate=0.05, weight_decay=0.3, epsilon=0.1, beta_2=0.9)",
        "keras.AdamW()",
        "keras.SGD()",
        "keras.SGD(learning_rate=0.1, momentum=0.9)",
        "keras.SGD(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.2)",
        "keras.Lion(learning_rate=0.01, weight_decay=0.3)",
    ),
    "transformers": (
        "transformers.AdamW(lr=0.05, weight_decay=0.3, eps=0.1)",
        "transformers.AdamW(lr=0.05, betas=(0.8, 0.9), eps=0.1, weight_decay=0.3, "
        "correct_bias=False)",
        "transformers.AdamW(no_deprecation_warning=True)",
    ),
}
# a wrong axis value on a right call: the framework must disagree with it
PLANTED = (
    ("keras.Adam(learning_rate=0.05, epsilon=0.1)", {"eps_added_to": "sqrt_v_hat"}),
    # (buffer=torch on keras.SGD is no control: at a constant lr it is Keras' rule too)
    ("keras.AdamW(learning_rate=0.05, weight_decay=0.3, epsilon=0.1)", {"decay": "after"}),
    ("optax.adamw(learning_rate=0.05, eps=0.1, weight_decay=0.3)", {"decay": "l2"}),
    ("optax.amsgrad(0.05, eps=0.1)", {"amsgrad_max_of": "v"}),
    ("transformers.AdamW(lr=0.05, weight_decay=0.3, eps=0.1)", {"decay": "decoupled"}),
    ("transformers.AdamW(lr=0.05, weight_decay=0.3, eps=0.1)", {"eps_added_to": "sqrt_v_hat"}),
)



def _module(framework: str):
    if framework == "optax":
        jax = pytest.importorskip("jax", reason="optax's cross-check needs jax "
                                  "(pip install 'optequiv[frameworks]')")
        jax.config.update("jax_enable_x64", True)
    return pytest.importorskip(framework, reason=f"the {framework} cross-check needs {framework} "
                               "(pip install 'optequiv[frameworks]')")


def _python(value):
    if isinstance(value, tuple):
        return tuple(_python(v) for v in value)
    return float(value) if isinstance(value, sp.Expr) else value


def _real(module, call):
    """The framework's own optimizer from the call: its function or class of that name, with
    the keywords the call writes (nested calls built first)."""
    owner = module.optimizers if call.framework.name == "keras" else module
    fn = getattr(owner, call.dialect.name)
    if call.dialect.variadic:
        return fn(*[_real(module, c) for c in call.nested])
    return fn(**{k: _python(call.values[k]) for k in call.texts})


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    start = [rng.normal(size=(3,)), rng.normal(size=(2, 2))]
    grads = [[rng.normal(size=p.shape) for p in start] for _ in range(STEPS)]
    return start, grads


def _run_real(framework, module, call, start, grads, lrs=None, missing=()) -> list:
    """lrs: the lr in force at each step (Keras: set on the optimizer before the step);
    missing: (step, parameter) pairs without a gradient: optax's update takes zeros there
    (a pytree has every leaf), Keras' apply_gradients leaves the variable out."""
    out = []
    if framework == "optax":
        import jax.numpy as jnp

        opt = _real(module, call)
        params = [jnp.asarray(p, dtype=jnp.float64) for p in start]
        state = opt.init(params)
        for k, g in enumerate(grads):
            g = [0 * x if (k, i) in missing else x for i, x in enumerate(g)]
            updates, state = opt.update([jnp.asarray(x) for x in g], state, params)
            params = module.apply_updates(params, updates)
            out.append([np.asarray(p) for p in params])
    elif framework == "transformers":  # a torch.optim.Optimizer: run as ours is

        def build(params):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # the 4.x class is deprecated
                return getattr(module, call.dialect.name)(params, **{
                    k: _python(call.values[k]) for k in call.texts})
        out = _run_torch(build, start, grads, lrs, missing)
    else:
        module.config.set_floatx("float64")  # the lr variable too, not only the weights
        opt = _real(module, call)
        params = [module.Variable(p, dtype="float64") for p in start]
        for k, g in enumerate(grads):
            if lrs is not None:
                opt.learning_rate = lrs[k]
            opt.apply_gradients([(torch.tensor(x), v) for i, (x, v) in enumerate(zip(g, params))
                                 if (k, i) not in missing])
            out.append([v.value.detach().numpy().copy() for v in params])
    return out


def _run_generated(spec, start, grads, lrs=None, missing=()) -> list:
    return _run_torch(torch_optimizer(spec), start, grads, lrs, missing)


def _run_torch(build, start, grads, lrs=None, missing=()) -> list:
    """A torch optimizer `build(params)` on the problem, float64: the parameters after each step."""
    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in start]
    opt = build(params)
    out = []
    for k, g in enumerate(grads):
        if lrs is not None:  # as a torch scheduler sets it
            for group in opt.param_groups:
                group["lr"] = lrs[k]
        for i, (p, x) in enumerate(zip(params, g)):
            p.grad = None if (k, i) in missing else torch.tensor(x)
        opt.step()
        out.append([p.detach().numpy().copy() for p in params])
    return out


def _agree(real: list, generated: list, what: str) -> None:
    for k, (a, b) in enumerate(zip(real, generated), start=1):
        for i, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_allclose(y, x, rtol=RTOL, atol=ATOL,
                                       err_msg=f"{what}: parameter {i} after step {k}")


def _cross_check(text: str, spec=None, lrs=None, missing=()) -> None:
    call = parse_call(text, FRAMEWORKS)
    framework = call.framework.name
    module = _module(framework)
    spec = parse_spec(text) if spec is None else spec
    start, grads = _problem()
    _agree(_run_real(framework, module, call, start, grads, lrs, missing),
           _run_generated(spec, start, grads, lrs, missing), f"{text} as {spec}")


@pytest.mark.parametrize("text", [t for cases in CASES.values() for t in cases])
def test_dialect_matches_the_real_framework(text):
    _cross_check(text)


@pytest.mark.parametrize("text, planted", PLANTED)
def test_a_planted_axis_value_is_caught(text, planted):
    spec = parse_spec(text)
    if any(k not in spec.entry.keys for k in planted):
        pytest.skip(f"{', '.join(planted)} is not in the catalogue yet")
    with pytest.raises(AssertionError):
        _cross_check(text, with_changes(spec, **planted))


# an lr that changes every step (a warm-up then a decay), where Keras' SGD, the lr inside its
# buffer, parts from torch's; each Keras call must still match Keras exactly
SCHEDULE = (0.02, 0.05, 0.1, 0.07, 0.04, 0.03)


@pytest.mark.parametrize("text", CASES["keras"])
def test_keras_dialect_matches_keras_under_an_lr_schedule(text):
    _cross_check(text, lrs=SCHEDULE)


def test_torchs_momentum_buffer_is_caught_under_an_lr_schedule():
    text = "keras.SGD(learning_rate=0.1, momentum=0.9)"
    _cross_check(text, with_changes(parse_spec(text), buffer="torch"))  # a constant lr: the same
    with pytest.raises(AssertionError):
        _cross_check(text, with_changes(parse_spec(text), buffer="torch"), lrs=SCHEDULE)


# the second parameter has no gradient at steps 2 and 3 (0-based 1, 2): optax steps it on zeros
# (its moments decay, decoupled decay still applies: missing_grad=zeros), Keras skips it but its
# iterations count on (step_counter=global)
MISSING = ((1, 1), (2, 1))


@pytest.mark.parametrize("text", [t for cases in CASES.values() for t in cases])
def test_a_parameter_without_a_gradient_is_handled_as_the_framework_does(text):
    _cross_check(text, missing=MISSING)


@pytest.mark.parametrize("text, planted", [
    ("optax.adamw(learning_rate=0.05, eps=0.1, weight_decay=0.3)", {"missing_grad": "skip"}),
    ("keras.Adam(learning_rate=0.05, epsilon=0.1)", {"step_counter": "per_parameter"}),
])
def test_a_planted_missing_gradient_semantics_is_caught(text, planted):
    spec = parse_spec(text)
    _cross_check(text, with_changes(spec, **planted))  # every gradient present: the same
    with pytest.raises(AssertionError):
        _cross_check(text, with_changes(spec, **planted), missing=MISSING)


def _names(call) -> set:
    return {call.dialect.name}.union(*(_names(c) for c in call.nested))


@pytest.mark.parametrize("framework", sorted(CASES))
def test_every_dialect_of_the_framework_is_cross_checked(framework):
    covered = set().union(*(_names(parse_call(t, FRAMEWORKS)) for t in CASES[framework]))
    assert {d.name for d in FRAMEWORKS[framework].dialects} <= covered


# -- bitsandbytes: its AdamW is two rules, by device ---------------------------------------------
# The dialect models the CUDA kernel (decay after the step, REFERENCE.md); on the CPU bitsandbytes
# 0.50 runs torch's AdamW. Both halves are checked against the real package.

def _bnb_run(build, device):
    params = [torch.tensor(p, dtype=torch.float32, device=device, requires_grad=True)
              for p in _problem()[0]]
    opt = build(params)
    out = []
    for g in _problem()[1]:
        for p, x in zip(params, g):
            p.grad = torch.tensor(x, dtype=torch.float32, device=device)
        opt.step()
        out.append([p.detach().cpu().numpy().copy() for p in params])
    return out


def _close32(real, ours) -> bool:
    """float32 runs a few ulp apart at most (other operation orders), after every step."""
    return all(np.allclose(y, x, rtol=1e-5, atol=1e-6)
               for a, b in zip(real, ours) for x, y in zip(a, b))


def test_bitsandbytes_adamw_on_the_cpu_is_torchs():
    bnb = pytest.importorskip("bitsandbytes", reason="pip install 'optequiv[frameworks]'")
    real = _bnb_run(lambda ps: bnb.optim.AdamW(ps, lr=0.05, weight_decay=0.3), "cpu")
    assert _close32(real, _bnb_run(lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.3),
                                   "cpu"))
    # negative control: the dialect (the CUDA kernel's rule) is another optimizer here
    ours = _bnb_run(torch_optimizer(parse_spec("bnb.AdamW(lr=0.05, weight_decay=0.3)")), "cpu")
    assert not _close32(real, ours)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="CUDA is not available (torch.cuda.is_available() is False)")
def test_bitsandbytes_adamw_on_cuda_is_the_dialect():
    bnb = pytest.importorskip("bitsandbytes", reason="pip install 'optequiv[frameworks]'")
    real = _bnb_run(lambda ps: bnb.optim.AdamW(ps, lr=0.05, weight_decay=0.3), "cuda")
    assert _close32(real, _bnb_run(torch_optimizer(parse_spec(
        "bnb.AdamW(lr=0.05, weight_decay=0.3)")), "cuda"))
