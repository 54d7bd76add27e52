"""The claims checker: formulas written by people, checked against the model they describe.

    [[claim]]
    name = "seed: plain SGD with L2 written as wd * sum(theta^2)"
    spec = "sgd(lr=eta, weight_decay=2*wd)"
    start = "state"      # "start": the optimizer's initial state; "state": a general mid-run state
    steps = 1
    quantity = "theta"   # theta, or a state name: buf, m, v, vmax, t
    equals = "theta - eta*grad - eta*2*wd*theta"
    names = { theta = "theta_0", grad = "g_1" }   # the claim's own names -> canonical names
    where = { m_hat = "m_1/(1 - beta1)" }         # optional helper definitions, in order
    expect = "holds"     # or "fails"

The format is documented for users in the README (Claims files), with a worked example; a
formula may also be given in LaTeX as `equals_latex` (derive.latex_grammar).
Gradients are open loop (g_1 ... g_k free). Verdicts: proven (the difference is symbolically 0),
refuted (non-zero at an exact rational point, which is reported), supported (no symbolic proof,
but zero at every random high-precision point: said so). Expressions go through derive's safe
parser, never eval or sympify. A refutation's JSON `counterexample` holds the point, both values
exactly (`model`, `claim`), as floats (`model_float`, `claim_float`: null where a claim is not
real, e.g. the square root of a negative) and in decimal with as many digits as it takes to tell
them apart (`model_decimal`, `claim_decimal`).
"""
from __future__ import annotations

import random
import re
import tomllib
from dataclasses import dataclass

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.errors import UserError, shown
from optequiv.derive.grammar import FUNCTIONS, parse_expression
from optequiv.derive.latex_grammar import parse_latex
from optequiv.derive.identity import PROVEN, REFUTED, SUPPORTED, random_point, zero_test
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import Spec, parse_spec
from optequiv.derive.unroll import unroll

KEYS = {"name", "spec", "start", "steps", "quantity", "equals", "equals_latex", "names", "where",
        "expect"}
REQUIRED = ("name", "spec", "expect")
FORMULAS = ("equals", "equals_latex")  # exactly one: the plain formula language, or LaTeX
QUANTITIES = ("theta",) + Y.STATE_NAMES  # theta, or any state entry of the catalogue
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_STEPS = 8
MAX_BYTES = 1 << 20  # a claims file is read up to this size, and refused beyond it


@dataclass
class Claim:
    name: str
    spec: Spec
    start: str
    steps: int
    quantity: str
    equals: sp.Expr
    expect: str  # holds | fails


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str  # proven | refuted | supported
    model: sp.Expr  # the quantity as the model computes it
    counterexample: dict | None  # for refuted: the exact point and both values

    @property
    def agrees(self) -> bool:
        return (self.verdict == REFUTED) == (self.claim.expect == "fails")

    def to_json(self) -> dict:
        return {"name": self.claim.name, "spec": str(self.claim.spec), "verdict": self.verdict,
                "expect": self.claim.expect, "agrees": self.agrees,
                "model": str(self.model), "claim": str(self.claim.equals),
                "counterexample": self.counterexample}


def _fail(where: str, problem: str) -> UserError:
    return UserError(f"{where}: {problem}")


def _string(table: dict, key: str, where: str, default=None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise _fail(where, f"'{key}' must be a string")
    return value


def _allowed_symbols(spec: Spec, start: str, steps: int) -> set:
    allowed = set(spec.symbols()) | {Y.theta(0)} | {Y.grad(i) for i in range(1, steps + 1)}
    if start == "state":
        allowed |= {Y.state(n, 0) for n in build_rule(spec).state_names}
    return allowed


def parse_claim(table, index: int, source: str) -> Claim:
    where = f"{source}: claim {index + 1}"
    if not isinstance(table, dict):
        raise _fail(where, "each [[claim]] must be a table")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(KEYS))}")
    for key in REQUIRED:
        if key not in table:
            raise _fail(where, f"missing key {key!r}")
    formulas = [k for k in FORMULAS if k in table]
    if len(formulas) != 1:
        raise _fail(where, "give the formula as 'equals' or as 'equals_latex'"
                    + (", not both" if formulas else ""))
    name = _string(table, "name", where)
    where = f"{source}: claim {name!r}"
    try:
        spec = parse_spec(_string(table, "spec", where))
    except UserError as error:
        raise _fail(where, str(error)) from None
    start = _string(table, "start", where, "start")
    if start not in ("start", "state"):
        raise _fail(where, f"start must be 'start' or 'state', got {start!r}")
    steps = table.get("steps", 1)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise _fail(where, f"steps must be a whole number from 1 to {MAX_STEPS}")
    quantity = _string(table, "quantity", where, "theta")
    if quantity not in QUANTITIES:
        raise _fail(where, f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}")
    expect = _string(table, "expect", where)
    if expect not in ("holds", "fails"):
        raise _fail(where, f"expect must be 'holds' or 'fails', got {expect!r}")
    resolve = _resolver(table, where)
    if formulas == ["equals"]:
        equals = parse_expression(_string(table, "equals", where), f"formula in {where}", resolve)
    else:
        equals = parse_latex(_string(table, "equals_latex", where), f"LaTeX formula in {where}",
                             resolve, steps)
    extra = Y.by_name(equals.free_symbols - _allowed_symbols(spec, start, steps))
    if extra:
        raise _fail(where, f"the formula uses {extra[0]}, which is not a symbol of the spec nor "
                           f"theta_0, g_1..g_{steps} or the initial state; map it with names")
    return Claim(name, spec, start, steps, quantity, equals, expect)


def _resolver(table: dict, where: str):
    names = table.get("names", {})
    defs = table.get("where", {})
    for label, mapping in (("names", names), ("where", defs)):
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise _fail(where, f"'{label}' must be a table of strings")
        for own in mapping:
            if not _IDENT.match(own) or own in FUNCTIONS or Y.RESERVED.match(own):
                raise _fail(where, f"{label}: {own!r} cannot be used as a name")
    targets = {}
    for own, target in names.items():
        symbol = Y.canonical(target)
        if symbol is None:
            if not _IDENT.match(target):
                raise _fail(where, f"names: {own} -> {target!r} is not a canonical name "
                                   "(theta_0, g_1, buf_0, m_0, v_0, vmax_0, t_0) or a symbol")
            symbol = Y.hyper(target)
        targets[own] = symbol
    defined = {}

    def resolve(name: str) -> sp.Expr:
        if name in defined:
            return defined[name]
        if name in targets:
            return targets[name]
        canonical = Y.canonical(name)
        return canonical if canonical is not None else Y.hyper(name)

    for own, text in defs.items():  # in order: a definition may use the earlier ones
        defined[own] = parse_expression(text, f"definition of {own} in {where}", resolve)
    return resolve


def read_limited(path, limit: int = MAX_BYTES) -> bytes:
    """At most `limit` bytes of the file, or UserError: `check /dev/zero` stops at once."""
    source = shown(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise UserError(f"{source}: cannot read: {error.strerror or error}")
    if len(data) > limit:
        raise UserError(f"{source}: larger than {limit} bytes; a claims file is a few kilobytes")
    return data


def load_claims(path: str) -> list:
    source = shown(path)
    try:
        text = read_limited(path).decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{source}: not a UTF-8 text file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{source}: invalid TOML: {error}")
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise UserError(f"{source}: invalid TOML: nested too deeply")
    unknown = sorted(set(data) - {"claim"})
    if unknown:
        raise UserError(f"{source}: unknown top-level key {unknown[0]!r}; use [[claim]] tables")
    claims = data.get("claim", [])
    if not isinstance(claims, list) or not claims:
        raise UserError(f"{source}: no [[claim]] tables")
    return [parse_claim(table, i, source) for i, table in enumerate(claims)]


def model_value(claim: Claim) -> sp.Expr:
    step = unroll(claim.spec, claim.steps, start=claim.start).steps[-1]
    if claim.quantity == "theta":
        return step.theta
    if claim.quantity not in step.state or step.state[claim.quantity] is None:
        names = ", ".join(n for n, v in step.state.items() if v is not None) or "none"
        raise UserError(f"claim {claim.name!r}: {claim.spec} has no state "
                        f"{claim.quantity!r}; its state: {names}")
    return step.state[claim.quantity]


def spec_betas(spec: Spec) -> tuple:
    """The spec's betas, which torch keeps in [0, 1): facts the symbolic check may use."""
    h = spec.hyper()
    return tuple(h[k] for k in ("beta1", "beta2") if k in h)


def check_claim(claim: Claim) -> ClaimResult:
    model = model_value(claim)
    verdict = zero_test(model - claim.equals, trials=8, betas=spec_betas(claim.spec))
    counterexample = None
    if verdict.verdict == REFUTED:
        # symbols that cancel in the difference still need a value to show both sides
        missing = (model.free_symbols | claim.equals.free_symbols) - set(verdict.point)
        point = {**verdict.point, **random_point(missing, random.Random(0))}
        at_model, at_claim = model.xreplace(point), claim.equals.xreplace(point)
        model_decimal, claim_decimal = _decimals(at_model, at_claim)
        counterexample = {
            "point": {str(s): str(v) for s, v in sorted(point.items(), key=lambda kv: kv[0].name)},
            "model": str(at_model),
            "claim": str(at_claim),
            "model_float": _float(at_model),
            "claim_float": _float(at_claim),
            "model_decimal": model_decimal,
            "claim_decimal": claim_decimal,
        }
    return ClaimResult(claim, verdict.verdict, model, counterexample)


def _float(value: sp.Expr) -> float | None:
    """The value as a float; None where it is not real (a claim can be complex where the
    model is real: sqrt of a negative)."""
    approx = sp.N(value, 30)
    return float(approx) if approx.is_real else None


def _decimals(model: sp.Expr, claim: sp.Expr) -> tuple:
    """Both values in decimal, with as many digits as it takes to tell them apart (a claim off
    by 1e-40 is refuted exactly; 12 digits would print the same number twice)."""
    for digits in (12, 20, 30, 45, 60):
        shown = str(sp.N(model, digits)), str(sp.N(claim, digits))
        if shown[0] != shown[1]:
            break
    return shown


def check_file(path: str) -> list:
    return [check_claim(c) for c in load_claims(path)]


__all__ = ["Claim", "ClaimResult", "check_claim", "check_file", "load_claims", "PROVEN",
           "REFUTED", "SUPPORTED"]
