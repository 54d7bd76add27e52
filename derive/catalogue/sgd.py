"""torch.optim.SGD (torch 2.13 sgd.py): momentum, dampening, Nesterov, coupled L2.

optequiv's `buffer` key adds the zero-initialised EMA form that many texts write
(buf = momentum*buf + (1 - dampening)*g from step 1), which torch.optim does not implement.
"""
from __future__ import annotations

from .. import stages as S
from ..errors import UserError
from .base import DECAYS, REAL, Entry, Hyper, Scalar, State, on
from .common import MAXIMIZE, lr, weight_decay

BUFFERS = {
    "torch": "the first gradient is copied into the buffer, undampened (torch)",
    "zero": "the buffer starts at 0: buf = momentum*buf + (1 - dampening)*g from step 1",
}


def _stages(spec) -> tuple:
    core = [S.MOMENTUM, S.NESTEROV if spec.flag("nesterov") else S.USE_BUFFER] \
        if on(spec, "momentum") else []
    return S.place_decay(spec, S.signed(spec), core)


def _check(given, shown) -> None:
    if given.get("nesterov"):
        momentum = given.get("momentum", 0)
        if (getattr(momentum, "is_number", True) and momentum <= 0) \
                or given.get("dampening", 0) != 0:
            raise UserError("Nesterov momentum requires a momentum and zero dampening")


def _constraints(spec, h) -> list:
    return [(h["momentum"], True)] if spec.flag("nesterov") else []


ENTRIES = (Entry(
    name="sgd", torch_class="torch.optim.SGD", reference="torch 2.13 torch/optim/sgd.py",
    hypers=(lr("1e-3"),
            Hyper("momentum", (Scalar("momentum", "0", r"\mu", "μ", "momentum", "9/10"),),
                  "Invalid momentum value: {value}"),
            Hyper("dampening", (Scalar("dampening", "0", r"\tau", "τ",
                                       "dampening of the momentum buffer", "1/2", low=None),)),
            weight_decay("0")),
    flags={"nesterov": False, **MAXIMIZE},
    states=(State("buf", "momentum_buffer", REAL, "b", "b", "SGD's momentum buffer",
                  init=lambda spec, h: 0 if spec.buffer == "zero" else None),),
    stages=_stages,
    present=lambda spec: ("buf",) if on(spec, "momentum") else (),
    positional=("lr", "momentum", "dampening", "weight_decay", "nesterov"),
    keyword=("maximize", "foreach", "differentiable", "fused"),
    check_order=("lr", "momentum", "weight_decay"),
    read_order=("momentum", "weight_decay", "lr", "dampening"),
    decays=tuple(DECAYS),
    choices={"buffer": BUFFERS},
    switches=("momentum", "weight_decay"),
    implementations=("loop", "foreach", "fused"),
    extra_check=_check, extra_constraints=_constraints,
    sparse="dense",  # torch's add(sparse, dense) is its words for L2 on a sparse gradient
    sparse_refused={"fused": "`_fused_sgd` does not support sparse gradients",
                    "weight_decay": "add(sparse, dense) is not supported. Use add(dense, sparse) "
                                    "instead."},
),)
