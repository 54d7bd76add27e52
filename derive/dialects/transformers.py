"""Hugging Face transformers 4.49.0 (src/transformers/optimization.py, class AdamW; removed in
4.50.0).

Its step: m, v as torch's; denom = sqrt(v) + eps (eps on the raw sqrt(v): eps_added_to=sqrt_v);
step_size = lr*sqrt(1 - b2^t)/(1 - b1^t) when correct_bias, else lr (bias_correction=off);
p.addcdiv_(m, denom, value=-step_size); then p.add_(p, alpha=-lr*wd) on the updated p: decay
after the step (decay=after). Defaults eps=1e-6, weight_decay=0.0.
"""
from __future__ import annotations

from .base import Dialect, Framework, Keyword

SOURCE = "transformers 4.49.0 src/transformers/optimization.py AdamW"


def _adamw(v):
    given = {"lr": v["lr"], "betas": v["betas"], "eps": v["eps"],
             "weight_decay": v["weight_decay"], "decay": "after"}
    if v["correct_bias"]:
        given["eps_added_to"] = "sqrt_v"
    else:  # lr*m/(sqrt(v) + eps): where eps goes no longer differs
        given["bias_correction"] = "off"
    return "adamw", given


DIALECTS = (Dialect(
    "AdamW", (Keyword("lr", "1e-3"), Keyword("betas", ("0.9", "0.999")), Keyword("eps", "1e-6"),
              Keyword("weight_decay", "0.0"), Keyword("correct_bias", True),
              Keyword("no_deprecation_warning", False)),
    _adamw, SOURCE, doc="old Hugging Face AdamW: decay after the step, eps on the raw sqrt(v)"),)

FRAMEWORK = Framework("transformers", ("transformers", "transformers.optimization"), DIALECTS,
                      source="transformers 4.49.0", installed="transformers")
