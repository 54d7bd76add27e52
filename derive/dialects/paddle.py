"""PaddlePaddle AdamW (phi/kernels/funcs/adam_functors.h), from REFERENCE.md: the package was not
downloaded here, so the keyword order and defaults are paddle.optimizer.AdamW's documented
signature (learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-08, weight_decay=0.01).

The kernel: p -= lr_orig*coeff*p (decoupled, lr-scaled, before the step), then
p -= lr*(m/(sqrt(v) + eps*sqrt(1 - b2^t))) with lr = lr_orig*sqrt(1 - b2^t)/(1 - b1^t): eps
times sqrt(1 - b2^t) on the raw sqrt(v) is torch's eps on sqrt(v_hat), so this is torch.optim.AdamW.
"""
from __future__ import annotations

from .base import Dialect, Framework, Keyword

SOURCE = "PaddlePaddle paddle.optimizer.AdamW, per REFERENCE.md (not read from the package)"

DIALECTS = (Dialect(
    "AdamW", (Keyword("learning_rate", "0.001"), Keyword("beta1", "0.9"), Keyword("beta2", "0.999"),
              Keyword("epsilon", "1e-08"), Keyword("weight_decay", "0.01"),
              Keyword("amsgrad", False)),
    lambda v: ("adamw", {"lr": v["learning_rate"], "betas": (v["beta1"], v["beta2"]),
                         "eps": v["epsilon"], "weight_decay": v["weight_decay"],
                         "amsgrad": v["amsgrad"]}),
    SOURCE, positional=5, doc="AdamW as torch's (the kernel, not the docs' formula)"),)

FRAMEWORK = Framework("paddle", ("paddle", "paddle.optimizer"), DIALECTS,
                      source="PaddlePaddle (per REFERENCE.md)", installed="paddle")
