"""Which program a step needs: the structure of a spec at the values a param group holds now.

derive builds a rule's stage list from flags and from whether momentum and weight decay are
switched on, never from their values. torch decides `momentum != 0` and `weight_decay != 0` from
param_groups at every step (a scheduler or a user may change them), and flags may differ per
group, so the generated optimizers pick a program per step from this key; the values themselves
arrive as arguments.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.spec import Spec

ZERO = sp.Integer(0)


def structure_key(spec: Spec, *, momentum_on: bool, decay_on: bool, flags: dict) -> tuple:
    """(name, given items): a hashable description of a structural spec (see program.py).

    `spec` fixes what torch has no keyword for (decay convention, SGD buffer initialisation);
    `flags` are the group's nesterov / maximize / amsgrad / decoupled_weight_decay."""
    given = {"maximize": bool(flags.get("maximize", False))}
    decay = spec.decay
    if spec.family == "sgd":
        given["momentum"] = Y.hyper("momentum") if momentum_on else ZERO
        # torch ignores nesterov while momentum is 0 (no buffer at all)
        given["nesterov"] = bool(flags.get("nesterov", False)) and momentum_on
        given["buffer"] = spec.buffer
    else:
        given["amsgrad"] = bool(flags.get("amsgrad", False))
        if spec.name == "adam" and decay in ("l2", "decoupled"):
            # torch.optim.Adam's keyword picks between the two torch conventions
            decay = "decoupled" if flags.get("decoupled_weight_decay", False) else "l2"
    given["weight_decay"] = Y.hyper("weight_decay") if decay_on else ZERO
    given["decay"] = decay
    return spec.name, tuple(sorted(given.items()))
