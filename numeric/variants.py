"""A spec's nearest variants: the optimizers one convention away from it.

One convention is one value of a key the spec language offers for conventions, read from
derive.spec: another `decay=` (l2, decoupled, independent, after), another `buffer=`, or one flag
flipped (amsgrad, nesterov, maximize, decoupled_weight_decay). Nothing here names an optimizer.
A variant torch would not build (nesterov without momentum) is left out; so is one whose rule is
the spec's own (any `decay=` when weight_decay is 0: torch takes the same branch for all of them),
since no comparison could tell them apart and none needs to. eps inside or outside the square
root is a convention the spec language cannot express, so it is not among them.

These are the wrong optimizers most likely to pass a numeric check by accident: a check that
cannot tell the spec from them at its settings has not shown much (numeric.testing). Some are
the spec itself at particular values (buffer=zero with dampening 0 is torch's buffer: both start
at the first gradient): `same_optimizer_at` proves that, so that it is not mistaken for a
resolution the check failed to reach.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols
from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import Spec, as_spec, make_spec


def _shape(rule) -> tuple:
    """What makes two rules the same optimizer for every value of the hyperparameters."""
    return rule.stages, rule.state_names, tuple(rule.initial_state().items())


def _current(spec: Spec, key: str):
    return spec.flag(key) if key in spec.entry.flags else getattr(spec, key)


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


def nearest_variants(spec) -> list:
    """The specs one convention away from `spec` that are other optimizers, in key order."""
    spec = as_spec(spec)
    seen = {_shape(build_rule(spec))}
    out = []
    choices = spec.entry.all_choices
    for key in spec.entry.keys:
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
    if a.state_names != b.state_names:
        return False
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
