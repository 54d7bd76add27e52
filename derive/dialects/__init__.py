"""Dialects: other frameworks' optimizers as specs (`keras.AdamW(learning_rate=1e-3)`).

One module per framework holds its calls (derive.dialects.base says what a dialect is); each
call maps onto a catalogue entry plus issue 11's variant keys, so that every command (compare,
unroll, prove, check, crosscheck) takes it: parse_spec hands a dotted name here. Adding a
framework is its module plus its name in MODULES.
"""
from __future__ import annotations

from dataclasses import replace
from importlib import import_module

import sympy as sp

from ..errors import UserError
from .parse import Call, parse_call

MODULES = ("torch", "optax", "keras", "transformers", "tfa", "fastai", "timm", "bitsandbytes",
           "paddle", "mxnet")
FRAMEWORKS = {f.name: f for f in (import_module(f".{m}", __name__).FRAMEWORK for m in MODULES)}


def parse(text: str):
    """A framework's call -> the catalogue Spec it is, keeping the call as written (Spec.call)."""
    return spec_of(parse_call(text, FRAMEWORKS), " ".join(text.split()))


def spec_of(call: Call, text: str = ""):
    from ..spec import make_spec  # derive.spec hands dotted names here: imported when used

    from .. import catalogue

    name, given = call.framework.finish(call.built())
    # a mapping's literal 0 (Keras' weight_decay=None: off) as the number the spec language has
    given = {k: sp.Integer(v) if type(v) is int else v for k, v in given.items()}
    entry = catalogue.entry(name)
    choices = entry.all_choices
    absent = [f"{k}={v}" for k, v in given.items() if k not in entry.keys
              or (k in choices and v not in choices[k])]
    if absent:
        raise UserError(f"{call.name} needs optequiv's {', '.join(absent)} on {name} "
                        "(issue 11's variant keys), which this catalogue does not have")
    try:
        spec = make_spec(name, given, _sources(call, given))
    except UserError as error:
        raise UserError(f"{text or call.name}: {error}") from None
    return replace(spec, call=text or call.name)


def _sources(call: Call, given: dict) -> dict:
    """The user's text for each catalogue value that is one framework value unchanged, so that
    a message shows 1e-3 as written (derive.spec's sources)."""
    written = [(call.values[k], t) for k, t in call.texts.items()]
    out = {}
    for key, value in given.items():
        parts = value if isinstance(value, tuple) else (value,)
        for i, part in enumerate(parts):
            if not isinstance(part, sp.Expr):
                continue
            text = next((t for v, t in written if not isinstance(v, tuple) and v is not None
                         and isinstance(v, sp.Expr) and v == part), None)
            if text is not None:
                out[(key, i) if isinstance(value, tuple) else key] = text
    return out


def dialects(framework: str) -> tuple:
    try:
        return FRAMEWORKS[framework].dialects
    except KeyError:
        raise UserError(f"unknown framework {framework!r}; frameworks with dialects: "
                        f"{', '.join(FRAMEWORKS)}") from None


__all__ = ["FRAMEWORKS", "MODULES", "dialects", "parse", "spec_of"]
