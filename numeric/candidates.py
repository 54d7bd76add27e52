"""What an unknown optimizer might be: every catalogue entry at torch's conventions and its nearest
variants (numeric.variants), with the hyperparameters the user did not give left as symbols to fit.

Everything is read from the catalogue (derive.catalogue.ENTRIES: scalars, flags, choice keys) and
from numeric.variants, so a key added to an entry is a candidate here without a change. A scalar
whose torch default is 0 (weight_decay, momentum, dampening), or that is one of the entry's
switches (AdamW's weight_decay), is a symbol in one template and 0 in another: 0 switches a
branch off (no buffer at all; Nesterov needs dampening 0), and a fit only approaches 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from optequiv.derive import catalogue
from optequiv.derive import symbols as Y
from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import Spec, make_spec

from .variants import _current, _shape, nearest_variants


@dataclass(frozen=True)
class Candidate:
    """A structure to fit: `template` holds a symbol (canonical name) for each scalar in
    `unknowns`, numbers for the rest, and its flags and choice keys."""

    template: Spec
    unknowns: tuple  # the entry's Scalars left to fit, in the entry's order
    fixed: tuple  # ((canonical name, number), ...): given by the user, or 0 by the template

    @property
    def entry(self):
        return self.template.entry

    def label(self) -> str:
        return str(self.template)


def known_values(hyper) -> dict:
    """`hyper` ({torch key: value}) checked as far as no entry is needed: keys are strings,
    numbers are finite real numbers (a pair for a pair key), flags booleans."""
    if hyper is None:
        return {}
    if not isinstance(hyper, dict):
        raise UserError(f"hyper must be a dict of torch's keyword names to values, got "
                        f"{type(hyper).__name__}")
    valid = {k for e in catalogue.ENTRIES.values() for k in e.keys}
    for key, value in hyper.items():
        if key not in valid:
            raise UserError(f"hyper: unknown key {key!r}; keys of the catalogue: "
                            f"{', '.join(sorted(valid))}")
    return dict(hyper)


def _number(key: str, value) -> sp.Expr:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or value != value or value in (float("inf"), float("-inf")):
        raise UserError(f"hyper: {key} must be a finite number, got {value!r}")
    return sp.Rational(Fraction(repr(float(value))))  # the decimal the user typed: 3e-4 exactly


def _given(entry, known: dict, zero: str | None) -> tuple | None:
    """The template's given dict and fixed values for `entry`, or None where a known value does
    not fit the entry (a pair for a single number, a choice it does not offer)."""
    given, fixed = {}, {}
    for h in entry.hypers:
        value = known.get(h.key)
        if value is not None:
            parts = tuple(value) if isinstance(value, (tuple, list)) else (value,)
            if len(parts) != len(h.scalars):
                return None
            numbers = tuple(_number(h.key, v) for v in parts)
            fixed.update({s.name: n for s, n in zip(h.scalars, numbers)})
        else:
            numbers = tuple(sp.Integer(0) if s.name == zero else Y.hyper(s.name)
                            for s in h.scalars)
            fixed.update({s.name: n for s, n in zip(h.scalars, numbers) if n == 0})
        given[h.key] = numbers if h.pair else numbers[0]
    choices = entry.all_choices
    for key, value in known.items():
        if key in entry.flags:
            if not isinstance(value, bool):
                raise UserError(f"hyper: {key} must be True or False, got {value!r}")
            given[key] = value
        elif key in choices:
            if value not in choices[key]:
                return None
            given[key] = value
    return given, fixed


def _agrees(spec: Spec, known: dict) -> bool:
    """A variant keeps every flag and choice the user gave."""
    entry = spec.entry
    return all(_current(spec, k) == v for k, v in known.items()
               if k in entry.flags or k in entry.all_choices)


def candidates(hyper=None) -> list:
    """Every structure `hyper` allows, each once: for each entry having every key of `hyper`,
    the template at torch's conventions and its nearest variants, once with each zero-default
    scalar at 0."""
    known = known_values(hyper)
    out, seen = [], set()
    for entry in catalogue.ENTRIES.values():
        if not set(known) <= set(entry.keys):
            continue
        zeros = [s.name for s in entry.scalars if s.name not in _scalar_names(entry, known)
                 and (Fraction(s.default) == 0 or s.name in entry.switches)]
        for zero in [None, *zeros]:
            made = _given(entry, known, zero)
            if made is None:
                continue
            given, fixed = made
            try:
                base = make_spec(entry.name, given)
            except UserError:
                continue
            for spec in [base, *nearest_variants(base)]:
                if not _agrees(spec, known):
                    continue
                unknowns = tuple(s for s in entry.scalars if s.name not in fixed)
                key = (entry.name, _shape(build_rule(spec)), tuple(sorted(fixed.items())))
                if key in seen:
                    continue
                seen.add(key)
                out.append(Candidate(spec, unknowns, tuple(sorted(fixed.items()))))
    if not out:
        raise UserError(f"hyper: no catalogue entry takes {', '.join(map(repr, known))} "
                        "together with these values")
    return out


def _scalar_names(entry, known: dict) -> set:
    return {s.name for h in entry.hypers if h.key in known for s in h.scalars}


__all__ = ["Candidate", "candidates", "known_values"]
