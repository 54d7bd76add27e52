"""The frameworks' conventions as optequiv computes them: one row per dialect (README's table).

Each row is computed, not written: the catalogue spec the call is (the dialect's mapping), the
keys on which it is not torch's class (its conventions), and `translate --to torch` (the torch
call that reproduces it, with the mapping, or the first step at which the nearest one parts).
The call's lr and weight-decay keywords are found by planting a symbol in each numeric keyword
and seeing which of the entry's scalars it reaches (no list of keyword names here); they take
eta and w, so that a mapping shows how the coefficients translate.

    python -m optequiv.derive.dialects.table   # prints the Markdown table (minutes: translate)
"""
from __future__ import annotations

import sympy as sp

from .. import catalogue
from ..errors import UserError
from ..spec import fmt_number
from ..symbols import hyper
from . import FRAMEWORKS, parse
from .base import REQUIRED

ROLES = {"lr": "eta", "weight_decay": "w"}  # the entry's scalar -> the symbol its keyword takes


def _role(framework, dialect, keyword) -> str | None:
    probe = hyper("_probe")
    try:
        spec = parse(f"{framework.prefixes[0]}.{dialect.name}({keyword.name}=_probe)")
    except UserError:
        return None
    h = spec.hyper()
    found = [name for name in ROLES if h.get(name) is not None and h[name].has(probe)]
    return found[0] if len(found) == 1 else None


def call_text(framework, dialect) -> str | None:
    """The dialect's call with its lr and weight decay symbolic (eta, w), the rest at the
    framework's defaults; None for a call that is no optimizer of its own (optax.chain)."""
    if dialect.variadic:
        return None
    args = []
    for k in dialect.keywords:
        if k.flag or k.pair:
            continue
        role = _role(framework, dialect, k)
        if role is not None:
            args.append(f"{k.name}={ROLES[role]}")
        elif k.default is REQUIRED:
            return None
    text = f"{framework.prefixes[0]}.{dialect.name}({', '.join(args)})"
    try:
        parse(text)
    except UserError:
        return None
    return text


def conventions(spec) -> list:
    """`key=value` for each key on which `spec` is not its torch class at torch's defaults: the
    choice keys (decay, eps_added_to, buffer, step_counter, ...) and the numbers whose default
    the framework sets otherwise (Keras' epsilon 1e-7)."""
    entry = spec.entry
    out = []
    torch_default = catalogue.ENTRIES[entry.name].defaults()
    for key, values in entry.all_choices.items():
        value = spec.decay if key == "decay" else spec.choice(key)
        native = torch_default.get(key, next(iter(values)))
        if key == "decay" and not spec.decay_on():
            continue
        if value != native:
            out.append(f"{key}={value}")
    given = spec.hyper()
    for h in entry.hypers:
        for s in h.scalars:
            value = given[s.name]
            if value.is_number and value != sp.Rational(s.default) and h.key in spec.given:
                out.append(f"{s.name}={fmt_number(value)}")
    return out


def rows(frameworks=None, steps: int = 3) -> list:
    """(call, catalogue spec, conventions, torch translation) per dialect, in module order."""
    from ..translate import translate

    out = []
    for name, framework in FRAMEWORKS.items():
        if name == "torch" or (frameworks and name not in frameworks):
            continue
        for dialect in framework.dialects:
            text = call_text(framework, dialect)
            if text is None:
                continue
            spec = parse(text)
            t = translate(spec, "torch", steps=steps)
            if t.exact:
                torch_call = f"`{t.call}`"
            elif t.first_divergent_step is not None:
                torch_call = f"none; nearest `{t.call}` parts at step {t.first_divergent_step}"
            elif t.tried:
                torch_call = "undecided"
            else:
                torch_call = f"none: {t.reason}"
            out.append((text, str(spec), conventions(spec), torch_call))
    return out


def markdown(table: list) -> str:
    lines = ["| call | is the catalogue spec | not torch's on | torch call that reproduces it |",
             "|---|---|---|---|"]
    for call, spec, differs, torch_call in table:
        shown = ", ".join(f"`{d}`" for d in differs) or "nothing"
        lines.append(f"| `{call}` | `{spec}` | {shown} | {torch_call} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(rows()))
