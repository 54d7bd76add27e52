"""Notation and LaTeX for our symbols: theta_{t-1} as \\theta_{t-1}, lr as \\gamma, weight_decay as
\\lambda; and the small formula language of prose.

NOTATION is the one table of letters. It follows torch.optim's documentation: gamma (lr), lambda
(weight decay), mu (momentum), tau (dampening), beta_1, beta_2, epsilon; the SGD buffer is b,
AMSGrad's running max v^{max}. Every formula in our documents is printed through it: the
formulas from SymPy expressions (`latex()`), the ones in prose from their source text written
between dollars (`math_latex`, `math_unicode`), never typed as LaTeX by hand.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import sympy as sp

from . import catalogue


@dataclass(frozen=True)
class Letter:
    latex: str
    unicode: str
    meaning: str  # prose (formulas between dollars) for the notation table; "" keeps it out


_GENERIC = {
    "theta": Letter(r"\theta", "θ", "one coordinate of the parameter; $theta_t$ after step $t$"),
    "g": Letter("g", "g", "its gradient, $g_t = nabla f(theta_{t-1})$"),
    "m_hat": Letter(r"\hat{m}", "m̂", "bias-corrected first moment, $m_t/(1 - beta1^t)$"),
    "v_hat": Letter(r"\hat{v}", "v̂", "bias-corrected second moment, $v_t/(1 - beta2^t)$"),
    "u": Letter("u", "u", "the update direction as it flows through the stages"),
    # names the catalogue gives its own coefficients: letters, not table rows
    "lam": Letter(r"\lambda", "λ", ""),
    "wd": Letter(r"\mathrm{wd}", "wd", ""),
}


def _notation() -> dict:
    """Each scalar's and each state entry's letter, from the catalogue (the first entry that
    names it), then the generic letters."""
    out = {}
    for e in catalogue.ENTRIES.values():
        for s in e.scalars:
            out.setdefault(s.name, Letter(s.latex, s.unicode, s.meaning))
        for s in e.states:
            out.setdefault(s.name, Letter(s.latex, s.unicode, s.meaning))
    return {**{k: v for k, v in out.items() if k not in _GENERIC}, **_GENERIC}


NOTATION = _notation()
LETTERS = {name: letter.latex for name, letter in NOTATION.items()}
_GREEK = {name: sp.latex(sp.Symbol(name)) for name in (
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "kappa", "lambda", "mu", "nu",
    "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega")}
_GREEK_UNICODE = dict(zip(_GREEK, "αβγδεζηκλμνξπρστφχψω"))
_NUMBERED = re.compile(r"^([A-Za-z]+?)(\d+)$")  # lam2 -> \lambda_{2}
_INDEXED = re.compile(r"^(.*?)_\{?(\d+|[a-z]|[a-z][-+]\d)\}?$")


def symbol_latex(symbol: sp.Symbol) -> str:
    name = symbol.name
    if " " in name or "(" in name or "*" in name:
        return math_latex(name)
    if name in LETTERS:
        return LETTERS[name]
    match = _INDEXED.match(name)
    if match and match.group(1) in LETTERS:
        base = LETTERS[match.group(1)]
        if base.endswith("_1") or base.endswith("_2"):  # beta1_t -> \beta_{1,t}
            return f"{base[:-2]}_{{{base[-1]},{match.group(2)}}}"
        if "^" in base:  # v^{\max}_{t}
            return f"{base}_{{{match.group(2)}}}"
        return f"{base}_{{{match.group(2)}}}"
    match = _NUMBERED.match(name)
    if match and match.group(1) in LETTERS:
        return f"{LETTERS[match.group(1)]}_{{{match.group(2)}}}"
    return sp.latex(symbol)  # e.g. display labels such as theta^A_2 -> \theta^{A}_{2}


def latex_names(symbols) -> dict:
    """One LaTeX name per symbol, no two alike. Where our letters would make two symbols print
    the same (the default lr is \\gamma, and so is a user's gamma; lam and weight_decay are both
    \\lambda), a symbol keeps the letter only if SymPy itself prints it so (gamma); the others
    are spelled out (\\mathrm{lr}); among names that all come from our table, the first by name
    keeps it. One call over all the formulas of a document keeps them consistent."""
    names = {s: symbol_latex(s) for s in symbols if isinstance(s, sp.Symbol)}
    groups = defaultdict(list)
    for s, text in names.items():
        groups[text].append(s)
    for text, group in groups.items():
        if len({s.name.replace("{", "").replace("}", "") for s in group}) < 2:
            continue  # one name (theta_t, theta_{t}; a Dummy c and a Symbol c): one meaning
        group.sort(key=lambda s: s.name)
        natural = [s for s in group if sp.latex(s) == text]
        keep = natural[0] if natural else group[0]
        for s in group:
            if s != keep:
                names[s] = r"\mathrm{" + s.name.replace("_", r"\_") + "}"
    return names


def latex(expr, names: dict | None = None) -> str:
    """LaTeX of a SymPy expression (or a number) with our symbol letters; `names` from
    latex_names over the whole document (default: over this expression alone)."""
    if isinstance(expr, int):
        expr = sp.Integer(expr)
    elif isinstance(expr, float):
        expr = sp.Float(expr)
    own = latex_names(expr.free_symbols)
    if names:
        own.update({s: t for s, t in names.items() if s in own})
    return sp.latex(expr, symbol_names=own)


# -- the formula language of prose ---------------------------------------------------------------
# What is written between dollars in prose: names (theta_{t-1}, v_hat_t, lam2, m^g_t), numbers,
# + - * / ** ^ ( ) , and relations; sqrt, abs, exp, log, max, min, det, sign and O(...) as
# functions. It is printed token by token, in the writer's order (SymPy would reorder terms).

_MATH_TOKEN = re.compile(r"""\s*(?:
    (?P<number>\d+(?:\.\d+)?(?:e-?\d+)?)
  | (?P<name>[A-Za-z][A-Za-z0-9]*'*(?:_(?:\{[^}]*\}|[A-Za-z0-9]+'*))*)
  | (?P<op>\*\*|\.\.\.|!=|<=|>=|->|<-|[-+*/^()\[\],=<>~|:;.])
)""", re.X)
_WORDS = {"up", "to", "and", "or", "for", "with", "if"}  # words inside a formula, set upright
_OPERATOR_NAMES = {"odot": (r"\odot", " ⊙ "), "nabla": (r"\nabla", "∇")}
_FUNCTIONS = {"diag", "norm", "sqrt", "abs", "Abs", "exp", "log", "max", "min", "Max", "Min",
              "det", "sign", "O"}
_OPS_LATEX = {"!=": r"\neq", "<=": r"\le", ">=": r"\ge", "->": r"\to", "<-": r"\leftarrow",
              "...": r"\dots", "~": r"\approx", "-": "-", "|": r"\vert", ",": ",\\ "}
_OPS_UNICODE = {"!=": "≠", "<=": "≤", ">=": "≥", "->": "→", "<-": "←", "...": "…", "~": "≈",
                "-": "−", "*": "·", ",": ", ", "|": "|"}
_SUPER = dict(zip("0123456789+-()=tnkgimax", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾⁼ᵗⁿᵏᵍⁱᵐᵃˣ"))
_SUB = dict(zip("0123456789+-()=tkijnmx", "₀₁₂₃₄₅₆₇₈₉₊₋₍₎₌ₜₖᵢⱼₙₘₓ"))


class MathError(ValueError):
    """Prose math that does not parse: a bug in a hand-written sentence, raised when printed."""


def _tokens(text: str) -> list:
    out, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _MATH_TOKEN.match(text, pos)
        if not match:
            raise MathError(f"cannot read {text[pos:]!r} in the formula {text!r}")
        out.append((match.lastgroup, match.group(match.lastgroup)))
        pos = match.end()
    return out


def _number(text: str) -> tuple:
    """1e-3 as 10^{-3}, 2e-5 as 2 10^{-5}: how a reader writes a power of ten."""
    mantissa, _, exponent = text.partition("e")
    if not exponent:
        return text, text
    power = (f"10^{{{int(exponent)}}}", "10" + _superscript_unicode(str(int(exponent))))
    if mantissa == "1":
        return power
    return rf"{mantissa} \cdot {power[0]}", f"{mantissa}·{power[1]}"


def symbol_unicode(name: str) -> str:
    """A name in Unicode for text output: lr -> γ, theta_{t-1} -> θₜ₋₁, beta1 -> β₁."""
    primes = len(name) - len(name.rstrip("'"))
    name = name.rstrip("'")
    if name in NOTATION:
        return NOTATION[name].unicode + "′" * primes
    base, sep, index = name.partition("_")
    if sep and base + "_" + index.split("_")[0] in NOTATION:  # v_hat_t
        head, _, index = index.partition("_")
        base = base + "_" + head
    if not sep or not index:
        match = _NUMBERED.match(name)
        if match:
            base, index = match.groups()
    letter = (NOTATION[base].unicode if base in NOTATION else _GREEK_UNICODE.get(base, base))
    index = index.strip("{}")
    if not index:
        return letter + "′" * primes
    sub = "".join(_SUB.get(ch, "") for ch in index)
    return letter + "′" * primes + (sub if len(sub) == len(index) else f"_{index}")


def _superscript_unicode(text: str) -> str:
    sup = "".join(_SUPER.get(ch, "") for ch in text)
    return sup if len(sup) == len(text) else f"^({text})" if len(text) > 1 else f"^{text}"


class _Math:
    """Recursive descent over the tokens, printing LaTeX and Unicode side by side."""

    def __init__(self, text: str):
        self.text, self.tokens, self.i = text, _tokens(text), 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def take(self):
        token = self.peek()
        self.i += 1
        return token

    def sequence(self, closer: str = "") -> tuple:
        tex, uni = [], []
        while True:
            kind, value = self.peek()
            if kind == "end" or (kind == "op" and value in ")]" and value == closer):
                if closer and kind == "end":
                    raise MathError(f"unclosed {'(' if closer == ')' else '['} in {self.text!r}")
                return " ".join(tex), "".join(uni)
            if kind == "op" and value in ")]":
                raise MathError(f"unbalanced {value!r} in {self.text!r}")
            if kind == "op" and value in ("**", "^"):
                self.take()
                t, u = self.exponent()
                base = tex[-1] if tex else ""
                # a letter with a superscript of its own (Rprop's g^{prev}) takes another one
                # as {g^{prev}}^{B}: g^{prev}^{B} is LaTeX's double superscript
                tex[-1:] = [(f"{{{base}}}" if "^" in base else base) + f"^{{{t}}}"]
                uni.append(_superscript_unicode(u))
                continue
            if kind == "op" and value == "*":
                self.take()
                following = self.peek()
                # juxtaposition, as a reader writes a product; a dot before a number (2·wd)
                tex.append(r"\cdot" if following[0] == "number" else "")
                uni.append("·")
                continue
            t, u = self.atom()
            tex.append(t)
            uni.append(u)

    def exponent(self) -> tuple:
        kind, value = self.peek()
        if kind == "op" and value == "-":
            self.take()
            t, u = self.exponent()
            return "-" + t, "-" + u
        if kind == "op" and value == "(":
            self.take()
            inner = self.sequence(")")
            self.take()
            return inner
        if kind == "name" and "_" in value:  # theta^B_1: B is the superscript, 1 the index
            self.take()
            sup, _, sub = value.partition("_")
            self.tokens.insert(self.i, ("op", "_sub"))
            self.tokens.insert(self.i + 1, ("index", sub))
            return self._name(sup)
        if kind in ("name", "number"):
            self.take()
            return self._name(value) if kind == "name" else (value, value)
        raise MathError(f"an exponent is missing in {self.text!r}")

    def atom(self) -> tuple:
        kind, value = self.take()
        if kind == "number":
            return _number(value)
        if kind == "index":
            return value, value
        if kind == "op" and value == "_sub":
            _, index = self.take()
            index = index.strip("{}")
            sub = "".join(_SUB.get(ch, "") for ch in index)
            return f"_{{{index}}}", sub if len(sub) == len(index) else f"_{index}"
        if kind == "name" and value in _OPERATOR_NAMES:
            return _OPERATOR_NAMES[value]
        if kind == "name" and value in _WORDS:
            return rf"\text{{ {value} }}", f" {value} "
        if kind == "name" and value in _FUNCTIONS and self.peek() == ("op", "("):
            self.take()
            inner_tex, inner_uni = self.sequence(")")
            self.take()
            if value == "sqrt":
                simple = re.fullmatch(r"[^\s+\-/·]+", inner_uni)
                return (rf"\sqrt{{{inner_tex}}}",
                        "√" + (inner_uni if simple else f"({inner_uni})"))
            if value == "norm":
                return rf"\lVert {inner_tex} \rVert", f"‖{inner_uni}‖"
            if value in ("abs", "Abs"):
                return rf"\lvert {inner_tex} \rvert", f"|{inner_uni}|"
            if value == "O":
                return rf"O\left({inner_tex}\right)", f"O({inner_uni})"
            command = {"Max": "max", "Min": "min", "sign": r"operatorname{sign}",
                       "diag": r"operatorname{diag}"}.get(value, value)
            return rf"\{command}\left({inner_tex}\right)", f"{value.lower()}({inner_uni})"
        if kind == "name":
            return self._name(value)
        if kind == "op" and value in "([":
            closer = ")" if value == "(" else "]"
            inner_tex, inner_uni = self.sequence(closer)
            self.take()
            return f"{value}{inner_tex}{closer}", f"{value}{inner_uni}{closer}"
        if kind == "op" and value in ("+", "=", "<", ">", "/", ":", ";", "."):
            spaced = value in "+=<>"
            return value, f" {value} " if spaced else value
        if kind == "op" and value == "-":
            return "-", " − " if self.i > 1 else "−"
        if kind == "op" and value in _OPS_LATEX:
            uni = _OPS_UNICODE.get(value, value)
            return _OPS_LATEX[value], uni if value in (",", "...", "|") else f" {uni} "
        raise MathError(f"unexpected {value!r} in the formula {self.text!r}")

    @staticmethod
    def _name(name: str) -> tuple:
        primes = len(name) - len(name.rstrip("'"))
        core = name.rstrip("'")
        return symbol_latex(sp.Symbol(core)) + "'" * primes, symbol_unicode(name)


def math_latex(text: str) -> str:
    """LaTeX (math mode) for a formula of prose, e.g. 'k = lr*lam' -> 'k = \\gamma \\, \\lambda'."""
    return _Math(text).sequence()[0]


def math_unicode(text: str) -> str:
    """Unicode for the same formula, for text output: 'k = lr*lam' -> 'k = γ·λ'."""
    return re.sub(r"\s+", " ", _Math(text).sequence()[1]).strip()


def notation_rows(specs=()) -> list:
    """The notation table: (LaTeX, Unicode, meaning) for the canonical names, then the symbols
    that the given specs bind directly to a torch key (eta in sgd(lr=eta)), with that key's
    meaning."""
    rows = [(symbol_latex(sp.Symbol(n)), l.unicode, l.meaning)
            for n, l in NOTATION.items() if l.meaning]
    seen = {r[0] for r in rows}
    bound = defaultdict(list)
    for spec in specs:
        for key, value in spec.hyper().items():
            if isinstance(value, sp.Symbol) and value.name != key:
                bound[value].append(key)
    for symbol in sorted(bound, key=lambda s: s.name):
        tex = symbol_latex(symbol)
        if tex in seen:
            continue
        seen.add(tex)
        keys = sorted(set(bound[symbol]))
        words = " or ".join(NOTATION[k].meaning.split(" (")[0] for k in keys if k in NOTATION)
        rows.append((tex, symbol_unicode(symbol.name),
                     f"{words} in the specs that write "
                     + ", ".join(f"`{k}={symbol.name}`" for k in keys)))
    return rows
