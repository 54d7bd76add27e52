"""translate: the call in another framework that reproduces a spec exactly, computed by the engine.

For each call of the target framework whose rule keeps the same state as the spec's (a Keras
SGD never reproduces an Adam), every numeric keyword becomes a fresh symbol and derive.compare
decides spec against it: a proven equivalence carries the mapping of those symbols onto the
spec's values, and the call with the mapping substituted is the translation. A flag is tried at
its default and then switched. When no call is proven, the nearest is the one that agrees
longest (the latest first divergent step), with that step and the difference there.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy as sp

from . import dialects
from .compare import BUDGET, compare
from .domains import unit_names
from .catalogue.base import MISSING
from .dialects.base import REQUIRED
from .dialects.parse import Call, parse_call
from .grammar import tokenize
from .identity import PROVEN
from .regions import coincide
from .errors import UserError
from .spec import Spec, as_spec
from .symbols import hyper


@dataclass
class Translation:
    spec: Spec
    target: str
    exact: bool
    call: str | None  # the exact call, or the nearest one (None: no candidate could be compared)
    mapping: dict = field(default_factory=dict)  # target keyword -> value (spec's symbols)
    first_divergent_step: int | None = None
    difference: sp.Expr | None = None
    valid_when: list = field(default_factory=list)  # where the exact call holds (spec's symbols)
    tried: list = field(default_factory=list)  # (call template, verdict) per candidate
    reason: str | None = None
    # the numeric-only keys (catalogue.base.MISSING) on which the call still differs from the
    # spec: what a parameter without a gradient does, which no symbolic rule sees
    numeric_only: dict = field(default_factory=dict)  # key -> (spec's value, the call's)

    def to_json(self) -> dict:
        return {"spec": self.spec.call or str(self.spec), "target": self.target,
                "exact": self.exact, "call": self.call,
                "mapping": {k: str(v) for k, v in self.mapping.items()},
                "first_divergent_step": self.first_divergent_step,
                "difference": None if self.difference is None else str(self.difference),
                "valid_when": [str(c) for c in self.valid_when],
                "tried": [{"call": c, "verdict": v} for c, v in self.tried],
                "reason": self.reason,
                "numeric_only": {k: {"spec": a, "call": b}
                                 for k, (a, b) in self.numeric_only.items()}}


@dataclass(frozen=True)
class Candidate:
    call: Call
    spec: Spec
    symbols: dict  # target keyword (a recipe's placeholder) -> its fresh symbol (a pair's: a tuple)
    template: str = ""  # a recipe's call text (Framework.recipes), "" for one dialect


def _fresh(name: str, taken: set) -> sp.Symbol:
    i = 2
    while f"{name}_{i}" in taken:
        i += 1
    taken.add(f"{name}_{i}")
    return hyper(f"{name}_{i}")


def _candidate(framework, dialect, flags: dict, taken: set) -> Candidate | None:
    """The dialect with its flags set and every numeric keyword a fresh symbol that it can take
    (a keyword whose symbol the mapping refuses, such as bitsandbytes' optim_bits, keeps its
    default); None where the call is no optimizer of its own (optax.trace) or not admissible."""
    base_values = {}
    for k in dialect.keywords:
        if k.flag:
            base_values[k.name] = flags.get(k.name, k.default)
        elif k.default is REQUIRED:
            base_values[k.name] = None  # filled below
        elif k.pair:
            base_values[k.name] = tuple(sp.Rational(d) for d in k.default)
        else:
            base_values[k.name] = None if k.default is None else sp.Rational(k.default)
    names = {s.name for s in taken}
    symbols, values = {}, dict(base_values)
    for k in dialect.keywords:
        if k.flag:
            continue
        if k.pair:
            trial = tuple(_fresh(f"{k.name}{i + 1}", names) for i in range(len(k.default)))
        else:
            trial = _fresh(k.name, names)
        attempt = dict(values, **{k.name: trial})
        if k.default is REQUIRED or _builds(framework, dialect, _filled(attempt, dialect)):
            values[k.name] = trial
            symbols[k.name] = trial
    values = _filled(values, dialect)
    try:
        call = Call(framework, dialect, values, {})
        return Candidate(call, dialects.spec_of(call), symbols)
    except UserError:
        return None


def _filled(values: dict, dialect) -> dict:
    """A required keyword still unset takes a stand-in symbol (only while probing the others)."""
    return {k: (hyper(f"_{k}") if v is None and dialect.keyword(k).default is REQUIRED else v)
            for k, v in values.items()}


def _builds(framework, dialect, values) -> bool:
    try:
        dialects.spec_of(Call(framework, dialect, values, {}))
        return True
    except UserError:
        return False


def candidates(spec: Spec, target: str) -> list:
    framework = dialects.FRAMEWORKS.get(target)
    if framework is None:
        raise UserError(f"--to {target}: unknown framework; frameworks with dialects: "
                        f"{', '.join(dialects.FRAMEWORKS)}")
    taken = set(spec.symbols())
    out = []
    for dialect in framework.dialects:
        if dialect.variadic:
            continue
        flag_sets = [{}] + [{k.name: not k.default} for k in dialect.keywords if k.flag]
        for flags in flag_sets:
            c = _candidate(framework, dialect, flags, taken)
            if c is not None and c.spec.entry.states == spec.entry.states:
                out.append(c)
    for text in framework.recipes:
        c = _recipe(text, taken)
        if c.spec.entry.states == spec.entry.states:
            out.append(c)
    # the spec's own optimizer first (AdamW before Adam(decoupled_weight_decay=True))
    return sorted(out, key=lambda c: c.spec.entry.name != spec.entry.name)


def _recipe(text: str, taken: set) -> Candidate:
    """A framework's composed call (optax's chain for Adam + L2), each placeholder identifier
    a fresh symbol."""
    call = parse_call(text, dialects.FRAMEWORKS)
    spec = dialects.spec_of(call)
    names = {s.name for s in taken}
    fresh = {s.name: _fresh(s.name, names) for s in sorted(spec.symbols(), key=str)}
    renamed = spec.substitute({hyper(n): f for n, f in fresh.items()})
    return Candidate(call, renamed, fresh, template=text)


def _recipe_text(c: Candidate, mapping: dict) -> tuple:
    out, last, shown = [], 0, {}
    tokens = tokenize(c.template, "recipe", dotted=True)
    for tok, nxt in zip(tokens, tokens[1:]):
        if tok.kind == "name" and tok.text in c.symbols and nxt.text != "=":  # not a keyword
            value = c.symbols[tok.text].xreplace(mapping)
            shown[tok.text] = value
            text = str(value)
            out.append(c.template[last:tok.pos] + (text if value.is_Atom else f"({text})"))
            last = tok.pos + len(tok.text)
    return "".join(out) + c.template[last:], shown


def _default(k):
    """A keyword's default as the engine's value: exact numbers (a pair's a tuple); a flag's,
    REQUIRED and None as they are."""
    if k.default is REQUIRED or k.flag or k.default is None:
        return k.default
    return tuple(sp.Rational(d) for d in k.default) if k.pair else sp.Rational(k.default)


def _call_text(c: Candidate, mapping: dict) -> tuple:
    """The call with the mapping substituted, keywords at the framework's default left out."""
    if c.template:
        return _recipe_text(c, mapping)
    parts, shown = [], {}
    for k in c.call.dialect.keywords:
        value = c.call.values[k.name]
        if isinstance(value, tuple):
            value = tuple(sp.sympify(v).xreplace(mapping) for v in value)
        elif isinstance(value, sp.Expr):
            value = value.xreplace(mapping)
        default = _default(k)
        if value == default:
            continue
        # a fresh symbol that the proof leaves free (dampening without momentum): every value
        # reproduces the spec, so the framework's default does
        fresh = {p for v in c.symbols.values() for p in (v if isinstance(v, tuple) else (v,))}
        if isinstance(value, (sp.Expr, tuple)) and any(
                sp.sympify(v).free_symbols & fresh for v in
                (value if isinstance(value, tuple) else (value,))):
            continue
        if k.name in c.symbols and isinstance(value, (sp.Expr, tuple)):
            shown[k.name] = value
        text = ("True" if value else "False") if isinstance(value, bool) else \
            ("(" + ", ".join(map(str, value)) + ")" if isinstance(value, tuple) else str(value))
        parts.append(f"{k.name}={text}")
    return f"{c.call.framework.prefixes[0]}.{c.call.dialect.name}({', '.join(parts)})", shown


def _at_defaults(c: Candidate, difference: sp.Expr) -> sp.Expr:
    """The difference of the call as printed: each fresh symbol still free in it at its
    keyword's default, as _call_text leaves it out. Kept symbolic where that would make the
    difference vanish identically (then the printed call would part later than said)."""
    if c.template:
        return difference
    at = {}
    for k in c.call.dialect.keywords:
        sym = c.symbols.get(k.name)
        if sym is None or k.default in (REQUIRED, None) or k.flag:
            continue
        pairs = zip(sym, _default(k)) if k.pair else [(sym, _default(k))]
        at.update({s: d for s, d in pairs if s in difference.free_symbols})
    if not at:
        return difference
    shown = difference.xreplace(at)
    return difference if coincide(sp.together(shown)).verdict == PROVEN else shown


def _number(name, value) -> bool:
    return value.is_number


def _copies(spec: Spec, c: Candidate, pin) -> dict:
    """fresh symbol -> the spec's value, for each fresh symbol that stands for one of the
    entry's scalars alone (eps_2 for eps), where `pin(canonical name, value)` takes it."""
    target, mine = c.spec.hyper(), spec.hyper()
    out = {}
    for sym in c.symbols.values():
        for part in (sym if isinstance(sym, tuple) else (sym,)):
            names = [n for n, v in target.items() if v == part]
            value = mine.get(names[0]) if len(names) == 1 else None
            if value is not None and pin(names[0], value):
                out[part] = value
    return out


def pinned(spec: Spec, c: Candidate, pin=_number) -> Candidate | None:
    """The candidate with its fresh symbols set to the spec's values where `pin` takes them
    (_copies): by default numbers, so that the engine solves for the coefficients that remain
    (lr, weight_decay), where one symbol per keyword leaves it equations through sqrt and |.|
    that it cannot decide; every value: the call a user would write by copying values across;
    a scheduled symbol: the lr that changes every step is the same lr in both. None when
    nothing is pinned."""
    if c.template:
        return None
    copies = _copies(spec, c, pin)
    if not copies:
        return None
    values = {k: (tuple(copies.get(p, p) for p in v) if isinstance(v, tuple) else
                  copies.get(v, v)) if k in c.symbols else v for k, v in c.call.values.items()}
    try:
        call = replace(c.call, values=values)
        return Candidate(call, dialects.spec_of(call), {
            k: v for k, v in c.symbols.items() if values[k] == v})
    except UserError:
        return None


def _numeric_only(spec: Spec, other: Spec) -> dict:
    return {k: (spec.choice(k), other.choice(k)) for k in MISSING
            if spec.choice(k) != other.choice(k)}


def translate(spec, target: str, steps: int = 4, seconds: float = BUDGET,
              schedule=()) -> Translation:
    """`schedule`: the spec's symbols that change every step (an lr schedule), as compare's;
    each candidate takes the same scheduled symbol where its keyword stands for that scalar."""
    spec = as_spec(spec)
    schedule = tuple(schedule)

    def nearness(c, outcome) -> tuple:
        return outcome.first_divergent_step, -len(spec.conventions_apart(c.spec))

    def decide(c):
        return compare(spec, c.spec, steps=steps, want_conditions=False, seconds=seconds,
                       schedule=schedule)

    found = [pinned(spec, c, lambda n, v: v in schedule) or c for c in candidates(spec, target)] \
        if schedule else candidates(spec, target)
    result = Translation(spec, target, False, None)
    if not found:
        result.reason = (f"{target} has no call whose rule keeps the state of {spec.entry.name} "
                         f"({', '.join(s.key for s in spec.entry.states)})")
        return result
    given = {s.name for h in spec.entry.hypers if h.key in spec.given for s in h.scalars}
    omitted = {v for n, v in spec.hyper().items() if n not in given and not v.is_number}
    unit = unit_names(spec)
    best = None
    for c in found:
        outcome = decide(c)
        # undecided: the spec's betas copied across (numbers or the same unknown on both
        # sides), so that a mapped eps, eps*sqrt(1 - beta2) for Keras, can still be found;
        # then every number; then also the values the spec leaves out
        for pin in (lambda n, v: n in unit and (v.is_number or v in omitted), _number,
                    lambda n, v: v.is_number or v in omitted):
            if outcome.verdict != "undecided":
                break
            narrower = pinned(spec, c, pin)
            if narrower is not None:
                c = narrower
                outcome = decide(c)
        template, _ = _call_text(c, {})
        result.tried.append((template, outcome.verdict))
        if outcome.verdict == "proven" and outcome.mapping is not None:
            result.exact = True
            result.call, result.mapping = _call_text(c, outcome.mapping)
            result.valid_when = list(outcome.valid_when)
            result.numeric_only = _numeric_only(spec, c.spec)
            return result
        # the latest to part; among those, the one that keeps more of the spec's conventions
        # (optax.amsgrad parts from torch's Adam at step 2 with or without amsgrad=True: the
        # one with it is the nearer)
        if outcome.first_divergent_step is not None and (
                best is None or nearness(c, outcome) > nearness(*best)):
            best = (c, outcome)
    if best is None:
        result.reason = "no candidate was decided within the engine's budget"
        return result
    c, outcome = best
    # the call with the spec's values copied across, where that is the nearest too: its
    # difference is in the spec's own symbols, what a user moving a recipe would run
    naive = pinned(spec, c, lambda n, v: True)
    if naive is not None:
        copied = decide(naive)
        if copied.verdict == "refuted" and \
                copied.first_divergent_step >= outcome.first_divergent_step:
            c, outcome = naive, copied
    earlier = [t for t in outcome.trail if t.k < outcome.first_divergent_step and t.solutions]
    partial = earlier[-1].solutions[0] if earlier else {}
    # a symbol the earlier steps leave free takes the spec's value, as a user would copy it
    filled = {} if c.template else _copies(spec, c, lambda n, v: True)
    result.call, result.mapping = _call_text(c, {**filled, **partial})
    result.first_divergent_step = outcome.first_divergent_step
    result.difference = _at_defaults(c, outcome.difference.xreplace({**filled, **partial}))
    return result
