"""LaTeX for our symbols: theta_{t-1} as \\theta_{t-1}, lr as \\gamma, weight_decay as \\lambda.

Letters follow torch.optim's documentation: gamma (lr), lambda (weight decay), mu (momentum),
tau (dampening), beta_1, beta_2, epsilon; the SGD buffer is b, AdamW's running max v^{max}.
Every formula in our LaTeX is printed from a SymPy expression through `latex()`, never typed.
"""
from __future__ import annotations

import re
from collections import defaultdict

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
