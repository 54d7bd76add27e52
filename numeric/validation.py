"""Hyperparameters given as numbers (to a generated optimizer's constructor or to a numpy step)
are checked by derive's own spec validation, so that every entry point rejects the same values
with the same (torch's) words. No torch import: numpy_step uses it too."""
from __future__ import annotations

import math

import sympy as sp

from optequiv.derive.errors import UserError
from optequiv.derive.spec import make_spec

NUMBERS = ("lr", "momentum", "dampening", "weight_decay", "eps")
FLAGS = ("nesterov", "maximize", "amsgrad", "decoupled_weight_decay")


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
    torch's: `Invalid learning rate: -1.0`."""
    given, sources = {}, {}
    for key in NUMBERS:
        if key in values:
            given[key], sources[key] = _number(key, values[key])
    if "betas" in values:
        pair = tuple(values["betas"])
        if len(pair) != 2:
            raise UserError(f"betas must be a pair (beta1, beta2), got {values['betas']}")
        numbers = [_number("betas", b) for b in pair]
        given["betas"] = tuple(n for n, _ in numbers)
        sources.update({("betas", i): text for i, (_, text) in enumerate(numbers)})
    for key in FLAGS:
        if key in values:
            given[key] = bool(values[key])
    if spec.family == "sgd":
        given["buffer"] = spec.buffer
    if "decay" in spec.given and not (spec.name == "adam" and spec.decay in ("l2", "decoupled")):
        given["decay"] = spec.decay  # adam's torch keyword decides l2 / decoupled itself
    for key in ("capturable", "differentiable"):
        if values.get(key):
            raise UserError(f"{key}=True is not supported by the generated optimizer")
    make_spec(spec.name, given, sources)
