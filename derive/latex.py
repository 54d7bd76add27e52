"""LaTeX for our symbols: theta_{t-1} as \\theta_{t-1}, lr as \\gamma, weight_decay as \\lambda.

Letters follow torch.optim's documentation: gamma (lr), lambda (weight decay), mu (momentum),
tau (dampening), beta_1, beta_2, epsilon; the SGD buffer is b, AdamW's running max v^{max}.
Every formula in our LaTeX is printed from a SymPy expression through `latex()`, never typed.
"""
from __future__ import annotations

import re

import sympy as sp

LETTERS = {
    "lr": r"\gamma", "weight_decay": r"\lambda", "momentum": r"\mu", "dampening": r"\tau",
    "eps": r"\epsilon", "beta1": r"\beta_1", "beta2": r"\beta_2",
    "theta": r"\theta", "g": "g", "buf": "b", "m": "m", "v": "v", "vmax": r"v^{\max}", "t": "t",
}
_INDEXED = re.compile(r"^(.*?)_(\d+|t|t-1)$")


def symbol_latex(symbol: sp.Symbol) -> str:
    name = symbol.name
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
    return sp.latex(symbol)


def latex(expr) -> str:
    """LaTeX of a SymPy expression (or a number) with our symbol letters."""
    if isinstance(expr, int):
        expr = sp.Integer(expr)
    elif isinstance(expr, float):
        expr = sp.Float(expr)
    names = {s: symbol_latex(s) for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    return sp.latex(expr, symbol_names=names)
