"""A small, safe parser for the arithmetic that users write in specs and in claims.

Nothing here calls eval, exec, sympify or parse_expr: the text is tokenised against a whitelist
(numbers, identifiers, + - * / ** parentheses and commas, the functions in FUNCTIONS) and SymPy
objects are built directly by a recursive-descent parser. Numbers become exact Rationals
(`1e-3` is 1/1000), so that symbolic verdicts never depend on float rounding.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import sympy as sp

from .errors import UserError
from .symbols import RESERVED, hyper

FUNCTIONS = {
    "sqrt": (sp.sqrt, 1),
    "abs": (sp.Abs, 1),
    "min": (sp.Min, None),
    "max": (sp.Max, None),
    "exp": (sp.exp, 1),
    "log": (sp.log, 1),
    "sign": (sp.sign, 1),
}
BOOLEANS = {"true": True, "false": False, "True": True, "False": False}
# float('nan') and float('inf') spellings: values, not symbol names, so that `lr=nan` is
# rejected as torch_optimizer(lr=float('nan')) is, rather than becoming a symbol called nan
NONFINITE = {"nan": sp.nan, "inf": sp.oo, "infinity": sp.oo}

MAX_TEXT = 4000  # a spec or a claim is a line or two; longer input is refused, not parsed
MAX_EXPONENT = 1000  # 2**10**10 would make SymPy build an enormous integer
MAX_DEPTH = 100
# every intermediate value, not only the literals and exponents, stays within these: a short
# text such as ((10**1000)**1000)**1000 or exp(exp(exp(exp(exp(1))))) otherwise asks SymPy
# for numbers of millions of digits (minutes, or Python's 4300-digit limit, or an overflow)
MAX_DIGITS = 1000  # decimal digits of a number's numerator or denominator
MAX_BITS = int(MAX_DIGITS * 3.33) + 1
MAX_MAGNITUDE = 1000  # |value| below 10**1000
MAX_EXP_ARGUMENT = 2302  # exp(2302) is about 10**1000

_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|[-+*/(),=]))"
)
# another framework's call (derive.dialects): `optax.adamw` is one name token there, and only there
_DOTTED = re.compile(_TOKEN.pattern.replace(r"[A-Za-z_][A-Za-z0-9_]*)",
                                            r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"))


@dataclass(frozen=True)
class Token:
    kind: str  # number | name | op | end
    text: str
    pos: int


def tokenize(text: str, what: str, dotted: bool = False) -> list[Token]:
    if len(text) > MAX_TEXT:
        raise UserError(f"invalid {what}: longer than {MAX_TEXT} characters")
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = (_DOTTED if dotted else _TOKEN).match(text, pos)
        if not match:
            bad = text[pos:].lstrip()[0]
            where = len(text) - len(text[pos:].lstrip())
            hint = " (use ** for powers)" if bad == "^" else ""
            raise UserError(
                f"invalid {what} {text!r}: unexpected character {bad!r} at position {where}{hint}; "
                "allowed: numbers, names, + - * / ** ( ) and the functions "
                + ", ".join(FUNCTIONS)
            )
        kind = match.lastgroup
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def default_resolver(name: str) -> sp.Expr:
    """Identifiers in specs: hyperparameter symbols; canonical state names are reserved."""
    if RESERVED.match(name):
        raise UserError(
            f"the name {name!r} is reserved for the parameter, gradients and state "
            "(theta_k, g_k, buf_k, m_k, v_k, vmax_k, t_k); choose another name"
        )
    return hyper(name)


class Parser:
    """Recursive descent over a token list; `what` names the input in error messages."""

    def __init__(self, text: str, what: str, resolve: Callable[[str], sp.Expr] = default_resolver,
                 dotted: bool = False):
        self.text, self.what, self.resolve = text, what, resolve
        self.tokens = tokenize(text, what, dotted)
        self.i = 0
        self.depth = 0
        self.spans = []  # source text of each value parsed by value(), for torch-style messages

    # -- token helpers -------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, problem: str, tok: Token | None = None) -> UserError:
        tok = tok or self.tok
        found = "end of input" if tok.kind == "end" else repr(tok.text)
        return UserError(
            f"invalid {self.what} {self.text!r}: {problem}, found {found} at position {tok.pos}"
        )

    def accept(self, text: str) -> bool:
        if self.tok.kind == "op" and self.tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str, problem: str) -> None:
        if not self.accept(text):
            raise self.error(problem)

    def expect_end(self) -> None:
        if self.tok.kind != "end":
            raise self.error("unexpected trailing input")

    # -- grammar -------------------------------------------------------------------------------
    def value(self):
        """value := true | false | expr | '(' value ',' value ')'"""
        if self.tok.kind == "name" and self.tok.text in BOOLEANS:
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "end" or (nxt.kind == "op" and nxt.text in ",)"):
                self.i += 1
                return BOOLEANS[self.tokens[self.i - 1].text]
        if self.tok.kind == "op" and self.tok.text == "(":
            start = self.i
            self.i += 1
            first = self.spanned_expr()
            if self.accept(","):
                second = self.spanned_expr()
                self.expect(")", "expected ')' to close the pair")
                return (first, second)
            self.i = start  # a parenthesised expression, not a pair
            del self.spans[-1]
        return self.spanned_expr()

    def spanned_expr(self) -> sp.Expr:
        begin = self.tok.pos
        result = self.expr()
        # whitespace as one space: a newline inside a value must not start a line of output
        self.spans.append(" ".join(self.text[begin:self.tok.pos].split()))
        return result

    def expr(self) -> sp.Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("expression nested too deeply")
        result = self.term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.tok.text
            self.i += 1
            rhs = self.term()
            result = result + rhs if op == "+" else result - rhs
        self.depth -= 1
        return result

    def term(self) -> sp.Expr:
        result = self.unary()
        while self.tok.kind == "op" and self.tok.text in "*/":
            op, tok = self.tok.text, self.tok
            self.i += 1
            rhs = self.unary()
            if op == "/" and rhs == 0:
                raise self.error("division by zero", tok)
            result = result * rhs if op == "*" else result / rhs
            if result.is_Rational:  # 1e400 * 1e400 * ...: no power, still a huge number
                self.bounded(result, tok)
        return result

    def unary(self) -> sp.Expr:
        negate = False  # a loop, not recursion: a long run of signs is not a deep nesting
        while self.tok.kind == "op" and self.tok.text in "+-":
            negate ^= self.tok.text == "-"
            self.i += 1
        result = self.power()
        return -result if negate else result

    def power(self) -> sp.Expr:
        base = self.atom()
        tok = self.tok
        if self.accept("**"):
            self.depth += 1  # a**b**c... nests as deeply as parentheses do
            if self.depth > MAX_DEPTH:
                raise self.error("expression nested too deeply", tok)
            exponent = self.unary()  # right-associative, and 2**-1 works, as in Python
            self.depth -= 1
            if exponent.is_number and abs(exponent) > MAX_EXPONENT:
                raise self.error(f"exponent larger than {MAX_EXPONENT}", tok)
            if base == 0 and exponent.is_number and exponent.is_negative:
                raise self.error("division by zero", tok)
            magnitude = self.log_magnitude(base) if exponent.is_number else None
            if magnitude is not None and abs(magnitude * float(exponent)) > MAX_MAGNITUDE:
                raise self.error(f"number out of range (magnitude beyond 10**{MAX_MAGNITUDE})",
                                 tok)
            return self.bounded(self.real(base**exponent, tok), tok)
        return base

    def atom(self) -> sp.Expr:
        tok = self.tok
        if tok.kind == "number":
            self.i += 1
            mantissa, _, exponent = tok.text.lower().partition("e")
            if len(mantissa) > 40 or (exponent and abs(int(exponent)) > 400):
                raise self.error("number out of range (at most 40 digits, exponent within 400)",
                                 tok)
            frac = Fraction(tok.text)
            return sp.Rational(frac.numerator, frac.denominator)
        if tok.kind == "name":
            self.i += 1
            if tok.text in BOOLEANS:
                raise self.error("a boolean cannot be used in arithmetic", tok)
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(tok)
            if tok.text in FUNCTIONS:
                raise self.error(f"function {tok.text!r} needs arguments in parentheses", tok)
            if tok.text.lower() in NONFINITE:
                return NONFINITE[tok.text.lower()]
            return self.resolve(tok.text)
        if self.accept("("):
            inner = self.expr()
            self.expect(")", "expected ')'")
            return inner
        raise self.error("expected a number, a name or '('")

    def call(self, name: Token) -> sp.Expr:
        if name.text not in FUNCTIONS:
            raise self.error(
                f"unknown function {name.text!r}; allowed: " + ", ".join(FUNCTIONS), name
            )
        func, arity = FUNCTIONS[name.text]
        self.expect("(", "expected '('")
        args = [self.expr()]
        while self.accept(","):
            args.append(self.expr())
        self.expect(")", f"expected ')' to close {name.text}(")
        if arity is not None and len(args) != arity:
            raise self.error(f"{name.text} takes {arity} argument", name)
        if name.text == "log" and args[0] == 0:
            raise self.error("log(0) is undefined", name)
        if name.text == "exp" and args[0].is_number and args[0].is_extended_real \
                and args[0] > MAX_EXP_ARGUMENT:
            raise self.error(f"exp of a number above {MAX_EXP_ARGUMENT} is out of range "
                             f"(beyond 10**{MAX_MAGNITUDE})", name)
        last = self.tokens[self.i - 1]
        return self.bounded(self.real(func(*args), name,
                                      self.text[name.pos:last.pos + len(last.text)]), name)

    def bounded(self, value, tok: Token):
        """Refuse a value beyond the size limits (MAX_DIGITS, MAX_EXPONENT), checked after
        every operation, so that nothing larger is ever built from it."""
        if not isinstance(value, sp.Basic):
            return value
        for node in sp.preorder_traversal(value):
            if node.is_Rational and max(abs(node.p).bit_length(), node.q.bit_length()) > MAX_BITS:
                raise self.error(f"number out of range (more than {MAX_DIGITS} digits)", tok)
            if node.is_Pow and node.exp.is_number and abs(node.exp) > MAX_EXPONENT:
                raise self.error(f"exponent larger than {MAX_EXPONENT}", tok)
        return value

    def log_magnitude(self, value) -> float | None:
        """log10 |value| of a number within the limits (None: zero, or not a number)."""
        if not value.is_number or value == 0:
            return None
        if value.is_Rational:
            return (math.log10(abs(value.p)) if value.p else 0.0) - math.log10(value.q)
        try:
            approx = complex(sp.N(value, 20))
        except (TypeError, ValueError, ArithmeticError):
            return None
        return math.log10(abs(approx)) if approx != 0 else None

    def real(self, value: sp.Expr, tok: Token, source: str = "") -> sp.Expr:
        """Every model is real-valued: a constant such as sqrt(-1) or log(-1) is refused here
        (NaN is left to the callers, which word it as torch does)."""
        if value.is_number and not value.has(sp.nan) and value.is_extended_real is False:
            shown = f"{source} = {value}" if source else str(value)
            raise self.error(f"{shown} is not a real number", tok)
        return value


def parse_expression(text: str, what: str = "expression", resolve=default_resolver) -> sp.Expr:
    """Parse a whole string as one arithmetic expression (no booleans, no pairs)."""
    if not isinstance(text, str):
        raise UserError(f"invalid {what}: expected a string, got {type(text).__name__}")
    parser = Parser(text, what, resolve)
    if parser.tok.kind == "end":
        raise UserError(f"invalid {what}: empty")
    result = parser.expr()
    parser.expect_end()
    if result.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise UserError(f"invalid {what} {text!r}: the value is undefined or infinite")
    return result
