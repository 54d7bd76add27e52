"""buffer=lr_inside: Keras 3 / TF SGD momentum, the lr folded into the buffer.

The reference here is Keras's documented rule (keras/src/optimizers/sgd.py, 3.15: its docstring
and update_step; weight decay from base_optimizer._apply_weight_decay: `variable - variable *
wd * lr`, before the update), written below as an exact simulator that shares nothing with
derive/. It is checked against derive's unrolled rule (exact, hypothesis drawing the values),
against the generated optimizers (torch loop, foreach and fused; numpy) in float64, and it
checks the theorem keras-sgd-momentum: equal to torch.optim.SGD at a constant lr, and under a
schedule apart from step 2 by exactly the engine's difference. Negative controls plant a wrong
rule (rule_for=) that the same checks catch.
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings, strategies as st

from optequiv.derive import symbols as Y
from optequiv.derive.catalogue import sgd as sgd_entry
from optequiv.derive.compare import compare
from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.derive.stages import Stage
from optequiv.derive.unroll import unroll
from optequiv.numeric import numpy_step, torch_optimizer
from optequiv.numeric.c_build import find_compiler
from optequiv.numeric.reference import torch_reference

STEPS = 4


def keras_sgd(theta0, grads, lrs, momentum, nesterov=False, weight_decay=0):
    """Keras 3's SGD, exactly as documented: velocity = momentum*velocity - lr*g; w += velocity
    (Nesterov: w += momentum*velocity - lr*g); the velocity starts at 0; with weight_decay, w
    -= w*wd*lr first. Returns [(theta_k, velocity_k)] for k = 1.."""
    theta, velocity, out = theta0, 0, []
    for g, lr in zip(grads, lrs):
        if weight_decay:
            theta = theta - theta * weight_decay * lr
        if momentum:
            velocity = momentum * velocity - lr * g
            theta = theta + (momentum * velocity - lr * g if nesterov else velocity)
        else:
            theta = theta - lr * g
        out.append((theta, velocity))
    return out


def torch_sgd(theta0, grads, lrs, momentum):
    """torch.optim.SGD's documented heavy-ball step (dampening 0): b_1 = g_1, b = mu*b + g,
    theta -= lr*b, the lr of the current step on the whole buffer."""
    theta, buf, out = theta0, None, []
    for g, lr in zip(grads, lrs):
        buf = g if buf is None else momentum * buf + g
        theta = theta - lr * buf
        out.append(theta)
    return out


def spec_text(lr, momentum, nesterov, weight_decay) -> str:
    decay = f", weight_decay={weight_decay}, decay=decoupled" if weight_decay else ""
    return (f"sgd(lr={lr}, momentum={momentum}, nesterov={'true' if nesterov else 'false'}, "
            f"buffer=lr_inside{decay})")


@lru_cache(maxsize=None)
def unrolled(nesterov: bool, decay: bool):
    """theta_k and buf_k of derive's rule, symbolic in the scheduled eta_k, mu, lam, g_k."""
    text = spec_text("eta", "mu", nesterov, "lam" if decay else 0)
    u = unroll(text, STEPS, schedule=[Y.hyper("eta")])
    return [(s.theta, s.state["buf"]) for s in u.steps]


fractions = st.fractions(min_value=-3, max_value=3, max_denominator=50)
rates = st.fractions(min_value=Fraction(1, 50), max_value=2, max_denominator=50)
momenta = st.fractions(min_value=Fraction(1, 50), max_value=Fraction(49, 50), max_denominator=50)


@settings(max_examples=40, deadline=None)
@given(theta0=fractions, grads=st.lists(fractions, min_size=STEPS, max_size=STEPS),
       lrs=st.lists(rates, min_size=STEPS, max_size=STEPS), momentum=momenta,
       nesterov=st.booleans(), weight_decay=st.sampled_from([0, Fraction(1, 10), Fraction(3, 7)]))
def test_unrolled_rule_is_kerass_sgd_exactly(theta0, grads, lrs, momentum, nesterov,
                                            weight_decay):
    expected = keras_sgd(theta0, grads, lrs, momentum, nesterov, weight_decay)
    point = {Y.theta(0): theta0, Y.hyper("mu"): momentum, Y.hyper("lam"): weight_decay}
    point.update({Y.grad(k + 1): g for k, g in enumerate(grads)})
    point.update({Y.stepped(Y.hyper("eta"), k + 1): lr for k, lr in enumerate(lrs)})
    point = {k: sp.Rational(v.numerator, v.denominator) if isinstance(v, Fraction) else v
             for k, v in point.items()}
    for k, ((theta, buf), (want_theta, want_buf)) in enumerate(
            zip(unrolled(nesterov, bool(weight_decay)), expected), 1):
        assert theta.xreplace(point) == want_theta, (k, theta)
        assert buf.xreplace(point) == want_buf, (k, buf)


# -- the generated optimizers against the simulator, float64 ---------------------------------------

IMPLEMENTATIONS = ["loop", "foreach"] + (["fused"] if find_compiler() is not None else [])
CONFIGS = [(Fraction(1, 10), Fraction(9, 10), False, 0), (Fraction(1, 20), Fraction(1, 2), True, 0),
           (Fraction(1, 10), Fraction(9, 10), False, Fraction(1, 10)),
           (Fraction(1, 10), Fraction(4, 5), True, Fraction(1, 100))]
SCHEDULE = [1, Fraction(1, 2), Fraction(3, 4), Fraction(1, 5), 2, Fraction(1, 3)]


def gradients(n: int, steps: int) -> list:
    g = torch.Generator().manual_seed(7)
    return [torch.randn(n, generator=g, dtype=torch.float64) for _ in range(steps)]


def run_generated(spec: str, lrs, grads, implementation: str, rule_for=None):
    """theta and the state's momentum_buffer after each step, the lr set per step through
    param_groups, as a scheduler does."""
    cls = torch_optimizer(spec) if rule_for is None else torch_optimizer(spec, rule_for=rule_for)
    theta0 = torch.linspace(-1, 1, grads[0].numel(), dtype=torch.float64)
    p = torch.nn.Parameter(theta0.clone())
    kwargs = {"loop": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[implementation]
    opt = cls([p], **kwargs)
    out = []
    for g, lr in zip(grads, lrs):
        opt.param_groups[0]["lr"] = float(lr)
        p.grad = g.clone()
        opt.step()
        out.append((p.detach().clone(), opt.state[p]["momentum_buffer"].clone()))
    return theta0, out


def simulated(theta0, grads, lrs, momentum, nesterov, weight_decay):
    """The simulator per coordinate, in exact rationals, as float64 arrays."""
    columns = [keras_sgd(Fraction(float(t)), [Fraction(float(g[i])) for g in grads], lrs,
                         momentum, nesterov, weight_decay) for i, t in enumerate(theta0)]
    return [(np.array([float(c[k][0]) for c in columns]),
             np.array([float(c[k][1]) for c in columns])) for k in range(len(grads))]


def worst(got, want) -> float:
    return max(float(np.max(np.abs(t.numpy() - wt) / (1 + np.abs(wt)))) for (t, _), (wt, _)
               in zip(got, want)) if got else 0.0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("lr, momentum, nesterov, weight_decay", CONFIGS)
def test_generated_optimizer_is_kerass_sgd(implementation, lr, momentum, nesterov,
                                           weight_decay):
    grads = gradients(9, len(SCHEDULE))
    lrs = [lr * s for s in SCHEDULE]
    theta0, got = run_generated(spec_text(lr, momentum, nesterov, weight_decay), lrs, grads,
                                implementation)
    want = simulated(theta0, grads, lrs, momentum, nesterov, weight_decay)
    for (theta, buf), (want_theta, want_buf) in zip(got, want):
        np.testing.assert_allclose(theta.numpy(), want_theta, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(buf.numpy(), want_buf, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("lr, momentum, nesterov, weight_decay", CONFIGS)
def test_numpy_step_is_kerass_sgd(lr, momentum, nesterov, weight_decay):
    grads = gradients(5, len(SCHEDULE))
    step = numpy_step(spec_text(lr, momentum, nesterov, weight_decay))
    theta = np.linspace(-1, 1, 5)
    want = simulated(theta, grads, [lr * s for s in SCHEDULE], momentum, nesterov, weight_decay)
    state = step.init(theta)
    for g, s, (want_theta, want_buf) in zip(grads, SCHEDULE, want):
        state, theta = step(state, theta, g.numpy(), lr=float(lr * s))
        np.testing.assert_allclose(theta, want_theta, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(state["buf"], want_buf, rtol=1e-12, atol=1e-14)


# -- the theorem against the simulators and torch.optim.SGD ---------------------------------------

@pytest.mark.parametrize("nesterov", [False, True])
def test_kerass_sgd_is_torchs_at_a_constant_lr(nesterov):
    """Keras's simulator against torch.optim.SGD itself (float64), constant lr: the theorem's
    first parts; and the schedule parts them."""
    grads = gradients(7, 12)
    lr, momentum = 0.05, Fraction(9, 10)
    p = torch.nn.Parameter(torch.linspace(-1, 1, 7, dtype=torch.float64))
    theta0 = p.detach().clone()
    opt = torch.optim.SGD([p], lr=lr, momentum=float(momentum), nesterov=nesterov)
    got = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        got.append((p.detach().clone(), None))
    want = simulated(theta0, grads, [Fraction(lr)] * len(grads), momentum, nesterov, 0)
    assert worst(got, want) < 1e-13
    assert compare(spec_text("eta", "mu", nesterov, 0).replace(", buffer=lr_inside", ""),
                   spec_text("eta", "mu", nesterov, 0)).equivalent is True


@settings(max_examples=30, deadline=None)
@given(theta0=fractions, grads=st.lists(fractions, min_size=3, max_size=3),
       lrs=st.lists(rates, min_size=3, max_size=3), momentum=momenta)
def test_under_a_schedule_they_part_at_step_2_by_the_engines_difference(theta0, grads, lrs,
                                                                       momentum):
    c = scheduled_comparison()
    keras = [t for t, _ in keras_sgd(theta0, grads, lrs, momentum)]
    torch_ = torch_sgd(theta0, grads, lrs, momentum)
    assert keras[0] == torch_[0]  # step 1 agrees, whatever the schedule
    point = {Y.hyper("mu"): momentum, **{Y.grad(k + 1): g for k, g in enumerate(grads)},
             **{Y.stepped(Y.hyper("eta"), k + 1): lr for k, lr in enumerate(lrs)}}
    point = {k: sp.Rational(v.numerator, v.denominator) for k, v in point.items()}
    assert c.difference.xreplace(point) == keras[1] - torch_[1]
    # the gap is the first gradient's momentum share at the wrong lr: zero only at eta_1 = eta_2
    assert (keras[1] == torch_[1]) == (lrs[0] == lrs[1] or grads[0] == 0)


@lru_cache(maxsize=None)
def scheduled_comparison():
    c = compare("sgd(lr=eta, momentum=mu)", "sgd(lr=eta, momentum=mu, buffer=lr_inside)",
                schedule=[Y.hyper("eta")])
    assert c.equivalent is False and c.first_divergent_step == 2
    return c


def test_the_theorem_is_proven_and_states_the_computed_term():
    from optequiv.proofs.registry import prove

    d = prove("keras-sgd-momentum")
    assert d.final_verdict() == "proven"
    assert d.checked()


# -- torch's class is no reference for it ---------------------------------------------------------

def test_torch_reference_refuses_lr_inside_with_one_line():
    with pytest.raises(UserError) as error:
        torch_reference("sgd(lr=0.1, momentum=0.9, buffer=lr_inside)")
    text = str(error.value)
    assert "\n" not in text and "buffer=lr_inside" in text and "torch.optim.SGD" in text
    # momentum 0: no buffer at all, the same rule as torch's: torch's class is the reference
    cls, kwargs = torch_reference("sgd(lr=0.1, buffer=lr_inside)")
    assert cls is torch.optim.SGD and kwargs["momentum"] == 0


def test_list_shows_the_value_and_its_meaning():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "optequiv.derive", "list", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert "lr_inside" in out and "Keras" in out
    assert "lr_inside" in sgd_entry.BUFFERS


# -- negative controls ----------------------------------------------------------------------------

def _sign_flipped(spec):
    """The velocity with the gradient's sign flipped (buf = momentum*buf + lr*g)."""
    rule = build_rule(spec)
    stages = tuple(Stage(s.name, lambda c, h: c.with_state(
        buf=h["momentum"] * c.state["buf"] + h["lr"] * c.u), s.doc)
        if s.name == "velocity" else s for s in rule.stages)
    return type(rule)(rule.spec, stages, rule.state_names)


def _current_lr_on_the_buffer(spec):
    """torch's arithmetic under Keras's name: the buffer sums gradients and each step scales
    all of it by its own lr (the two agree at a constant lr only)."""
    rule = build_rule(spec)
    if "velocity" not in rule.stage_names():
        return rule
    torch_rule = build_rule(parse_spec(str(spec).replace("buffer=lr_inside", "buffer=zero")))
    return type(rule)(rule.spec, torch_rule.stages, rule.state_names)


@pytest.mark.parametrize("plant", [_sign_flipped, _current_lr_on_the_buffer])
def test_a_planted_wrong_rule_is_caught(plant):
    lr, momentum = Fraction(1, 10), Fraction(9, 10)
    grads = gradients(9, len(SCHEDULE))
    lrs = [lr * s for s in SCHEDULE]
    theta0, got = run_generated(spec_text(lr, momentum, False, 0), lrs, grads, "loop",
                                rule_for=plant)
    want = simulated(theta0, grads, lrs, momentum, False, 0)
    assert worst(got, want) > 1e-3, "the planted rule slipped through"
