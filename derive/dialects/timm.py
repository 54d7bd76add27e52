"""timm 1.0.31 (timm/optim/adamw.py, lion.py).

Decay is param.mul_(1 - wd_scale*wd) before the step, wd_scale = lr, or lr**2/max_lr with
corrected_weight_decay=True, max_lr the lr snapshot taken at construction (_max_lr_snapshot):
decay_scale=lr_squared_over_max with max_lr = lr. AdamW's direction is torch's (eps on
sqrt(v_hat)). caution and clipping_threshold (other rules) are not modelled. Adan (proximal
decay) has no catalogue entry yet.
"""
from __future__ import annotations

from ..errors import UserError
from .base import Dialect, Framework, Keyword

SOURCE = "timm 1.0.31 timm/optim/{}.py"


def _decay(v) -> dict:
    if v["caution"]:
        raise UserError("timm's caution=True masks the update by sign agreement: not modelled")
    given = {"weight_decay": v["weight_decay"], "decay": "decoupled"}
    if v["corrected_weight_decay"]:
        given.update(decay_scale="lr_squared_over_max", max_lr=v["lr"])
    return given


def _adamw(v):
    return "adamw", {"lr": v["lr"], "betas": v["betas"], "eps": v["eps"],
                     "amsgrad": v["amsgrad"], "maximize": v["maximize"], **_decay(v)}


def _lion(v):
    return "lion", {"lr": v["lr"], "betas": v["betas"], "maximize": v["maximize"], **_decay(v)}


FLAGS = (Keyword("caution", False), Keyword("corrected_weight_decay", False),
         Keyword("maximize", False))
DIALECTS = (
    Dialect("AdamW", (Keyword("lr", "1e-3"), Keyword("betas", ("0.9", "0.999")),
                      Keyword("eps", "1e-8"), Keyword("weight_decay", "1e-2"),
                      Keyword("amsgrad", False)) + FLAGS, _adamw, SOURCE.format("adamw"),
            doc="AdamW, optionally with corrected (lr**2/max_lr) decay"),
    Dialect("Lion", (Keyword("lr", "1e-4"), Keyword("betas", ("0.9", "0.99")),
                     Keyword("weight_decay", "0.0")) + FLAGS, _lion, SOURCE.format("lion"),
            doc="Lion, optionally with corrected decay"),
)

FRAMEWORK = Framework("timm", ("timm", "timm.optim"), DIALECTS, source="timm 1.0.31",
                      installed="timm")
