"""Canonical SymPy symbols: one factory, so that equal names are always the same symbol.

SymPy treats Symbol('x') and Symbol('x', real=True) as different objects, so every symbol in the
project is made here, with assumptions fixed by its role:
  - hyperparameters (canonical names and every identifier a user writes) are nonnegative reals:
    torch rejects negative lr, momentum, weight_decay, eps and betas; dampening is not validated by
    torch but is used in [0, 1]. The assumption lets sqrt((g + lam*theta)**2) stay honest while
    |c + lam| simplifies for numeric c > 0;
  - theta and gradients are reals; each state entry has the assumptions its catalogue entry
    gives (first moments real, second moments nonnegative, the step count a nonnegative integer).
Indices are integers (theta_0, g_1) or the generic step labels 't' and 't-1' used by recurrences.
"""
from __future__ import annotations

import re
from functools import lru_cache

import sympy as sp

from . import catalogue
from .errors import UserError

# every state entry of the catalogue, name -> assumptions (one name has one meaning throughout)
_STATE_ASSUMPTIONS = catalogue.state_assumptions()
STATE_NAMES = tuple(_STATE_ASSUMPTIONS)
CANONICAL_HYPER = tuple(dict.fromkeys(s.name for e in catalogue.ENTRIES.values()
                                      for s in e.scalars))

# names a user may not take for a hyperparameter: they denote theta, gradients and state
RESERVED = re.compile(r"^(" + "|".join(("theta", "g") + STATE_NAMES) + r")_(\d+|t|\{t-1\})$")


@lru_cache(maxsize=None)
def hyper(name: str) -> sp.Symbol:
    """A hyperparameter symbol (canonical such as 'lr', or a user's identifier such as 'eta')."""
    return sp.Symbol(name, nonnegative=True)


def _label(index) -> str:
    # the generic previous step prints as theta_{t-1}, so it reads as one subscript
    return "{t-1}" if index == "t-1" else str(index)


@lru_cache(maxsize=None)
def theta(index=0) -> sp.Symbol:
    return sp.Symbol(f"theta_{_label(index)}", real=True)


@lru_cache(maxsize=None)
def grad(index=1) -> sp.Symbol:
    return sp.Symbol(f"g_{_label(index)}", real=True)


@lru_cache(maxsize=None)
def state(name: str, index=0) -> sp.Symbol:
    return sp.Symbol(f"{name}_{_label(index)}", **_STATE_ASSUMPTIONS[name])


@lru_cache(maxsize=None)
def stepped(symbol: sp.Symbol, index) -> sp.Symbol:
    """The per-step copy of a scheduled hyperparameter: eta -> eta_3 (step 3) or eta_t (generic)."""
    return sp.Symbol(f"{symbol.name}_{_label(index)}", **symbol.assumptions0)


def check_stepped_names(schedule, symbols) -> None:
    """UserError when a user's symbol has the name of a per-step copy of a scheduled one: with
    eta scheduled, eta_1 is step 1's eta, so a user's own eta_1 would silently become it."""
    for s in schedule:
        taken = re.compile(rf"^{re.escape(s.name)}_(\d+|t)$")
        for u in by_name(symbols):
            if u != s and taken.match(u.name):
                raise UserError(f"the name {u.name} is taken by the per-step copies of the "
                                f"scheduled {s.name} ({s.name}_1, {s.name}_2, ..., {s.name}_t); "
                                f"rename it (e.g. {u.name.replace('_', '')})")


def canonical(name: str) -> sp.Symbol | None:
    """The canonical symbol for a reserved name such as 'theta_0', 'g_2' or 'v_0', else None."""
    match = RESERVED.match(name)
    if not match:
        return None
    kind, index = match.groups()
    index = "t-1" if index == "{t-1}" else index
    if kind == "theta":
        return theta(index)
    if kind == "g":
        return grad(index)
    return state(kind, index)


def by_name(symbols) -> list:
    """Symbols in a deterministic order (sympy's set iteration order is not)."""
    return sorted(symbols, key=lambda s: s.name)
