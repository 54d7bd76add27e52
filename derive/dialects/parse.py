"""Reading a framework's call, by hand: `keras.AdamW(learning_rate=1e-3, weight_decay=w)`.

    call  := framework "." name "(" [ arg ("," arg)* ] ")"
    arg   := [ keyword "=" ] value   |   call          (a nested call: optax.chain's transforms)
    value := number | true | false | True | False | None | identifier | arithmetic | (value, value)

The values are derive.grammar's (exact rationals, a whitelist of functions; nothing reaches
eval or sympify). Arguments bind as Python binds them: by position in the framework's order,
then by keyword; whatever is left out takes the framework's default.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..errors import UserError
from ..grammar import Parser, default_resolver
from ..symbols import hyper
from .base import REQUIRED, Dialect, Framework


@dataclass(frozen=True)
class Call:
    framework: Framework
    dialect: Dialect
    values: dict  # keyword -> bound value, the framework's defaults filled in
    texts: dict  # keyword -> the value's text as the user wrote it (only those written)
    nested: tuple = ()  # a variadic call's calls, in order (optax.chain's transforms)

    @property
    def name(self) -> str:
        return f"{self.framework.name}.{self.dialect.name}"

    def built(self):
        return self.dialect.build(self.values)


def _resolve(name: str) -> sp.Expr:
    if "." in name:
        raise UserError(f"{name} is a call, not a value: a framework's call can only stand as a "
                        "whole spec, or as a transform inside a chain")
    return default_resolver(name)


def split(name: str, frameworks: dict) -> tuple:
    """'keras.optimizers.AdamW' -> (the keras Framework, its AdamW Dialect)."""
    head, _, short = name.rpartition(".")
    framework = next((f for f in frameworks.values() if head in f.prefixes), None)
    if framework is None:
        raise UserError(f"unknown framework {head!r} in {name!r}; frameworks with dialects: "
                        f"{', '.join(frameworks)}")
    dialect = framework.dialect(short)
    if dialect is None:
        raise UserError(f"{framework.name} has no optimizer {short!r} modelled; modelled: "
                        f"{', '.join(d.name for d in framework.dialects)}")
    return framework, dialect


def parse_call(text: str, frameworks: dict) -> Call:
    parser = Parser(text, "spec", _resolve, dotted=True)
    call = _call(parser, frameworks, None)
    parser.expect_end()
    return call


def _call(parser: Parser, frameworks: dict, within: Framework | None) -> Call:
    tok = parser.tok
    if tok.kind != "name" or "." not in tok.text:
        raise parser.error("expected a framework's call such as optax.adam(...)")
    framework, dialect = split(tok.text, frameworks)
    if within is not None and framework is not within:
        raise UserError(f"{within.name}'s chain takes {within.name} transforms, "
                        f"got {tok.text}")
    parser.i += 1
    parser.expect("(", f"expected '(' after {tok.text}")
    positional, named, texts = [], {}, {}
    shown = f"{framework.name}.{dialect.name}()"
    if not parser.accept(")"):
        while True:
            key = parser.tok
            nxt = parser.tokens[parser.i + 1]
            if key.kind == "name" and nxt.kind == "op" and nxt.text == "=":
                parser.i += 2
                if dialect.keyword(key.text) is None:
                    raise UserError(f"{shown} got an unexpected keyword argument {key.text!r}; "
                                    f"its keywords: {_listed(dialect)}")
                if key.text in named:
                    raise UserError(f"{shown} got multiple values for argument {key.text!r}")
                named[key.text], text = _value(parser)
                texts[key.text] = text
            elif named:
                raise parser.error("positional argument follows keyword argument")
            elif dialect.variadic:
                positional.append(_call(parser, frameworks, framework))
            else:
                positional.append(_value(parser))
            if parser.accept(")"):
                break
            parser.expect(",", "expected ',' or ')'")
    if dialect.variadic:
        return Call(framework, dialect, {"*": tuple(c.built() for c in positional)}, {},
                    tuple(positional))
    limit = len(dialect.keywords) if dialect.positional is None else dialect.positional
    if len(positional) > limit:
        raise UserError(f"{shown} takes {limit} positional arguments but {len(positional)} "
                        "were given")
    for keyword, (value, text) in zip(dialect.keywords, positional):
        if keyword.name in named:
            raise UserError(f"{shown} got multiple values for argument {keyword.name!r}")
        named[keyword.name], texts[keyword.name] = value, text
    return Call(framework, dialect, _bind(dialect, named, shown), texts)


def _value(parser: Parser) -> tuple:
    """(value, its text as written)."""
    tok, nxt = parser.tok, parser.tokens[parser.i + 1]
    if tok.kind == "name" and tok.text == "None" and (nxt.kind == "end" or nxt.text in ",)"):
        parser.i += 1
        return None, "None"
    begin = tok.pos
    value = parser.value()
    return value, " ".join(parser.text[begin:parser.tok.pos].split())


def _bind(dialect: Dialect, named: dict, shown: str) -> dict:
    values = {}
    for k in dialect.keywords:
        if k.name not in named:
            if k.default is REQUIRED:
                values[k.name] = hyper(k.symbol)
            elif k.pair:
                values[k.name] = tuple(_number(d) for d in k.default)
            else:
                values[k.name] = _number(k.default)
            continue
        value = named[k.name]
        if k.flag and not isinstance(value, bool):
            raise UserError(f"{shown}: {k.name} must be True or False, got {value}")
        if not k.flag and isinstance(value, bool):
            raise UserError(f"{shown}: {k.name} takes a number, got {value}")
        if value is None and not k.optional:
            raise UserError(f"{shown}: {k.name}=None is not modelled; give a number")
        if k.pair and not isinstance(value, tuple):
            raise UserError(f"{shown}: {k.name} must be a pair, got {value}")
        if isinstance(value, tuple) and not k.pair:
            raise UserError(f"{shown}: {k.name} takes one number, got a pair")
        values[k.name] = value
    return values


def _number(default):
    """A default as the framework writes it: decimal text as an exact rational; True/False and
    None as they are."""
    if default is None or isinstance(default, bool):
        return default
    return sp.Rational(default)


def _listed(dialect: Dialect) -> str:
    return ", ".join(k.name for k in dialect.keywords)
