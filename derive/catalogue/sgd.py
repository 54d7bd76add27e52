"""torch.optim.SGD (torch 2.13 sgd.py): momentum, dampening, Nesterov, coupled L2.

optequiv's `buffer` key adds the zero-initialised EMA form that many texts write
(buf = momentum*buf + (1 - dampening)*g from step 1), which torch.optim does not implement, and
Keras 3's / TF's form with the lr folded into the buffer (keras/src/optimizers/sgd.py,
update_step: m = m*momentum - g*lr; w += m, or w += m*momentum - g*lr under Nesterov), which
is Sutskever et al.'s v = mu*v + gamma*g with the sign kept in v.
"""
from __future__ import annotations

from dataclasses import replace

from .. import stages as S
from ..errors import UserError
from .base import DECAYS, REAL, Entry, Hyper, Scalar, State, on
from .common import MAXIMIZE, lr, weight_decay

BUFFERS = {
    "torch": "the first gradient is copied into the buffer, undampened (torch)",
    "zero": "the buffer starts at 0: buf = momentum*buf + (1 - dampening)*g from step 1",
    "lr_inside": "Keras 3 / TF SGD: the lr is folded into the buffer, which starts at 0: "
                 "buf = momentum*buf - (1 - dampening)*lr*g; theta += buf (Nesterov: "
                 "theta += momentum*buf - lr*g); torch's SGD only at a constant lr",
}
ZERO_START = ("zero", "lr_inside")  # the buffers that exist, at 0, before the first step


def _velocity(c, h):
    # Keras keeps the step itself, signed, in the buffer: the lr of the step that adds a
    # gradient stays with it, where torch's buffer is scaled by each step's own lr
    buf = h["momentum"] * c.state["buf"] - (1 - h["dampening"]) * h["lr"] * c.u
    return c.with_state(buf=buf)


def _apply_velocity(c, h):
    # the buffer is already the step: it moves theta here, and leaves nothing for the lr-scaled
    # direction, so that place_decay's decay stages still act where they do for torch's form
    # (decoupled: theta*(1 - lr*weight_decay) + buf)
    return replace(c, theta=c.theta + c.state["buf"], u=0 * c.u)


def _apply_velocity_nesterov(c, h):
    step = h["momentum"] * c.state["buf"] - h["lr"] * c.u
    return replace(c, theta=c.theta + step, u=0 * c.u)


VELOCITY = S.Stage("velocity", _velocity,
                   "Keras buffer: buf <- momentum*buf - (1 - dampening)*lr*g")
APPLY_VELOCITY = S.Stage("apply_velocity", _apply_velocity,
                         "theta <- theta + buf (the lr is inside the buffer)")
APPLY_VELOCITY_NESTEROV = S.Stage("apply_velocity", _apply_velocity_nesterov,
                                  "Keras Nesterov: theta <- theta + momentum*buf - lr*g")


def _stages(spec) -> tuple:
    if not on(spec, "momentum"):
        core = []
    elif spec.buffer == "lr_inside":
        core = [VELOCITY, APPLY_VELOCITY_NESTEROV if spec.flag("nesterov") else APPLY_VELOCITY]
    else:
        core = [S.MOMENTUM, S.NESTEROV if spec.flag("nesterov") else S.USE_BUFFER]
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
                  init=lambda spec, h: 0 if spec.buffer in ZERO_START else None),),
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
