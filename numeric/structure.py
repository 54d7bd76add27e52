"""Which program a step needs: the structure of a spec at the values a param group holds now.

derive builds a rule's stage list from flags and from the entry's switches (momentum != 0,
weight_decay != 0), never from their values. torch decides those from param_groups at every
step (a scheduler or a user may change them), and flags may differ per group, so the generated
optimizers pick a program per step from this structure; the values themselves arrive as
arguments.
"""
from __future__ import annotations

from types import MappingProxyType

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.catalogue.base import MISSING
from optequiv.derive.spec import Spec

ZERO = sp.Integer(0)


def structure_key(spec: Spec, *, h: dict, flags: dict) -> Spec:
    """The structural Spec (a hashable value) of `spec` for a group with canonical values `h`
    and flags `flags`: each switch is its symbol or 0, each flag the group's.

    `spec` fixes what torch has no keyword for (decay convention, SGD buffer initialisation).
    Not revalidated: a group may hold what no constructor accepts (nesterov while a scheduler
    set momentum to 0, which torch then ignores, as the stages do)."""
    entry = spec.entry
    given = {f: bool(flags.get(f, default)) for f, default in entry.flags.items()
             if f != entry.decay_flag}
    for key, values in entry.all_choices.items():
        if key != "decay" and key not in MISSING:  # the optimizer's machinery reads those
            given[key] = spec.given.get(key, next(iter(values)))
    for name in entry.switches:
        given[name] = Y.hyper(name) if h.get(name, 0) != 0 else ZERO
    if entry.has("weight_decay"):
        decay = spec.decay
        if entry.decay_flag and decay in ("l2", "decoupled"):
            # torch's keyword (Adam's decoupled_weight_decay) picks between its two conventions
            decay = "decoupled" if flags.get(entry.decay_flag, False) else "l2"
        given["decay"] = decay
    return Spec(spec.name, MappingProxyType(dict(sorted(given.items()))))
