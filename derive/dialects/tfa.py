"""TensorFlow Addons 0.23.0 (tensorflow_addons/optimizers/weight_decay_optimizers.py).

DecoupledWeightDecayExtension runs `var.assign_sub(wd_t * var)` before the inner optimizer's
update: theta <- theta - wd*theta, not scaled by the lr (decay=independent; torch's AdamW needs
weight_decay/lr for it). The inner optimizers are legacy tf.keras': Adam adds epsilon to the
raw sqrt(v) with the corrections folded into the lr (eps_added_to=sqrt_v), its step count is the
optimizer's `iterations` (step_counter=global); SGD's momentum is accum = momentum*accum - lr*g,
var += accum (buffer=lr_inside). weight_decay has no default: it comes first and is required.
"""
from __future__ import annotations

from .base import REQUIRED, Dialect, Framework, Keyword

SOURCE = "tensorflow-addons 0.23.0 tensorflow_addons/optimizers/weight_decay_optimizers.py"
WD = Keyword("weight_decay", REQUIRED, "weight_decay")


def _adamw(v):
    return "adam", {"lr": v["learning_rate"], "betas": (v["beta_1"], v["beta_2"]),
                    "eps": v["epsilon"], "amsgrad": v["amsgrad"],
                    "weight_decay": v["weight_decay"], "decay": "independent",
                    "eps_added_to": "sqrt_v", "step_counter": "global"}


def _sgdw(v):
    given = {"lr": v["learning_rate"], "momentum": v["momentum"], "nesterov": v["nesterov"],
             "weight_decay": v["weight_decay"], "decay": "independent"}
    if v["momentum"] != 0:
        given["buffer"] = "lr_inside"
    return "sgd", given


DIALECTS = (
    Dialect("AdamW", (WD, Keyword("learning_rate", "0.001"), Keyword("beta_1", "0.9"),
                      Keyword("beta_2", "0.999"), Keyword("epsilon", "1e-07"),
                      Keyword("amsgrad", False)),
            _adamw, SOURCE, doc="AdamW, decay not scaled by the lr, eps on the raw sqrt(v)"),
    Dialect("SGDW", (WD, Keyword("learning_rate", "0.001"), Keyword("momentum", "0.0"),
                     Keyword("nesterov", False)),
            _sgdw, SOURCE, doc="SGDW, decay not scaled by the lr, the lr inside the buffer"),
)

FRAMEWORK = Framework("tfa", ("tfa", "tfa.optimizers", "tensorflow_addons.optimizers"),
                      DIALECTS, source="tensorflow-addons 0.23.0",
                      installed="tensorflow_addons")
