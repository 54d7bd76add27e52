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
    "lam": r"\lambda", "wd": r"\mathrm{wd}", "u": "u",
}
_NUMBERED = re.compile(r"^([A-Za-z]+?)(\d+)$")  # lam2 -> \lambda_{2}
_INDEXED = re.compile(r"^(.*?)_\{?(\d+|t|t-1)\}?$")


_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[_^](?:\{[^}]*\}|[A-Za-z0-9]+))*|\S")
_WORDS = {"sqrt": r"\operatorname{sqrt}", "det": r"\det", "up": r"\text{ up }",
          "to": r"\text{ to }"}


def label_latex(text: str) -> str:
    """LaTeX for a display label such as 'theta^B_2 - theta^A_2' (names become symbols)."""
    out = []
    for token in _TOKEN.findall(text):
        if token in _WORDS:
            out.append(_WORDS[token])
        elif token[0].isalpha():
            out.append(symbol_latex(sp.Symbol(token)))
        else:
            out.append({"*": r"\,", "<": r"<", ">": ">"}.get(token, token))
    return " ".join(out)


def symbol_latex(symbol: sp.Symbol) -> str:
    name = symbol.name
    if " " in name or "(" in name:
        return label_latex(name)
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


def latex(expr) -> str:
    """LaTeX of a SymPy expression (or a number) with our symbol letters."""
    if isinstance(expr, int):
        expr = sp.Integer(expr)
    elif isinstance(expr, float):
        expr = sp.Float(expr)
    names = {s: symbol_latex(s) for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    return sp.latex(expr, symbol_names=names)
