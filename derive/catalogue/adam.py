"""torch.optim.Adam and torch.optim.AdamW (torch 2.13 adam.py, adamw.py): bias-corrected
moments, eps outside the square root, AMSGrad's running max of the raw second moment.

One family: AdamW is Adam whose decay is decoupled (torch 2.13's AdamW is Adam with
decoupled_weight_decay=True), with its own defaults (weight_decay=1e-2)."""
from __future__ import annotations

from .. import stages as S
from .base import ADAM_DECAYS, COUNT, DECAYS, NONNEGATIVE, REAL, Entry, State
from .common import MAXIMIZE, betas, eps, lr, weight_decay

STEP = State("t", "step", COUNT, "t", "t", "the step count", scalar=True)
STATES = (STEP,
          State("m", "exp_avg", REAL, "m", "m", "Adam's first moment (EMA of gradients)"),
          State("v", "exp_avg_sq", NONNEGATIVE, "v", "v",
                "Adam's second moment (EMA of squared gradients)"),
          State("vmax", "max_exp_avg_sq", NONNEGATIVE, r"v^{\max}", "vᵐᵃˣ",
                "AMSGrad's running maximum of $v$"))
SPARSE = "Adam does not support sparse gradients, please consider SparseAdam instead"


def _stages(spec) -> tuple:
    core = [S.MOMENTS] + ([S.AMSGRAD] if spec.flag("amsgrad") else []) + [S.ADAM_DIRECTION]
    return S.place_decay(spec, [S.COUNT] + S.signed(spec), core)


def _present(spec) -> tuple:
    return ("t", "m", "v") + (("vmax",) if spec.flag("amsgrad") else ())


_COMMON = dict(
    states=STATES, stages=_stages, present=_present,
    positional=("lr", "betas", "eps", "weight_decay", "amsgrad"),
    check_order=("lr", "eps", "betas", "weight_decay"),
    read_order=("betas", "lr", "weight_decay", "eps"),
    implementations=("loop", "foreach", "fused"), sparse_message=SPARSE,
    torch_checks=("tensor_lr_foreach", "betas_type"))

ENTRIES = (
    Entry(name="adam", torch_class="torch.optim.Adam", reference="torch 2.13 torch/optim/adam.py",
          hypers=(lr("1e-3"), betas("0.9", "0.999"), eps("1e-8"), weight_decay("0")),
          flags={"amsgrad": False, **MAXIMIZE, "decoupled_weight_decay": False},
          keyword=("foreach", "maximize", "capturable", "differentiable", "fused",
                   "decoupled_weight_decay"),
          decays=tuple(DECAYS) + tuple(ADAM_DECAYS), decay_flag="decoupled_weight_decay",
          **_COMMON),
    Entry(name="adamw", torch_class="torch.optim.AdamW",
          reference="torch 2.13 torch/optim/adamw.py",
          hypers=(lr("1e-3"), betas("0.9", "0.999"), eps("1e-8"), weight_decay("1e-2")),
          flags={"amsgrad": False, **MAXIMIZE},
          keyword=("maximize", "foreach", "capturable", "differentiable", "fused"),
          decays=("decoupled",) + tuple(d for d in (*DECAYS, *ADAM_DECAYS) if d != "decoupled"),
          torch_decays={"l2": "adam"},
          **_COMMON),
)
