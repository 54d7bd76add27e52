"""What the optimizer benchmark measures: one configuration per catalogue entry, and the
GPT-2-small parameter list.

    CASES = {entry name: spec text}        every entry of derive.catalogue.ENTRIES
    representative(entry) -> spec text
    gpt2_shapes(quick=False) -> [shape, ...]

An entry's configuration is torch's defaults with every switch that defaults to 0 turned on at
the entry's typical value (entry.switches: weight_decay everywhere, SGD's momentum, RMSprop's
momentum): the branch that holds the most state, so the step moves the most bytes. A new entry
is benchmarked with no change here.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive.catalogue import ENTRIES


def _text(value) -> str:
    return repr(float(sp.Rational(value)))


def representative(entry) -> str:
    given = {}
    for hyper in (h for h in entry.hypers if h.torch):  # torch's class is the reference
        values = [s.typical if s.name in entry.switches and sp.Rational(s.default) == 0
                  else s.default for s in hyper.scalars]
        if values != [s.default for s in hyper.scalars]:
            texts = [_text(v) for v in values]
            given[hyper.key] = f"({', '.join(texts)})" if hyper.pair else texts[0]
    return f"{entry.name}({', '.join(f'{k}={v}' for k, v in given.items())})"


CASES = {name: representative(e) for name, e in ENTRIES.items()}

# GPT-2 small (Radford et al. 2019; Hugging Face's GPT2LMHeadModel, lm_head tied to wte):
# 50257 tokens, 1024 positions, width 768, 12 blocks: 148 tensors, 124,439,808 parameters
GPT2_SMALL = {"vocab": 50257, "positions": 1024, "width": 768, "blocks": 12}
GPT2_QUICK = {"vocab": 50257 // 16, "positions": 64, "width": 64, "blocks": 12}  # same tensors


def gpt2_shapes(quick: bool = False) -> list:
    """The parameter shapes of GPT-2 small in model order (quick: the same 148 tensors, narrow)."""
    c = GPT2_QUICK if quick else GPT2_SMALL
    d = c["width"]
    block = [(d,), (d,),  # ln_1 weight, bias
             (d, 3 * d), (3 * d,), (d, d), (d,),  # attn c_attn, c_proj (weight, bias)
             (d,), (d,),  # ln_2
             (d, 4 * d), (4 * d,), (4 * d, d), (d,)]  # mlp c_fc, c_proj
    return [(c["vocab"], d), (c["positions"], d)] + block * c["blocks"] + [(d,), (d,)]
