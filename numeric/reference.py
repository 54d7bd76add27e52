"""torch.optim as the independent reference: the class and keyword arguments a spec denotes.

Only the mapping of names lives here (read from the catalogue entry); torch's update rules are
never copied into this project.
"""
from __future__ import annotations

from fractions import Fraction

from optequiv.derive import catalogue
from optequiv.derive.catalogue.base import MISSING
from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import Spec, as_spec, fmt_number, with_changes

# torch.optim's implementations of one class, by the keyword arguments that select them
IMPLEMENTATIONS = {"loop": {"foreach": False}, "foreach": {"foreach": True},
                   "fused": {"fused": True}}
_MACHINERY = ("foreach", "fused", "capturable", "differentiable")


def _rule_shape(spec: Spec) -> tuple:
    rule = build_rule(spec)
    return rule.stage_names(), tuple(rule.initial_state().items())


def _torch_entry(spec: Spec):
    """The entry whose torch class implements `spec`'s decay, and its decay flag's value."""
    entry = spec.entry
    if not spec.entry.has("weight_decay") or not spec.decay_on() \
            or spec.decay == entry.decays[0]:
        return entry, False
    if entry.decay_flag and spec.decay == "decoupled":
        return entry, True
    if spec.decay in entry.torch_decays:
        return catalogue.ENTRIES[entry.torch_decays[spec.decay]], False
    native = entry.decays[0] + (" and decay=decoupled" if entry.decay_flag else "")
    raise UserError(f"{spec} has no torch.optim class: {entry.torch_class}'s weight_decay is "
                    f"decay={native}, not decay={spec.decay}")


def torch_reference(spec) -> tuple:
    """(torch optimizer class, keyword arguments) implementing `spec`, all values numeric."""
    import torch

    spec = as_spec(spec)
    if spec.entry.torch_class is None:
        raise UserError(f"{spec} has no torch.optim class: torch has no {spec.name} "
                        f"(the reference is {spec.entry.reference})")
    for key, values in spec.entry.all_choices.items():
        default = next(iter(values))
        # a missing-gradient key never changes the rule, only what a step without a gradient
        # does, which torch's class does in its own way
        if key != "decay" and spec.given.get(key, default) != default \
                and (key in MISSING or
                     _rule_shape(spec) != _rule_shape(with_changes(spec, **{key: default}))):
            raise UserError(f"{spec} has no torch.optim class: {spec.entry.torch_class} "
                            f"implements {key}={default} only; {key}={spec.given[key]} is "
                            "checked against the generated reference instead")
    entry, decoupled = _torch_entry(spec)
    h = {k: float(v) for k, v in spec.hyper(numeric=True).items()}
    kwargs = {}
    for hp in entry.hypers:
        parts = tuple(h[s.name] for s in hp.scalars)
        if not hp.torch:
            if hp.key in entry.own_for(spec) \
                    and parts != tuple(float(Fraction(s.default)) for s in hp.scalars):
                shown = spec.sources.get(hp.key) or fmt_number(spec.given[hp.key])  # as typed
                raise UserError(f"{spec} has no torch.optim class: {entry.torch_class} has no "
                                f"{hp.key}; {hp.key}={shown} is checked against "
                                "the generated reference instead")
            continue
        kwargs[hp.key] = parts if hp.pair else parts[0]
    for flag in entry.flags:
        kwargs[flag] = decoupled if flag == entry.decay_flag else spec.flag(flag)
    cls = getattr(torch.optim, entry.torch_class.rsplit(".", 1)[-1])
    return cls, kwargs


def has_torch_class(spec: Spec) -> bool:
    try:
        torch_reference(spec)
    except UserError:
        return False
    return True
