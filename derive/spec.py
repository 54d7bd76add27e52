"""The spec language: `name(key=value, ...)`, with torch.optim's keyword names and semantics.

    spec  := name [ "(" [ arg ("," arg)* ] ")" ]       sgd(lr=eta, momentum=mu, weight_decay=lam)
    name  := a catalogue entry's name (derive.catalogue): sgd | adam | adamw | ...
    arg   := key "=" value
    value := number | true | false | identifier | arithmetic | (value, value)

Extra keys beyond torch's: `decay` (where weight_decay enters) and `buffer` (SGD's momentum buffer
initialisation). A Spec keeps only what the user wrote; `hyper()` fills the rest, either with
symbols (symbolic commands) or with torch's numeric defaults (numeric commands).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType

import sympy as sp

from .errors import UserError
from . import catalogue
from .catalogue import base, sgd
from .grammar import Parser
from .symbols import hyper as hyper_symbol

NAMES = catalogue.NAMES
DECAYS = base.DECAYS
BUFFERS = sgd.BUFFERS
# views over the catalogue, for callers that ask about every optimizer at once
TORCH_DEFAULTS = {name: e.defaults() for name, e in catalogue.ENTRIES.items()}
KEYS = {name: e.keys for name, e in catalogue.ENTRIES.items()}
FLAGS = tuple(dict.fromkeys(f for e in catalogue.ENTRIES.values() for f in e.flags))
CHOICES = {k: tuple(v) for e in catalogue.ENTRIES.values() for k, v in e.all_choices.items()}


def _rational(text: str) -> sp.Rational:
    """torch's default values, written as decimal strings, as exact rationals."""
    f = Fraction(text)
    return sp.Rational(f.numerator, f.denominator)


def fmt_number(value) -> str:
    """Print a number the way torch's messages print the Python value the user passed."""
    if isinstance(value, sp.Integer):
        return str(int(value))
    if isinstance(value, sp.Rational):
        return repr(float(value))
    return str(value)


@dataclass(frozen=True, eq=False)
class Spec:
    """A parsed, validated spec. `given` holds what the user wrote, key -> value, in order.
    A hashable value: equal specs (same name, same values) hash alike, so a Spec keys caches."""

    name: str
    given: MappingProxyType
    # the text the user wrote for each value (key, or (key, index) for betas): messages and
    # printing show 1e-3 as written, not as the exact rational 1/1000 it is computed with
    sources: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    # another framework's call as the user wrote it (derive.dialects), "" for a catalogue spec:
    # what the user calls it, for messages; str() stays the catalogue spec it means
    call: str = ""

    def __eq__(self, other) -> bool:
        return isinstance(other, Spec) and (self.name, dict(self.given)) == \
            (other.name, dict(other.given))

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.given.items(), key=lambda kv: kv[0]))))

    # -- derived views -----------------------------------------------------------------------
    @property
    def entry(self) -> base.Entry:
        return catalogue.ENTRIES[self.name]

    def flag(self, key: str) -> bool:
        return bool(self.given.get(key, self.entry.flags.get(key, False)))

    @property
    def decay(self) -> str:
        if "decay" in self.given:
            return self.given["decay"]
        flag = self.entry.decay_flag
        if flag and self.flag(flag):
            return "decoupled"
        return self.entry.decays[0]

    @property
    def buffer(self) -> str:
        return self.given.get("buffer", "torch")

    def choice(self, key: str) -> str:
        """The value of a choice key (decay=, buffer=, step_counter=, ...): as given, or the
        entry's first value (torch's behaviour)."""
        if key == "decay":
            return self.decay
        return self.given.get(key, next(iter(self.entry.all_choices[key])))

    def convention(self, key: str):
        """A flag's or a choice key's value (the entry's default where not given)."""
        return self.flag(key) if key in self.entry.flags else self.choice(key)

    def conventions_apart(self, other: "Spec") -> list:
        """The flags and choice keys of this spec's entry that `other` sets otherwise (every one
        where it is another entry's spec)."""
        keys = [k for k in self.entry.keys if k in self.entry.flags or k in self.entry.all_choices]
        if other.entry is not self.entry:
            return keys
        return [k for k in keys if self.convention(k) != other.convention(k)]

    def __getattr__(self, key: str):
        # every choice key reads as an attribute (spec.eps_added_to), as decay and buffer do,
        # so that a layer that walks the keys needs no list of them
        if not key.startswith("_") and "name" in self.__dict__ \
                and key in catalogue.ENTRIES[self.__dict__["name"]].all_choices:
            return self.choice(key)
        raise AttributeError(key)

    @property
    def decay_scale(self) -> str:
        return self.given.get("decay_scale", "lr")

    def hyper(self, numeric: bool = False) -> dict:
        """Canonical hyperparameters (lr, beta1, beta2, ...: the entry's scalars).

        numeric=False: omitted coefficients that torch defaults to a non-zero value are symbols
        named canonically (AdamW's weight_decay too); omitted features stay off (0).
        numeric=True: omitted values take torch's defaults; a symbolic value is an error.
        """
        out = {}
        for h in self.entry.hypers:
            value = self.given.get(h.key)
            idle = h.needed is not None and not h.needed(self)  # a key this rule never reads
            for i, scalar in enumerate(h.scalars):
                if value is not None:
                    out[scalar.name] = value[i] if h.pair else value
                elif h.follows and numeric:
                    # the lr; a symbolic command gives a key its rule reads a symbol of its own
                    # (a scheduled lr must not drag Composer's initial lr along), and one it
                    # never reads its default
                    out[scalar.name] = out[h.follows]
                elif numeric or idle or _rational(scalar.default) == 0:
                    out[scalar.name] = _rational(scalar.default)
                else:
                    out[scalar.name] = hyper_symbol(scalar.name)
        if numeric:
            for h in self.entry.hypers:
                for i, scalar in enumerate(h.scalars):
                    if not out[scalar.name].is_number:
                        shown = f"{h.key}=({', '.join(map(str, self.given[h.key]))})" \
                            if h.pair else f"{h.key}={out[scalar.name]}"
                        raise UserError(
                            f"{shown} is symbolic, but this command needs numbers: give every "
                            "hyperparameter a numeric value or leave it out for torch's default"
                        )
        return out

    def on(self, name: str) -> bool:
        """A switch (derive.catalogue.base.on): momentum or weight_decay non-zero."""
        return base.on(self, name)

    def momentum_on(self) -> bool:
        return self.on("momentum")

    def decay_on(self) -> bool:
        return self.on("weight_decay")

    def symbols(self) -> set:
        """Free symbols of the symbolic hyperparameters (what compare maps and solves over)."""
        found = set()
        for value in self.hyper().values():
            found |= value.free_symbols
        return found

    def substitute(self, mapping: dict) -> "Spec":
        """The same spec with symbols replaced (e.g. a condition momentum -> 0); revalidated, so
        a feature whose coefficient becomes 0 is switched off exactly as torch switches it off."""
        given = dict(self.given)
        filled = self.hyper()
        for h in self.entry.hypers:
            old = tuple(filled[s.name] for s in h.scalars)
            new = tuple(v.xreplace(mapping) for v in old)
            if h.key in given or new != old:
                given[h.key] = new if h.pair else new[0]
        kept = {k: text for k, text in self.sources.items()
                if given.get(k if isinstance(k, str) else k[0]) == self.given.get(
                    k if isinstance(k, str) else k[0])}
        return make_spec(self.name, given, kept)

    def __str__(self) -> str:
        parts = []
        for key, value in self.given.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, tuple):
                text = f"({self.sources.get((key, 0), value[0])}, " \
                       f"{self.sources.get((key, 1), value[1])})"
            else:
                text = self.sources.get(key, str(value))
            parts.append(f"{key}={text}")
        return f"{self.name}({', '.join(parts)})"


def _violates(value, scalar: base.Scalar) -> bool:
    """Outside the scalar's domain for certain (NaN is: it gets torch's words where torch has
    a check, as torch's Adam refuses NaN through `not 0.0 <= lr`; -oo too, as torch)."""
    if not isinstance(value, sp.Expr):
        return False
    if value.has(sp.nan):
        return True
    for bound, strict, below in ((scalar.low, scalar.low_strict, True),
                                 (scalar.high, scalar.high_strict, False)):
        if bound is None:
            continue
        gap = value - _rational(bound) if below else _rational(bound) - value
        if bool(gap.is_extended_nonpositive if strict else gap.is_extended_negative):
            return True
    return False


def _check_values(entry: base.Entry, given: dict, sources: dict) -> None:
    """torch's own validation (with torch's wording), applied where a value is a known number.
    Messages show the value as the user wrote it (torch prints the Python value passed)."""

    def shown(key, value, index=None):
        text = sources.get(key if index is None else (key, index))
        return text if text else fmt_number(value)

    numbers = [(key, v, i) for key, value in given.items() if isinstance(value, (sp.Expr, tuple))
               for i, v in (enumerate(value) if isinstance(value, tuple) else [(None, value)])]
    for key, value, index in numbers:  # before torch's checks: beta >= 1 cannot order I
        # symbolic values too: symbols are nonnegative reals, so sqrt(-x - 1) is never real
        # (a claim may state a complex formula, to be refuted; a hyperparameter may not)
        if not value.has(sp.nan) and value.is_extended_real is False:
            raise UserError(f"{key} must be a real number, got {shown(key, value, index)}")
    order = list(entry.check_order) + [h.key for h in entry.hypers
                                       if h.key not in entry.check_order]
    for key in order:
        h = entry.hyper(key)
        if key not in given or not h.message:
            continue
        values = given[key] if h.pair else (given[key],)
        for index, (value, scalar) in enumerate(zip(values, h.scalars)):
            if _violates(value, scalar):
                texts = [shown(key, v, i if h.pair else None) for i, v in enumerate(values)]
                raise UserError(h.message.format(
                    value=texts[index], index=index, first=texts[0], second=texts[-1]))
    if entry.extra_check:
        entry.extra_check(given, shown)
    for key, value, index in numbers:  # keys torch does not check (dampening)
        if value.has(sp.nan):
            raise UserError(f"{key} must be a real number, got {shown(key, value, index)}")
    flag = entry.decay_flag
    if flag and given.get(flag) and given.get("decay", "decoupled") != "decoupled":
        raise UserError(f"{flag}=true contradicts decay={given['decay']}; give one of them")
    scale = given.get("decay_scale", "lr")
    decay = given.get("decay", "decoupled" if flag and given.get(flag) else
                      (entry.decays or ("l2",))[0])
    if scale != "lr" and decay not in base.SCALED_DECAYS:
        raise UserError(f"decay_scale={scale} rescales the lr-scaled decoupled decays "
                        f"(decay={', '.join(base.SCALED_DECAYS)}) only, not decay={decay}")


def make_spec(name: str, given: dict, sources: dict | None = None) -> Spec:
    """Validate keys and values (already parsed) and build a Spec."""
    entry = catalogue.entry(name)
    valid, choices = entry.keys, entry.all_choices
    for key, value in given.items():
        if key not in valid:
            extra = ""
            if any(key == e.decay_flag for e in catalogue.ENTRIES.values()) \
                    and entry.decays[0] == "decoupled":
                extra = f" ({entry.class_name}.__init__() got an unexpected keyword argument " \
                        f"'{key}': {entry.class_name}'s decay is always decoupled)"
            raise UserError(f"unknown key {key!r} for {name}{extra}; valid keys: {', '.join(valid)}")
        if key in entry.flags and not isinstance(value, bool):
            raise UserError(f"{key} must be true or false (a concrete flag), got {value}")
        if key in choices and value not in choices[key]:
            raise UserError(
                f"{key} must be one of {', '.join(choices[key])}, got {value}"
            )
        if key in entry.numbers:
            h = entry.hyper(key)
            if h.pair and not isinstance(value, tuple):
                raise UserError(f"{key} must be a pair "
                                f"({', '.join(s.name for s in h.scalars)}), got {value}")
            if not h.pair and not isinstance(value, sp.Expr):
                raise UserError(f"{key} must be a number or an expression, got {value}")
    _check_values(entry, given, sources or {})
    return Spec(name, MappingProxyType(dict(given)), MappingProxyType(dict(sources or {})))


_FRAMEWORK_CALL = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*\.")


def parse_spec(text: str) -> Spec:
    """Parse `name(key=value, ...)` without eval: see derive.grammar for the value language."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("invalid spec: empty; expected e.g. sgd(lr=eta, momentum=mu)")
    if _FRAMEWORK_CALL.match(text):
        from . import dialects  # imports derive.spec back: loaded when a dialect is used

        return dialects.parse(text)
    parser = Parser(text, "spec")
    tok = parser.tok
    if tok.kind != "name":
        raise parser.error("expected an optimizer name (" + ", ".join(NAMES) + ")")
    name = tok.text
    choices = catalogue.entry(name).all_choices
    parser.i += 1
    given, sources = {}, {}
    if parser.accept("("):
        if not parser.accept(")"):
            while True:
                key_tok = parser.tok
                if key_tok.kind != "name":
                    raise parser.error("expected a key such as lr")
                parser.i += 1
                parser.expect("=", f"expected '=' after {key_tok.text!r}")
                if key_tok.text in choices:
                    choice = parser.tok
                    if choice.kind != "name":
                        raise parser.error(f"expected one of {', '.join(choices[key_tok.text])}")
                    parser.i += 1
                    value = choice.text
                else:
                    before = len(parser.spans)
                    value = parser.value()
                    spans = parser.spans[before:]
                    if isinstance(value, tuple):
                        sources.update({(key_tok.text, i): text for i, text in enumerate(spans)})
                    elif spans:
                        sources[key_tok.text] = spans[0]
                if key_tok.text in given:
                    raise UserError(f"invalid spec {text!r}: duplicate key {key_tok.text!r}")
                given[key_tok.text] = value
                if parser.accept(")"):
                    break
                parser.expect(",", "expected ',' or ')'")
    parser.expect_end()
    spec = make_spec(name, given, sources)
    for key, value in given.items():  # torch accepts lr=inf; a symbolic model cannot use it
        if isinstance(value, (sp.Expr, tuple)) and any(
                isinstance(v, sp.Expr) and v.has(sp.oo, -sp.oo, sp.zoo)
                for v in (value if isinstance(value, tuple) else (value,))):
            raise UserError(f"invalid spec {text!r}: {key} is infinite; values must be finite")
    return spec


def as_spec(spec) -> Spec:
    return spec if isinstance(spec, Spec) else parse_spec(spec)


def with_changes(spec: Spec, **changes) -> Spec:
    """A copy with some keys set (used by proofs to vary one flag)."""
    given = dict(spec.given)
    given.update(changes)
    return make_spec(spec.name, given)


__all__ = ["Spec", "parse_spec", "as_spec", "make_spec", "with_changes", "NAMES", "KEYS",
           "DECAYS", "BUFFERS", "TORCH_DEFAULTS"]
