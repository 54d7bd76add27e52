"""What a dialect is: another framework's optimizer call, in that framework's own words, and how
it maps onto a catalogue entry plus the variant keys of issue 11.

A dialect lists the call's keywords in the framework's positional order with the framework's
defaults (read from its source: `source` says where), and a function from the bound values to
the catalogue entry's keys. Everything that encodes a convention (where the decay enters, where
eps is added, whether the lr sits inside the momentum buffer) is in that function, as data a
reader can check against the framework's source line by line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

REQUIRED = object()  # a keyword without a default (optax's learning_rate, TF-Addons' weight_decay)


@dataclass(frozen=True)
class Keyword:
    name: str
    # the framework's default: decimal text (exact: 1e-7 is 1/10**7), a pair of texts, a bool,
    # None (the framework's "off", e.g. Keras' weight_decay=None), or REQUIRED
    default: object
    # for a REQUIRED number: the catalogue's symbol it stands for when omitted (symbolic commands
    # treat it as the entry's own unknown lr; numeric commands ask for a number)
    symbol: str = ""

    @property
    def flag(self) -> bool:
        return isinstance(self.default, bool)

    @property
    def pair(self) -> bool:
        return isinstance(self.default, tuple)

    @property
    def optional(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Dialect:
    name: str  # the call without its framework prefix: "AdamW", "adamw", "chain"
    keywords: tuple  # Keyword, in the framework's positional order
    # bound values (keyword -> sympy number/expression, bool, pair or None; a variadic call's
    # "*" -> its nested calls) -> what the framework module makes of them (for most: the
    # catalogue entry's name and its keys, see Framework.finish)
    build: Callable = field(compare=False)
    source: str = ""  # where the keywords, defaults and rule were read
    positional: int | None = None  # how many keywords may be passed by position (None: all)
    variadic: bool = False  # takes only nested calls of its framework, by position (optax.chain)
    doc: str = ""  # one line: what the call does in optequiv's words, for `translate` and lists

    def keyword(self, name: str) -> Keyword | None:
        return next((k for k in self.keywords if k.name == name), None)


@dataclass(frozen=True)
class Framework:
    name: str  # the prefix users write: "optax", "keras"
    prefixes: tuple  # every spelling of the prefix, the first as printed: ("keras", ...)
    dialects: tuple  # Dialect
    # what a call's build returned -> (entry name, given keys): the identity for most
    # frameworks; optax turns a chain of its transforms into the one rule they compose to
    finish: Callable = field(default=lambda built: built, compare=False)
    source: str = ""  # the package and version the dialects were read from
    installed: str = ""  # the Python package whose presence the real cross-check needs
    # composed calls that no single dialect is (optax's Adam + L2 is a chain), placeholders as
    # identifiers: `translate` tries them with each placeholder a fresh symbol
    recipes: tuple = ()

    def dialect(self, name: str) -> Dialect | None:
        return next((d for d in self.dialects if d.name == name), None)
