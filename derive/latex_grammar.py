"""Formulas written in LaTeX, as people put them in their documentation, parsed by our own grammar.

    \\theta_{t-1} - \\eta \\left(g_t + \\lambda \\theta_{t-1}\\right)
    \\theta_{t-1} - \\frac{\\eta\\, \\hat{m}_t}{\\sqrt{\\hat{v}_t} + \\epsilon}

Nothing here calls eval, exec, sympify or parse_expr: the text is tokenised against a whitelist
(numbers, letters, the commands in GREEK, FUNCTIONS and the structural ones below, + - * / ^ _
{ } ( ) [ ] | ,) and SymPy objects are built by a recursive-descent parser, with derive.grammar's
limits on length, nesting, exponents and numbers. A product may be written by juxtaposition
(`\\eta g_t`) or with `\\cdot` / `\\times`.

Names become the identifiers of the plain formula language, so `names` and `where` tables work
alike for both: `\\eta` is `eta`, `\\beta_1` is `beta1`, `\\epsilon` is `eps`, `\\hat{v}` is
`v_hat`, `\\mathrm{wd}` is `wd`. An index t means the claim's last step k and t-1 the one
before, so that `\\theta_{t-1}` and `g_t` are theta_{k-1} and g_k (for a one-step claim: theta_0
and g_1); the letters theta, g, b (the SGD buffer), m, v with an index are the canonical state.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Callable

import sympy as sp

from . import catalogue
from .errors import UserError
from .grammar import MAX_DEPTH, MAX_EXPONENT, MAX_TEXT

GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "kappa",
         "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega", "theta"}
_RENAMED = {"epsilon": "eps", "varepsilon": "eps", "beta_1": "beta1", "beta_2": "beta2"}
FUNCTIONS = {"sqrt": sp.sqrt, "exp": sp.exp, "log": sp.log, "ln": sp.log, "max": sp.Max,
             "min": sp.Min}
_SPACES = {",", ";", "!", ":", "quad", "qquad", " "}
_TIMES = {"cdot", "times"}
_FONTS = {"mathrm", "text", "operatorname", "mathit"}
# tensor state entries written as one letter (the catalogue's): b_t is the SGD buffer buf_t
_BY_LETTER = {s.latex: s.name for e in catalogue.ENTRIES.values() for s in e.states
              if not s.scalar and re.fullmatch(r"[A-Za-z]", s.latex)}
_STATE_LETTERS = {"theta", "g", *_BY_LETTER.values()}

_TOKEN = re.compile(r"""\s*(?:
    (?P<number>\d+(?:\.\d+)?)
  | \\(?P<command>[A-Za-z]+|[,;:! ])
  | (?P<letter>[A-Za-z])
  | (?P<op>[-+*/^_{}()\[\]|,'=])
)""", re.X)


class LatexParser:
    """Recursive descent over LaTeX math; `resolve` maps an identifier to a SymPy value."""

    def __init__(self, text: str, what: str, resolve: Callable[[str], sp.Expr], steps: int = 1):
        if not isinstance(text, str):
            raise UserError(f"invalid {what}: expected a string, got {type(text).__name__}")
        if len(text) > MAX_TEXT:
            raise UserError(f"invalid {what}: longer than {MAX_TEXT} characters")
        self.text, self.what, self.resolve, self.steps = text, what, resolve, steps
        self.tokens, self.i, self.depth = self._tokenize(), 0, 0

    def _tokenize(self) -> list:
        tokens, pos = [], 0
        while pos < len(self.text):
            if not self.text[pos:].strip():
                break
            match = _TOKEN.match(self.text, pos)
            if not match:
                bad = self.text[pos:].lstrip()[:1]
                raise UserError(f"invalid {self.what} {self.text!r}: unexpected character "
                                f"{bad!r}; allowed: numbers, letters, \\commands, + - / ^ _ "
                                "{ } ( ) | and \\cdot")
            kind = match.lastgroup
            tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        return [t for t in tokens if not (t[0] == "command" and t[1] in _SPACES)] + \
            [("end", "", len(self.text))]

    # -- helpers --------------------------------------------------------------------------------
    @property
    def tok(self):
        return self.tokens[self.i]

    def error(self, problem: str) -> UserError:
        kind, value, pos = self.tok
        found = "end of input" if kind == "end" else repr(value)
        return UserError(f"invalid {self.what} {self.text!r}: {problem}, found {found} at "
                         f"position {pos}")

    def is_op(self, value: str) -> bool:
        return self.tok[0] == "op" and self.tok[1] == value

    def is_command(self, *names) -> bool:
        return self.tok[0] == "command" and self.tok[1] in names

    def expect(self, value: str, problem: str) -> None:
        if not self.is_op(value):
            raise self.error(problem)
        self.i += 1

    def nested(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("formula nested too deeply")

    # -- grammar --------------------------------------------------------------------------------
    def parse(self) -> sp.Expr:
        if self.tok[0] == "end":
            raise UserError(f"invalid {self.what}: empty")
        result = self.expr()
        if self.tok[0] != "end":
            raise self.error("unexpected trailing input")
        if result.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            raise UserError(f"invalid {self.what} {self.text!r}: the value is undefined or "
                            "infinite")
        return result

    def expr(self) -> sp.Expr:
        """expr := ['+'|'-'] term (('+'|'-') term)*"""
        self.nested()
        result = None
        while True:
            sign = 1
            while self.is_op("+") or self.is_op("-"):
                sign = -sign if self.tok[1] == "-" else sign
                self.i += 1
            term = sign * self.term()
            result = term if result is None else result + term
            if not (self.is_op("+") or self.is_op("-")):
                break
        self.depth -= 1
        return result

    def term(self) -> sp.Expr:
        """term := power ((\\cdot | \\times | * | / | juxtaposition) power)*"""
        result = self.power()
        while True:
            if self.is_command(*_TIMES) or self.is_op("*"):
                self.i += 1
                result = result * self.power()
            elif self.is_op("/"):
                self.i += 1
                divisor = self.power()
                if divisor == 0:
                    raise self.error("division by zero")
                result = result / divisor
            elif self.starts_factor():
                result = result * self.power()
            else:
                return result

    def starts_factor(self) -> bool:
        kind, value, _ = self.tok
        if kind in ("number", "letter"):
            return True
        if kind == "command":
            return value not in _TIMES and value not in ("right", "rvert", "rbrace")
        return kind == "op" and value in "({[" or (kind == "op" and value == "|" and
                                                   not self._closing_bar())

    def _closing_bar(self) -> bool:
        return getattr(self, "_bars", 0) > 0

    def power(self) -> sp.Expr:
        base = self.atom()
        if self.is_op("^"):
            self.i += 1
            self.nested()
            exponent = self.group_or_atom(signed=True)
            self.depth -= 1
            if exponent.is_number and abs(exponent) > MAX_EXPONENT:
                raise self.error(f"exponent larger than {MAX_EXPONENT}")
            if base == 0 and exponent.is_number and exponent.is_negative:
                raise self.error("division by zero")
            value = base ** exponent
            if value.is_number and not value.has(sp.nan) and value.is_extended_real is False:
                raise self.error(f"{value} is not a real number")
            return value
        return base

    def group_or_atom(self, signed: bool = False) -> sp.Expr:
        """A script or argument: {expr} or one token (x^2, \\frac12 is not supported)."""
        if self.is_op("{"):
            self.i += 1
            inner = self.expr()
            self.expect("}", "expected '}'")
            return inner
        if signed and self.is_op("-"):
            self.i += 1
            return -self.group_or_atom()
        kind, value, _ = self.tok
        if kind == "number" and "." not in value:
            self._split_number()
            return sp.Integer(value[0])
        return self.atom()

    def atom(self) -> sp.Expr:
        kind, value, _ = self.tok
        if kind == "number":
            self.i += 1
            if len(value) > 40:
                raise self.error("number out of range (at most 40 digits)")
            frac = Fraction(value)
            return sp.Rational(frac.numerator, frac.denominator)
        if kind == "letter":
            self.i += 1
            return self.name(value)
        if kind == "op" and value in "({[":
            closer = {"(": ")", "{": "}", "[": "]"}[value]
            self.i += 1
            inner = self.expr()
            self.expect(closer, f"expected {closer!r}")
            return inner
        if kind == "op" and value == "|":
            return self.bars("op", "|")
        if kind == "command":
            return self.command(value)
        raise self.error("expected a number, a name, a command or '('")

    def bars(self, kind: str, closer: str) -> sp.Expr:
        self.i += 1
        self._bars = getattr(self, "_bars", 0) + 1
        inner = self.expr()
        self._bars -= 1
        if not (self.tok[0] == kind and self.tok[1] == closer):
            raise self.error("expected a closing bar")
        self.i += 1
        return sp.Abs(inner)

    def command(self, name: str) -> sp.Expr:
        self.i += 1
        if name == "left":
            kind, value, _ = self.tok
            if kind == "op" and value == "|" or kind == "command" and value == "lvert":
                self.i += 1
                inner = self.expr()
                if not (self.is_command("right") and self.tokens[self.i + 1][1] in ("|", "rvert")):
                    raise self.error("expected \\right|")
                self.i += 2
                return sp.Abs(inner)
            if not (kind == "op" and value in "([") and not (kind == "command" and value == "{"):
                raise self.error("expected ( or [ after \\left")
            self.i += 1
            inner = self.expr()
            if not self.is_command("right"):
                raise self.error("expected \\right")
            self.i += 1
            if not (self.tok[0] == "op" and self.tok[1] in ")]"):
                raise self.error("expected ) or ] after \\right")
            self.i += 1
            return inner
        if name == "lvert":
            self.i -= 1
            return self.bars("command", "rvert")
        if name == "frac":
            self.nested()
            numerator = self.group_or_atom()
            denominator = self.group_or_atom()
            self.depth -= 1
            if denominator == 0:
                raise self.error("division by zero")
            return numerator / denominator
        if name in FUNCTIONS:
            return self.function(name)
        if name == "hat":
            letter = self.group_or_atom_name()
            return self.name(f"{letter}_hat")
        if name in _FONTS:
            return self.name(self.group_or_atom_name())
        if name in GREEK:
            return self.name(name)
        raise UserError(f"invalid {self.what} {self.text!r}: unknown command \\{name}; allowed: "
                        "\\frac \\sqrt \\left \\right \\cdot \\times \\hat \\mathrm, the Greek "
                        "letters and " + " ".join(f"\\{f}" for f in FUNCTIONS if f != "sqrt"))

    def group_or_atom_name(self) -> str:
        """The letters of {wd} or of one letter or command, for \\hat and \\mathrm."""
        if self.is_op("{"):
            self.i += 1
            letters = []
            while self.tok[0] in ("letter", "number") or self.is_command(*GREEK) or \
                    self.is_op("_"):
                letters.append(self.tok[1])
                self.i += 1
            self.expect("}", "expected '}' (only a name may be inside)")
            if not letters:
                raise self.error("expected a name")
            return "".join(letters)
        kind, value, _ = self.tok
        if kind == "letter" or (kind == "command" and value in GREEK):
            self.i += 1
            return value
        raise self.error("expected a name")

    def function(self, name: str) -> sp.Expr:
        self.nested()
        if name == "sqrt":
            argument = [self.group_or_atom()]
        elif self.is_op("(") or self.is_command("left"):
            if self.is_command("left"):
                self.i += 1
            self.expect("(", f"expected '(' after \\{name}")
            argument = [self.expr()]
            while self.is_op(","):
                self.i += 1
                argument.append(self.expr())
            if self.is_command("right"):
                self.i += 1
            self.expect(")", f"expected ')' to close \\{name}")
        else:
            argument = [self.power()]
        self.depth -= 1
        if name in ("log", "ln") and argument[0] == 0:
            raise self.error("log(0) is undefined")
        if name not in ("max", "min") and len(argument) != 1:
            raise self.error(f"\\{name} takes one argument")
        value = FUNCTIONS[name](*argument)
        if value.is_number and not value.has(sp.nan) and value.is_extended_real is False:
            raise self.error(f"{value} is not a real number")
        return value

    def name(self, base: str) -> sp.Expr:
        """A letter or Greek name with an optional index (and primes): to the resolver."""
        index = None
        if self.is_op("_"):
            self.i += 1
            index = self.index()
        while self.is_op("'"):
            self.i += 1
            base += "p"  # lambda' is the identifier lambdap, which names can map
        if index is not None and base + "_" + index in _RENAMED:
            return self.resolve(_RENAMED[base + "_" + index])
        base = _RENAMED.get(base, base)
        if index is None:
            return self.resolve(base)
        step = {"t": self.steps, "t-1": self.steps - 1, "t+1": self.steps + 1}.get(index)
        base = _BY_LETTER.get(base, base)  # b_t: the SGD buffer, as the notation table says
        if base in _STATE_LETTERS and (step is not None or index.isdigit()):
            return self.resolve(f"{base}_{step if step is not None else index}")
        if not re.fullmatch(r"[A-Za-z0-9]+", index):
            raise self.error(f"the index {index!r} of {base} is not a step (t, t-1, a number) "
                             "nor a name")
        return self.resolve(f"{base}_{index}")

    def index(self) -> str:
        if not self.is_op("{"):
            kind, value, pos = self.tok
            if kind == "letter":
                self.i += 1
                return value
            if kind == "number":  # x_12 is x_1 2, as TeX reads it
                self._split_number()
                return self.tokens[self.i - 1][1]
            raise self.error("expected an index after '_'")
        self.i += 1
        depth, parts = 1, []
        while True:
            kind, value, _ = self.tok
            if kind == "end" or len(parts) > 20:
                raise self.error("expected '}' to close the index")
            if kind == "op" and value == "{":
                depth += 1
            elif kind == "op" and value == "}":
                depth -= 1
                if depth == 0:
                    self.i += 1
                    return "".join(parts)
            elif kind in ("letter", "number") or (kind == "op" and value in "+-"):
                parts.append(value)
            elif not (kind == "command" and value in _FONTS):
                raise self.error("an index is letters, digits, + and -")
            self.i += 1

    def _split_number(self) -> None:
        """Take one digit of a number token as a script; the rest stays a number."""
        kind, value, pos = self.tok
        self.tokens[self.i] = ("number", value[0], pos)
        self.i += 1
        if len(value) > 1:
            self.tokens.insert(self.i, ("number", value[1:], pos + 1))


def parse_latex(text: str, what: str, resolve, steps: int = 1) -> sp.Expr:
    """Parse a LaTeX formula into a SymPy expression (see the module docstring)."""
    return LatexParser(text, what, resolve, steps).parse()
