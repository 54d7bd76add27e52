"""A spec's nearest variants: the optimizers one convention away from it.

One convention is one value of a key the spec language offers for conventions, read from
derive.spec: another `decay=` (l2, decoupled, independent, after), another `buffer=`, or one flag
flipped (amsgrad, nesterov, maximize, decoupled_weight_decay). Nothing here names an optimizer.
A variant torch would not build (nesterov without momentum) is left out; so is one whose rule is
the spec's own (any `decay=` when weight_decay is 0: torch takes the same branch for all of them),
since no comparison could tell them apart and none needs to. eps inside or outside the square
root is a convention the spec language cannot express, so it is not among them. Asked for
(missing_grads=True), the keys that decide a step without a gradient (step_counter,
missing_grad) give variants too, where they change something for the spec.

These are the wrong optimizers most likely to pass a numeric check by accident: a check that
cannot tell the spec from them at its settings has not shown much (numeric.testing). Some are
the spec itself at particular values (buffer=zero with dampening 0 is torch's buffer: both start
at the first gradient): `same_optimizer_at` proves that, so that it is not mistaken for a
resolution the check failed to reach.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols
from optequiv.derive.catalogue.base import MISSING
from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import Spec, as_spec, make_spec


def _shape(rule) -> tuple:
    """What makes two rules the same optimizer for every value of the hyperparameters."""
    return rule.stages, rule.state_names, tuple(rule.initial_state().items())


def _current(spec: Spec, key: str):
    return spec.convention(key)


def _without_gradient(spec: Spec) -> tuple:
    """What a missing-gradient key changes for `spec` at its values: whether the step count
    reaches the parameter or the state (Adam's bias correction; not Adagrad at lr_decay 0), so
    that a count that advances without a gradient shows, and whether a step on a zero gradient
    moves anything (not plain SGD: theta - lr*0 is theta). A value that changes nothing there
    is the spec itself, even numerically. Decided on one step from a fixed exact mid-run state
    (a symbolic simplify of RAdam's piecewise step takes seconds): a difference found is
    certain; none found means the variant is left out, never a verdict."""
    rule = build_rule(spec)
    h = {**spec.hyper(numeric=True), "lr": sp.Rational(1, 7)}
    counts = spec.entry.counts

    def step(t, g):
        state = {n: sp.Integer(t) if n in counts else sp.Rational(3 + 2 * i, 11 + 4 * i)
                 for i, n in enumerate(rule.state_names)}
        new, theta = rule.step(state, sp.Rational(5, 13), g, h)
        return state, [theta] + [new[n] for n in rule.state_names if n not in counts]

    def differ(xs, ys) -> bool:
        return any(abs(sp.N(x - y, 40)) > sp.Float("1e-30") for x, y in zip(xs, ys))

    state, moved = step(3, sp.Integer(0))
    moved = differ(moved, [sp.Rational(5, 13)] + [state[n] for n in rule.state_names
                                                   if n not in counts])
    counted = bool(counts) and differ(step(3, sp.Rational(3, 5))[1], step(4, sp.Rational(3, 5))[1])
    counter = "own" if spec.choice("step_counter") == "per_parameter" else "shared"
    missing = spec.choice("missing_grad")
    # on zeros every parameter steps at every step: its count is the group's (global and
    # per_group differ only for a group added after the first step, which no scenario does)
    return ((counter if counted and missing == "skip" else None),
            (missing if moved or counted else None))


def _with(spec: Spec, key: str, value) -> Spec | None:
    """`spec` with key=value, or None when torch would not build it. A key given that spells the
    old convention another way (adam's decoupled_weight_decay=true is decay=decoupled) would
    contradict the new value: it is dropped, when that leaves the new value in force."""
    given = {**spec.given, key: value}
    tries = [given] + [{k: v for k, v in given.items() if k != other} for other in spec.given
                       if other != key and (other in spec.entry.flags
                                            or other in spec.entry.all_choices)]
    for attempt in tries:
        try:
            variant = make_spec(spec.name, attempt, dict(spec.sources))
        except UserError:
            continue
        if _current(variant, key) == value:
            return variant
    return None


def nearest_variants(spec, missing_grads: bool = False) -> list:
    """The specs one convention away from `spec` that are other optimizers, in key order.
    missing_grads: also those that differ only where a parameter has no gradient at a step
    (step_counter, missing_grad: the same rule, another machinery), for a scenario that has
    such steps; each only where it changes something for `spec` (_without_gradient)."""
    spec = as_spec(spec)
    seen = {_shape(build_rule(spec))}
    own = _without_gradient(spec) if missing_grads else None
    out = []
    choices = spec.entry.all_choices
    for key in spec.entry.keys:
        if key in MISSING:
            if missing_grads:
                for value in (v for v in choices[key] if v != _current(spec, key)):
                    variant = _with(spec, key, value)
                    if variant is None:
                        continue
                    shape = (_shape(build_rule(variant)), _without_gradient(variant))
                    if shape[1] != own and shape not in seen:
                        seen.add(shape)
                        out.append(variant)
            continue
        if key in choices:
            values = [v for v in choices[key] if v != _current(spec, key)]
        elif key in spec.entry.flags:
            values = [not spec.flag(key)]
        else:
            continue
        for value in values:
            variant = _with(spec, key, value)
            if variant is None:
                continue
            shape = _shape(build_rule(variant))
            if shape not in seen:
                seen.add(shape)
                out.append(variant)
    return out


def same_optimizer_at(spec, variant, varying=("lr",)) -> bool:
    """True when `variant` is proven to be `spec` at spec's hyperparameter values (those in
    `varying` kept symbolic: numeric.testing's lr schedule changes the lr every step): one step
    from torch's fresh state, and one from a general state, give identical state and parameter
    (simplify of the difference is 0). By induction on the steps, every trajectory is then the
    same. False means not proven (the state correspondence may be other than the identity)."""
    a, b = build_rule(as_spec(spec)), build_rule(as_spec(variant))
    if a.state_names != b.state_names or any(
            a.spec.choice(key) != b.spec.choice(key) for key in MISSING):
        return False  # the rules say nothing of a step without a gradient
    hs = [{**r.spec.hyper(numeric=True), **{key: symbols.hyper(key) for key in varying}}
          for r in (a, b)]
    theta, g = symbols.theta(0), symbols.grad(1)
    for start in ("start", "state"):
        (sa, ta), (sb, tb) = (r.step(r.initial_state(start, h), theta, g, h)
                              for r, h in zip((a, b), hs))
        pairs = [(ta, tb)] + [(sa[k], sb[k]) for k in a.state_names]
        if any((x is None) != (y is None) or x is not None and sp.simplify(x - y) != 0
               for x, y in pairs):
            return False
    return True


__all__ = ["nearest_variants", "same_optimizer_at"]
