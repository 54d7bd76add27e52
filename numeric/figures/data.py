"""The numbers behind each figure, computed without matplotlib (so tests can check them).

- trajectories: theta_t on f(theta) = h/2 (theta - theta_star)^2 from the generated numpy
  optimizers, L2 against decoupled decay with the same coefficients;
- effective decay: after T steps of Adam + L2 on coordinates whose gradients have scales s_i,
  the decay each coordinate actually gets per unit lr, lambda/(sqrt(v_hat) + eps), read from the
  optimizer's own state; AdamW's is lambda in every coordinate;
- heavy-ball roots: the modulus of the dominant root of the characteristic polynomial of the
  gradient-free step (proofs.theorems.heavy_ball, from the symbolic rules), as lr*lambda and mu
  vary.
"""
from __future__ import annotations

import numpy
import sympy as sp

from optequiv.numeric import numpy_step

LOSS = {"h": 1.0, "theta_star": 2.0}  # a minimum away from 0, so that decay shows
SGD_PAIR = ("sgd(lr=0.05, momentum=0.9, weight_decay=0.5)",
            "sgd(lr=0.05, momentum=0.9, weight_decay=0.5, decay=decoupled)")
ADAM_PAIR = ("adam(lr=0.05, weight_decay=0.5)", "adamw(lr=0.05, weight_decay=0.5)")
STEPS = 500


def trajectory(spec: str, steps: int = STEPS, theta0: float = 0.0) -> numpy.ndarray:
    step, theta, state = numpy_step(spec), numpy.array([theta0]), None
    out = [theta0]
    for _ in range(steps):
        grad = LOSS["h"] * (theta - LOSS["theta_star"])
        state, theta = step(state, theta, grad)
        out.append(float(theta[0]))
    return numpy.array(out)


def effective_decay(scales, lam: float = 0.1, eps: float = 1e-8, steps: int = 200,
                    seed: int = 0) -> dict:
    """lambda/(sqrt(v_hat_T) + eps) per coordinate for Adam + L2, from the optimizer's state
    after `steps` steps on gradients of the given scales (random signs and sizes around them)."""
    rng = numpy.random.default_rng(seed)
    scales = numpy.asarray(scales, dtype=float)
    spec = f"adam(lr=1e-3, weight_decay={lam}, eps={eps})"
    step, theta, state = numpy_step(spec), numpy.ones_like(scales), None
    for _ in range(steps):
        state, theta = step(state, theta, scales * rng.standard_normal(scales.shape))
    beta2 = 0.999
    v_hat = state["v"] / (1 - beta2 ** state["t"])
    return {"scales": scales, "adam_l2": lam / (numpy.sqrt(v_hat) + eps),
            "adamw": numpy.full_like(scales, lam)}


def heavy_ball_radius(mus, decays, lr: float = 0.1) -> dict:
    """The per-step shrink factor of theta with the gradient off: the largest |root| of the
    rule's characteristic polynomial among the modes that torch's start excites. The step matrix
    M (on theta, buf) and the state after torch's first step both come from the symbolic rules;
    for decoupled decay that state is the theta mode itself (the buffer copies g = 0), so its
    buffer mode mu never shows in theta."""
    from optequiv.derive import symbols as Y
    from optequiv.derive.rules import build_rule
    from optequiv.derive.spec import parse_spec
    from optequiv.proofs.theorems.heavy_ball import DECOUPLED, L2, linear_map

    symbols = (Y.hyper("lr"), Y.hyper("momentum"), Y.hyper("weight_decay"))
    out = {}
    for name, text in (("L2", L2), ("decoupled", DECOUPLED)):
        spec = parse_spec(text)
        rule = build_rule(spec)
        state, theta = rule.step(rule.initial_state("start"), Y.theta(0), sp.Integer(0),
                                 spec.hyper())
        start = sp.lambdify(symbols, [theta.subs(Y.theta(0), 1),
                                      state["buf"].subs(Y.theta(0), 1)], "numpy")
        matrix = sp.lambdify(symbols, linear_map(text), "numpy")
        radius = numpy.empty((len(mus), len(decays)))
        for i, mu in enumerate(mus):
            for j, lam in enumerate(decays):
                roots, vectors = numpy.linalg.eig(numpy.array(matrix(lr, mu, lam), dtype=float))
                weights = numpy.linalg.lstsq(vectors, numpy.array(start(lr, mu, lam), dtype=float),
                                             rcond=None)[0]
                excited = numpy.abs(weights) > 1e-9 * numpy.abs(weights).max()
                if not numpy.isfinite(weights).all() or not excited.any():
                    excited[:] = True  # a defective M (a double root): every mode counts
                radius[i, j] = numpy.abs(roots[excited]).max()
        out[name] = radius
    return {"mus": numpy.asarray(mus), "decays": numpy.asarray(decays), "lr": lr, **out}
