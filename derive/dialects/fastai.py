"""fastai 2.8.12 (fastai/optimizer.py).

`weight_decay` (decouple_wd=True, the default) is p.data.mul_(1 - lr*wd), before the step:
decoupled, lr-scaled; `l2_reg` (decouple_wd=False) adds wd*p to the gradient. Adam's
average_grad is dampened (1 - mom), its step p -= lr/debias1 * grad_avg/(sqrt(sqr_avg/debias2)
+ eps): torch's eps placement; defaults mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01. SGD's
average_grad is undampened from a zero buffer, so buf_1 = g_1: torch's buffer. lr is required.
"""
from __future__ import annotations

from .base import REQUIRED, Dialect, Framework, Keyword

SOURCE = "fastai 2.8.12 fastai/optimizer.py"
LR = Keyword("lr", REQUIRED, "lr")


def _decay(v) -> dict:
    return {"weight_decay": v["wd"], "decay": "decoupled" if v["decouple_wd"] else "l2"}


def _adam(v):
    return ("adamw" if v["decouple_wd"] else "adam"), {
        "lr": v["lr"], "betas": (v["mom"], v["sqr_mom"]), "eps": v["eps"], **_decay(v)}


def _sgd(v):
    return "sgd", {"lr": v["lr"], "momentum": v["mom"], **_decay(v)}


DIALECTS = (
    Dialect("Adam", (LR, Keyword("mom", "0.9"), Keyword("sqr_mom", "0.99"), Keyword("eps", "1e-5"),
                     Keyword("wd", "0.01"), Keyword("decouple_wd", True)), _adam, SOURCE,
            doc="Adam with true weight decay by default"),
    Dialect("SGD", (LR, Keyword("mom", "0."), Keyword("wd", "0."), Keyword("decouple_wd", True)),
            _sgd, SOURCE, doc="SGD with true weight decay by default"),
)

FRAMEWORK = Framework("fastai", ("fastai", "fastai.optimizer"), DIALECTS,
                      source="fastai 2.8.12", installed="fastai")
