"""Hyperparameters given as numbers (to a generated optimizer's constructor or to a numpy step)
are checked by derive's own spec validation, so that every entry point rejects the same values
with the same (torch's) words. No torch import: numpy_step uses it too."""
from __future__ import annotations

import math

import sympy as sp

from optequiv.derive.errors import UserError
from optequiv.derive.spec import make_spec

# torch keywords the generated optimizer refuses when True, on purpose: it has no capturable
# (CUDA graph) or differentiable (autograd through the step) variant
REFUSED = ("capturable", "differentiable")


def refusal(key: str) -> str:
    return f"{key}=True is not supported by the generated optimizer"


def _number(key: str, value):
    """A hyperparameter as an exact SymPy number for derive's validation, and its text as torch
    prints it. NaN stays NaN: derive rejects it for every key (torch's Adam rejects it through
    `not 0.0 <= lr`, its SGD lets it through; a NaN hyperparameter only ever yields NaN)."""
    text = str(value)
    if hasattr(value, "numel") and value.numel() != 1:
        raise UserError(f"Tensor {key} must be 1-element")  # torch's words, for lr
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()  # a 0-dim tensor or array, a numpy scalar
    if not isinstance(value, (int, float)):  # a bool is an int, as torch takes it: lr=True is 1
        raise UserError(f"{key} must be a number, got {text}")
    value = float(value) if isinstance(value, bool) else value
    if math.isnan(value):
        return sp.nan, text
    if math.isinf(value):
        return (sp.oo if value > 0 else -sp.oo), text
    return sp.Rational(value), text


def check_values(spec, values: dict) -> None:
    """Check hyperparameters exactly as the spec language does (derive.spec), so messages are
    torch's: `Invalid learning rate: -1.0`. `values` uses torch's keywords (betas a pair)."""
    entry = spec.entry
    given, sources = {}, {}
    for h in entry.hypers:
        if h.key not in values:
            continue
        if not h.pair:
            given[h.key], sources[h.key] = _number(h.key, values[h.key])
            continue
        pair = tuple(values[h.key])
        if len(pair) != 2:
            raise UserError(f"{h.key} must be a pair "
                            f"({', '.join(s.name for s in h.scalars)}), got {values[h.key]}")
        numbers = [_number(h.key, b) for b in pair]
        given[h.key] = tuple(n for n, _ in numbers)
        sources.update({(h.key, i): text for i, (_, text) in enumerate(numbers)})
    for key in entry.flags:
        if key in values:
            given[key] = bool(values[key])
    for key in entry.all_choices:
        if key != "decay" and key in spec.given:
            given[key] = spec.given[key]
    if "decay" in spec.given and not (entry.decay_flag and spec.decay in ("l2", "decoupled")):
        given["decay"] = spec.decay  # Adam's torch keyword decides l2 / decoupled itself
    for key in REFUSED:
        if values.get(key):
            raise UserError(refusal(key))
    make_spec(spec.name, given, sources)
