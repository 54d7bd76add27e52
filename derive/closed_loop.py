"""An open-loop gradient sequence as a closed loop: the polynomial loss whose gradient takes the
value g_i where step i evaluates it.

The engine refutes on open-loop iterates (derive.compare: any gradient sequence is realised by
some loss). That loss is concrete: both rules visit the same points theta_0 ... theta_{k-1}
until they part at step k, so a loss whose gradient is g_i at theta_{i-1} makes the closed-loop
runs the open-loop ones. At distinct points the interpolating polynomial p (Lagrange) through
(theta_{i-1}, g_i) is that gradient, and its integral a loss anyone can run; rational points
and gradients give rational coefficients. A point visited twice has one gradient: Rprop stays
put after a sign flip (that gradient counts as 0), so the next gradient is the one it flipped
on, and a later g_i at a point seen before is forced to the earlier one. Piecewise rules
(Lion's sign, Rprop's switches and clamps) part only on some regions of the gradients, which a
fixed loss such as theta**2/2 may never reach; an interpolated one goes wherever an open-loop
witness does. The caller verifies every loss by exact closed-loop replay before reporting it.
"""
from __future__ import annotations

import sympy as sp

THETA = sp.Symbol("theta")  # the loss's variable, as the counterexample prints it


def visited(rule, hyper_at, state, theta0, grads) -> tuple | None:
    """(points, gradients): theta_0 ... theta_{k-1} where the run on `grads` evaluates its
    gradients, each with the gradient the loss must have there (the earlier one at a point seen
    before). None where a point is not rational (its loss would have irrational coefficients)."""
    theta, points, values = theta0, [], []
    for i, g in enumerate(grads, 1):
        if not (isinstance(theta, sp.Basic) and theta.is_Rational):
            return None
        if theta in points:
            g = values[points.index(theta)]
        points.append(theta)
        values.append(g)
        state, theta = rule.step(state, theta, g, hyper_at(i))
    return points, values


def loss_through(points, values) -> tuple:
    """(loss, gradient): polynomials in THETA, gradient(points[i]) = values[i] (repeated points
    carry equal values: visited sees to it), loss its integral (no constant)."""
    data = list(dict(zip(points, values)).items())
    grad = sp.expand(sp.interpolate(data, THETA)) if len(data) > 1 else sp.sympify(data[0][1])
    return sp.expand(sp.integrate(grad, THETA)), grad


def gradient_function(grad: sp.Expr):
    """theta -> the polynomial's exact value there (Horner on the rational coefficients)."""
    coeffs = sp.Poly(grad, THETA).all_coeffs()

    def at(theta):
        out = sp.Integer(0)
        for c in coeffs:
            out = out * theta + c
        return out
    return at


__all__ = ["THETA", "visited", "loss_through", "gradient_function"]
