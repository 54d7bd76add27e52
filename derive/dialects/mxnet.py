"""MXNet 2.x AdamW (python/mxnet/optimizer/adamW.py), from REFERENCE.md: the package was not
downloaded here, so the keywords and defaults are its documented signature (learning_rate=0.001,
beta1=0.9, beta2=0.999, epsilon=1e-6, correct_bias=True; wd, the base Optimizer's, 0.0).

lr *= sqrt(1 - b2^t)/(1 - b1^t); w -= lr*m/(sqrt(v) + eps); w -= lr*wd*w: eps on the raw
sqrt(v), and decay after the step with the bias-corrected lr (decay=after_bias_corrected).
"""
from __future__ import annotations

from .base import Dialect, Framework, Keyword

SOURCE = "MXNet 2.x python/mxnet/optimizer/adamW.py, per REFERENCE.md (not read from the package)"


def _adamw(v):
    given = {"lr": v["learning_rate"], "betas": (v["beta1"], v["beta2"]), "eps": v["epsilon"],
             "weight_decay": v["wd"], "decay": "after_bias_corrected"}
    if v["correct_bias"]:
        given["eps_added_to"] = "sqrt_v"
    else:
        given["bias_correction"] = "off"
    return "adamw", given


DIALECTS = (Dialect(
    "AdamW", (Keyword("learning_rate", "0.001"), Keyword("beta1", "0.9"), Keyword("beta2", "0.999"),
              Keyword("epsilon", "1e-6"), Keyword("correct_bias", True), Keyword("wd", "0.0")),
    _adamw, SOURCE, positional=5, doc="AdamW, decay after the step on a bias-corrected lr"),)

FRAMEWORK = Framework("mxnet", ("mxnet", "mx", "mxnet.optimizer", "mx.optimizer"), DIALECTS,
                      source="MXNet 2.x (per REFERENCE.md)", installed="mxnet")
