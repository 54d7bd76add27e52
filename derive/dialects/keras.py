"""Keras 3.15.1 (keras/src/optimizers/adam.py, adamw.py, sgd.py, lion.py, base_optimizer.py).

Every Keras optimizer takes `weight_decay` (None: off) and applies it in
base_optimizer._apply_weight_decay as `variable - variable*wd*lr` before the update step:
decoupled and lr-scaled, torch AdamW's convention. Keras' Adam folds the bias corrections into
the lr, alpha = lr*sqrt(1 - b2^t)/(1 - b1^t), and adds epsilon to the raw sqrt(v):
eps_added_to=sqrt_v; its AMSGrad keeps the max of the raw v (torch's). Its step count is the
optimizer's `iterations`, one for all variables: step_counter=global. Its SGD keeps the lr
inside the buffer, m = momentum*m - lr*g; variable += m: buffer=lr_inside. A variable whose
gradient is None is left out of apply_gradients: missing_grad=skip (torch's, the default).
"""
from __future__ import annotations

from .base import Dialect, Framework, Keyword

SOURCE = "keras 3.15.1 keras/src/optimizers/{}.py; base_optimizer.py _apply_weight_decay"
BETAS = (Keyword("beta_1", "0.9"), Keyword("beta_2", "0.999"), Keyword("epsilon", "1e-7"),
         Keyword("amsgrad", False))


def _decay(v) -> dict:
    wd = v["weight_decay"]
    return {"weight_decay": 0 if wd is None else wd, "decay": "decoupled"}


def _adam(name):
    def build(v):
        return name, {"lr": v["learning_rate"], "betas": (v["beta_1"], v["beta_2"]),
                      "eps": v["epsilon"], "amsgrad": v["amsgrad"], **_decay(v),
                      "eps_added_to": "sqrt_v", "step_counter": "global"}
    return build


def _sgd(v):
    given = {"lr": v["learning_rate"], "momentum": v["momentum"], "nesterov": v["nesterov"],
             **_decay(v)}
    if v["momentum"] != 0:  # momentum 0: no buffer at all, in Keras as in torch
        given["buffer"] = "lr_inside"
    return "sgd", given


def _lion(v):
    return "lion", {"lr": v["learning_rate"], "betas": (v["beta_1"], v["beta_2"]), **_decay(v)}


DIALECTS = (
    Dialect("Adam", (Keyword("learning_rate", "0.001"),) + BETAS + (Keyword("weight_decay", None),),
            _adam("adam"), SOURCE.format("adam"), doc="Adam, eps on the raw sqrt(v)"),
    Dialect("AdamW", (Keyword("learning_rate", "0.001"), Keyword("weight_decay", "0.004"))
            + BETAS, _adam("adamw"), SOURCE.format("adamw"),
            doc="AdamW, eps on the raw sqrt(v)"),
    Dialect("SGD", (Keyword("learning_rate", "0.01"), Keyword("momentum", "0.0"),
                    Keyword("nesterov", False), Keyword("weight_decay", None)),
            _sgd, SOURCE.format("sgd"), doc="SGD, the lr inside the momentum buffer"),
    Dialect("Lion", (Keyword("learning_rate", "0.001"), Keyword("beta_1", "0.9"),
                     Keyword("beta_2", "0.99"), Keyword("weight_decay", None)),
            _lion, SOURCE.format("lion"), doc="Lion"),
)

FRAMEWORK = Framework("keras", ("keras", "keras.optimizers"), DIALECTS, source="keras 3.15.1",
                      installed="keras")
