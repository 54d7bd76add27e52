"""torch.optim as the independent reference: the class and keyword arguments a spec denotes.

Only the mapping of names lives here; torch's update rules are never copied into this project.
"""
from __future__ import annotations

from optequiv.derive.errors import UserError
from optequiv.derive.spec import Spec, as_spec

# torch.optim's per-parameter state keys for derive's state names (generated optimizers use them
# too, so that state_dicts load across the two)
TORCH_STATE = {"buf": "momentum_buffer", "t": "step", "m": "exp_avg", "v": "exp_avg_sq",
               "vmax": "max_exp_avg_sq"}
# torch.optim's implementations of one class, by the keyword arguments that select them
IMPLEMENTATIONS = {"loop": {"foreach": False}, "foreach": {"foreach": True},
                   "fused": {"fused": True}}


def torch_reference(spec) -> tuple:
    """(torch optimizer class, keyword arguments) implementing `spec`, all values numeric."""
    import torch

    spec = as_spec(spec)
    h = {k: float(v) for k, v in spec.hyper(numeric=True).items()}
    decay = spec.decay if spec.decay_on() else None
    if spec.family == "sgd":
        if spec.momentum_on() and spec.buffer != "torch":
            raise UserError(f"{spec} has no torch.optim class: torch.optim.SGD copies the first "
                            "gradient into its buffer (buffer=torch); buffer=zero is checked "
                            "against the generated reference instead")
        if decay not in (None, "l2"):
            raise UserError(f"{spec} has no torch.optim class: torch.optim.SGD's weight_decay is "
                            f"coupled L2 (decay=l2), not decay={decay}")
        return torch.optim.SGD, dict(lr=h["lr"], momentum=h["momentum"],
                                     dampening=h["dampening"], weight_decay=h["weight_decay"],
                                     nesterov=spec.flag("nesterov"), maximize=spec.flag("maximize"))
    if decay not in (None, "l2", "decoupled"):
        raise UserError(f"{spec} has no torch.optim class: torch's Adam and AdamW implement "
                        f"decay=l2 and decay=decoupled, not decay={decay}")
    kwargs = dict(lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                  weight_decay=h["weight_decay"], amsgrad=spec.flag("amsgrad"),
                  maximize=spec.flag("maximize"))
    if decay == "decoupled" or (spec.name == "adamw" and decay is None):
        return torch.optim.AdamW, kwargs
    return torch.optim.Adam, kwargs


def has_torch_class(spec: Spec) -> bool:
    try:
        torch_reference(spec)
    except UserError:
        return False
    return True
