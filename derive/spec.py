"""The spec language: `name(key=value, ...)`, with torch.optim's keyword names and semantics.

    spec  := name [ "(" [ arg ("," arg)* ] ")" ]       sgd(lr=eta, momentum=mu, weight_decay=lam)
    name  := sgd | adam | adamw
    arg   := key "=" value
    value := number | true | false | identifier | arithmetic | (value, value)

Extra keys beyond torch's: `decay` (where weight_decay enters) and `buffer` (SGD's momentum buffer
initialisation). A Spec keeps only what the user wrote; `hyper()` fills the rest, either with
symbols (symbolic commands) or with torch's numeric defaults (numeric commands).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType

import sympy as sp

from .errors import UserError
from .grammar import Parser
from .symbols import hyper as hyper_symbol

NAMES = ("sgd", "adam", "adamw")
DECAYS = {
    "l2": "coupled L2: g <- g + weight_decay*theta, before momentum or moments (torch SGD/Adam)",
    "decoupled": "decoupled, lr-scaled: theta <- theta*(1 - lr*weight_decay) (torch AdamW)",
    "independent": "decoupled, lr-independent: theta <- theta*(1 - weight_decay) (Loshchilov & Hutter)",
    "after": "decoupled, applied after the step to the updated theta (old Hugging Face AdamW)",
}
BUFFERS = {
    "torch": "the first gradient is copied into the buffer, undampened (torch)",
    "zero": "the buffer starts at 0: buf = momentum*buf + (1 - dampening)*g from step 1",
}

# torch.optim's keyword defaults (torch 2.13 sgd.py / adam.py / adamw.py)
TORCH_DEFAULTS = {
    "sgd": {"lr": "1e-3", "momentum": "0", "dampening": "0", "weight_decay": "0",
            "nesterov": False, "maximize": False, "decay": "l2", "buffer": "torch"},
    "adam": {"lr": "1e-3", "betas": ("0.9", "0.999"), "eps": "1e-8", "weight_decay": "0",
             "amsgrad": False, "maximize": False, "decoupled_weight_decay": False, "decay": "l2"},
    "adamw": {"lr": "1e-3", "betas": ("0.9", "0.999"), "eps": "1e-8", "weight_decay": "1e-2",
              "amsgrad": False, "maximize": False, "decay": "decoupled"},
}
KEYS = {name: tuple(defaults) for name, defaults in TORCH_DEFAULTS.items()}
FLAGS = ("nesterov", "maximize", "amsgrad", "decoupled_weight_decay")
CHOICES = {"decay": tuple(DECAYS), "buffer": tuple(BUFFERS)}
# coefficients whose torch default is non-zero become symbols when a symbolic command omits them
SYMBOLIC_WHEN_OMITTED = {"lr", "betas", "eps"}


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


@dataclass(frozen=True)
class Spec:
    """A parsed, validated spec. `given` holds what the user wrote, key -> value, in order."""

    name: str
    given: MappingProxyType
    # the text the user wrote for each value (key, or (key, index) for betas): messages and
    # printing show 1e-3 as written, not as the exact rational 1/1000 it is computed with
    sources: MappingProxyType = field(default_factory=lambda: MappingProxyType({}),
                                      compare=False)

    # -- derived views -----------------------------------------------------------------------
    @property
    def family(self) -> str:
        return "sgd" if self.name == "sgd" else "adam"

    def flag(self, key: str) -> bool:
        return bool(self.given.get(key, TORCH_DEFAULTS[self.name].get(key, False)))

    @property
    def decay(self) -> str:
        if "decay" in self.given:
            return self.given["decay"]
        if self.name == "adam" and self.flag("decoupled_weight_decay"):
            return "decoupled"
        return TORCH_DEFAULTS[self.name]["decay"]

    @property
    def buffer(self) -> str:
        return self.given.get("buffer", "torch")

    def hyper(self, numeric: bool = False) -> dict:
        """Canonical hyperparameters lr, momentum, dampening, weight_decay, beta1, beta2, eps.

        numeric=False: omitted coefficients that torch defaults to a non-zero value are symbols
        named canonically (AdamW's weight_decay too); omitted features stay off (0).
        numeric=True: omitted values take torch's defaults; a symbolic value is an error.
        """
        defaults = TORCH_DEFAULTS[self.name]
        out = {}
        for key in KEYS[self.name]:
            if key in FLAGS or key in CHOICES:
                continue
            if key in self.given:
                value = self.given[key]
            elif numeric:
                value = defaults[key]
                value = tuple(map(_rational, value)) if key == "betas" else _rational(value)
            elif key in SYMBOLIC_WHEN_OMITTED or (key == "weight_decay" and self.name == "adamw"):
                value = (hyper_symbol("beta1"), hyper_symbol("beta2")) if key == "betas" \
                    else hyper_symbol(key)
            else:
                value = sp.Integer(0)
            if key == "betas":
                out["beta1"], out["beta2"] = value
            else:
                out[key] = value
        if numeric:
            for key, value in out.items():
                if not value.is_number:
                    shown = f"betas=({self.given['betas'][0]}, {self.given['betas'][1]})" \
                        if key.startswith("beta") and "betas" in self.given \
                        else f"{key}={value}"
                    raise UserError(
                        f"{shown} is symbolic, but this command needs numbers: give every "
                        "hyperparameter a numeric value or leave it out for torch's default"
                    )
        return out

    def momentum_on(self) -> bool:
        return self.family == "sgd" and self.given.get("momentum", 0) != 0

    def decay_on(self) -> bool:
        if self.name == "adamw" and "weight_decay" not in self.given:
            return True  # AdamW's weight_decay defaults to 1e-2 (or the symbol weight_decay)
        return self.given.get("weight_decay", 0) != 0

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
        for key in KEYS[self.name]:
            if key == "betas":
                pair = (filled["beta1"].xreplace(mapping), filled["beta2"].xreplace(mapping))
                if "betas" in given or pair != (filled["beta1"], filled["beta2"]):
                    given["betas"] = pair
            elif key in filled:
                value = filled[key].xreplace(mapping)
                if key in given or value != filled[key]:
                    given[key] = value
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


def _check_values(name: str, given: dict, sources: dict) -> None:
    """torch's own validation (with torch's wording), applied where a value is a known number.
    Messages show the value as the user wrote it (torch prints the Python value passed)."""

    def shown(key, value, index=None):
        text = sources.get(key if index is None else (key, index))
        return text if text else fmt_number(value)

    def known(value):
        return isinstance(value, sp.Expr) and value.is_number

    def negative(value):
        # NaN counts as negative, so it gets torch's words where torch has a check (its Adam
        # refuses NaN through `not 0.0 <= lr`); a NaN hyperparameter only ever yields NaN
        if not isinstance(value, sp.Expr):
            return False
        return value.has(sp.nan) or bool(value.is_extended_negative)  # -oo too, as torch

    numbers = [(key, v, i) for key, value in given.items() if isinstance(value, (sp.Expr, tuple))
               for i, v in (enumerate(value) if isinstance(value, tuple) else [(None, value)])]
    for key, value, index in numbers:  # before torch's checks: beta >= 1 cannot order I
        # symbolic values too: symbols are nonnegative reals, so sqrt(-x - 1) is never real
        # (a claim may state a complex formula, to be refuted; a hyperparameter may not)
        if not value.has(sp.nan) and value.is_extended_real is False:
            raise UserError(f"{key} must be a real number, got {shown(key, value, index)}")

    if "lr" in given and negative(given["lr"]):
        raise UserError(f"Invalid learning rate: {shown('lr', given['lr'])}")
    if name == "sgd" and "momentum" in given and negative(given["momentum"]):
        raise UserError(f"Invalid momentum value: {shown('momentum', given['momentum'])}")
    if "eps" in given and negative(given["eps"]):
        raise UserError(f"Invalid epsilon value: {shown('eps', given['eps'])}")
    if "betas" in given:
        for index, beta in enumerate(given["betas"]):
            if negative(beta) or (known(beta) and beta >= 1) or bool((beta - 1).is_nonnegative):
                raise UserError(f"Invalid beta parameter at index {index}: {shown('betas', beta, index)}")
    if "weight_decay" in given and negative(given["weight_decay"]):
        raise UserError(f"Invalid weight_decay value: {shown('weight_decay', given['weight_decay'])}")
    if given.get("nesterov"):
        momentum = given.get("momentum", sp.Integer(0))
        dampening = given.get("dampening", sp.Integer(0))
        if (known(momentum) and momentum <= 0) or dampening != 0:
            raise UserError("Nesterov momentum requires a momentum and zero dampening")
    for key, value, index in numbers:  # keys torch does not check (dampening)
        if value.has(sp.nan):
            raise UserError(f"{key} must be a real number, got {shown(key, value, index)}")
    if name == "adam" and given.get("decoupled_weight_decay") and given.get("decay", "decoupled") != "decoupled":
        raise UserError(
            f"decoupled_weight_decay=true contradicts decay={given['decay']}; "
            "give one of them"
        )


def make_spec(name: str, given: dict, sources: dict | None = None) -> Spec:
    """Validate keys and values (already parsed) and build a Spec."""
    if name not in NAMES:
        raise UserError(f"unknown optimizer {name!r}; valid names: {', '.join(NAMES)}")
    valid = KEYS[name]
    for key, value in given.items():
        if key not in valid:
            extra = ""
            if name == "adamw" and key == "decoupled_weight_decay":
                extra = " (AdamW.__init__() got an unexpected keyword argument " \
                        "'decoupled_weight_decay': AdamW's decay is always decoupled)"
            raise UserError(f"unknown key {key!r} for {name}{extra}; valid keys: {', '.join(valid)}")
        if key in FLAGS and not isinstance(value, bool):
            raise UserError(f"{key} must be true or false (a concrete flag), got {value}")
        if key in CHOICES and value not in CHOICES[key]:
            raise UserError(
                f"{key} must be one of {', '.join(CHOICES[key])}, got {value}"
            )
        if key == "betas" and not isinstance(value, tuple):
            raise UserError(f"betas must be a pair (beta1, beta2), got {value}")
        if key not in FLAGS and key not in CHOICES and key != "betas" \
                and not isinstance(value, sp.Expr):
            raise UserError(f"{key} must be a number or an expression, got {value}")
    _check_values(name, given, sources or {})
    return Spec(name, MappingProxyType(dict(given)), MappingProxyType(dict(sources or {})))


def parse_spec(text: str) -> Spec:
    """Parse `name(key=value, ...)` without eval: see derive.grammar for the value language."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("invalid spec: empty; expected e.g. sgd(lr=eta, momentum=mu)")
    parser = Parser(text, "spec")
    tok = parser.tok
    if tok.kind != "name":
        raise parser.error("expected an optimizer name (" + ", ".join(NAMES) + ")")
    name = tok.text
    if name not in NAMES:
        raise UserError(f"unknown optimizer {name!r}; valid names: {', '.join(NAMES)}")
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
                if key_tok.text in CHOICES:
                    choice = parser.tok
                    if choice.kind != "name":
                        raise parser.error(f"expected one of {', '.join(CHOICES[key_tok.text])}")
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
