"""optax 0.2.8 (optax/_src/alias.py, transform.py; transforms/_adding.py, _accumulation.py).

optax builds every optimizer as a chain of transforms: adamw is
chain(scale_by_adam(...), add_decayed_weights(wd), scale_by_learning_rate(lr)). Each call here
yields its chain, and `finish` reads the chain's order as the catalogue's decay convention:
add_decayed_weights before the core (scale_by_adam, trace, scale_by_lion) is coupled L2 (g + wd*p
reaches the moments), between the core and scale_by_learning_rate it is decoupled and lr-scaled
(torch AdamW), after scale_by_learning_rate (whose sign is -lr) it adds +wd*p to the step, so a
negative wd there is lr-independent decay. optax's eps is added to sqrt(v_hat) as torch's
(eps_root inside the root); its AMSGrad takes the max over v_hat (bias_correction_nu=True); its
trace starts at 0, so trace_1 = g_1, torch's first-step copy. A parameter with no gradient
steps on zeros in optax (a pytree has every leaf): missing_grad=zeros.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .base import REQUIRED, Dialect, Framework, Keyword

SOURCE = "optax 0.2.8 optax/_src/alias.py, optax/_src/transform.py"
LR = Keyword("learning_rate", REQUIRED, "lr")
ADAM = (Keyword("b1", "0.9"), Keyword("b2", "0.999"), Keyword("eps", "1e-8"),
        Keyword("eps_root", "0.0"))
NESTEROV = Keyword("nesterov", False)
CORES = ("adam", "trace", "lion")


@dataclass(frozen=True)
class Piece:
    """One transform of a chain: its kind (adam, trace, lion, decay, lr) and its values."""

    kind: str
    values: dict


def _adam(v, amsgrad=False) -> Piece:
    if v.get("nesterov"):
        raise UserError("optax's nesterov=True Adam (a NAdam variant) is not modelled")
    for key in ("bias_correction_mu", "bias_correction_nu"):
        if v.get(key) is False:
            raise UserError(f"optax.amsgrad({key}=False) is not modelled")
    return Piece("adam", {**{k: v[k] for k in ("b1", "b2", "eps", "eps_root")},
                          "amsgrad": amsgrad})


def _lr(v) -> Piece:
    if v["learning_rate"] is None:  # scale_by_learning_rate's default: the identity
        raise UserError("optax.scale_by_learning_rate(None) does not scale: an optax chain is "
                        "modelled with a learning rate")
    if v.get("flip_sign") is False:
        raise UserError("optax.scale_by_learning_rate(flip_sign=False) ascends: not modelled "
                        "(maximize is the catalogue's way to ascend)")
    return Piece("lr", {"lr": v["learning_rate"]})


def _decay(wd) -> Piece:
    return Piece("decay", {"weight_decay": wd})


def _trace(momentum, nesterov) -> Piece:
    return Piece("trace", {"momentum": 0 if momentum is None else momentum,
                           "nesterov": nesterov})


AMSGRAD = ADAM + (Keyword("bias_correction_mu", True), Keyword("bias_correction_nu", True))
DIALECTS = (
    Dialect("adam", (LR,) + ADAM + (NESTEROV,), lambda v: (_adam(v), _lr(v)), SOURCE,
            positional=5, doc="Adam: chain(scale_by_adam, scale_by_learning_rate)"),
    Dialect("adamw", (LR,) + ADAM + (Keyword("weight_decay", "1e-4"), NESTEROV),
            lambda v: (_adam(v), _decay(v["weight_decay"]), _lr(v)), SOURCE, positional=5,
            doc="AdamW: chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate)"),
    Dialect("amsgrad", (LR,) + AMSGRAD, lambda v: (_adam(v, amsgrad=True), _lr(v)), SOURCE,
            positional=5, doc="AMSGrad: max over v_hat"),
    Dialect("sgd", (LR, Keyword("momentum", None), Keyword("nesterov", False)),
            lambda v: (_trace(v["momentum"], v["nesterov"]), _lr(v)), SOURCE,
            doc="SGD: chain(trace, scale_by_learning_rate)"),
    Dialect("lion", (LR, Keyword("b1", "0.9"), Keyword("b2", "0.99"),
                     Keyword("weight_decay", "1e-3")),
            lambda v: (Piece("lion", {"b1": v["b1"], "b2": v["b2"]}),
                       _decay(v["weight_decay"]), _lr(v)), SOURCE, positional=3,
            doc="Lion: chain(scale_by_lion, add_decayed_weights, scale_by_learning_rate)"),
    Dialect("chain", (), lambda v: tuple(p for t in v["*"] for p in t), SOURCE, variadic=True,
            doc="transforms applied in order"),
    Dialect("add_decayed_weights", (Keyword("weight_decay", "0.0"),),
            lambda v: (_decay(v["weight_decay"]),), "optax 0.2.8 optax/transforms/_adding.py"),
    Dialect("scale_by_adam", ADAM + (NESTEROV,), lambda v: (_adam(v),), SOURCE, positional=4),
    Dialect("scale_by_amsgrad", AMSGRAD, lambda v: (_adam(v, amsgrad=True),), SOURCE,
            positional=4),
    Dialect("scale_by_lion", (Keyword("b1", "0.9"), Keyword("b2", "0.99")),
            lambda v: (Piece("lion", dict(v)),), SOURCE),
    Dialect("trace", (Keyword("decay", REQUIRED, "momentum"), Keyword("nesterov", False)),
            lambda v: (_trace(v["decay"], v["nesterov"]),),
            "optax 0.2.8 optax/transforms/_accumulation.py"),
    Dialect("scale_by_learning_rate", (Keyword("learning_rate", None), Keyword("flip_sign", True)),
            lambda v: (_lr(v),),
            SOURCE, positional=1),
)


def finish(pieces: tuple) -> tuple:
    """A chain -> (entry name, keys): the order of its transforms is the decay convention."""
    pieces = [p for p in pieces if not (p.kind == "decay" and p.values["weight_decay"] == 0)]
    cores = [i for i, p in enumerate(pieces) if p.kind in CORES]
    lrs = [i for i, p in enumerate(pieces) if p.kind == "lr"]
    decays = [i for i, p in enumerate(pieces) if p.kind == "decay"]
    if len(lrs) != 1 or len(cores) > 1 or len(decays) > 1:
        raise UserError("an optax chain is modelled with one scale_by_learning_rate, at most one "
                        "of scale_by_adam/scale_by_amsgrad/trace/scale_by_lion before it, and at "
                        "most one add_decayed_weights")
    lr_at, core_at = lrs[0], (cores[0] if cores else None)
    if core_at is not None and core_at > lr_at:
        raise UserError("scale_by_learning_rate before the optimizer's core transform is not "
                        "modelled: put it last, as optax's own optimizers do")
    core = pieces[core_at] if core_at is not None else Piece("trace", {"momentum": 0,
                                                                      "nesterov": False})
    given = {"lr": pieces[lr_at].values["lr"]}
    wd, decay = 0, "l2"
    if decays:
        wd, at = pieces[decays[0]].values["weight_decay"], decays[0]
        if at > lr_at:
            if not (getattr(wd, "is_number", False) and wd < 0):
                raise UserError(f"optax.add_decayed_weights({wd}) after scale_by_learning_rate "
                                f"multiplies the weights by (1 + {wd}) each step: only a negative "
                                "number there is modelled (lr-independent decay)")
            wd, decay = -wd, "independent"
        elif core_at is not None and at > core_at:
            decay = "decoupled"
    v = core.values
    if core.kind == "adam":
        name = "adamw" if decay == "decoupled" else "adam"
        given.update(betas=(v["b1"], v["b2"]), eps=v["eps"])
        if v["eps_root"] != 0:
            given["eps_root"] = v["eps_root"]
        if v["amsgrad"]:
            given.update(amsgrad=True, amsgrad_max_of="v_hat")
    elif core.kind == "lion":
        name = "lion"
        given["betas"] = (v["b1"], v["b2"])
    else:
        name = "sgd"
        given.update(momentum=v["momentum"], nesterov=v["nesterov"])
    given.update(weight_decay=wd, decay=decay, missing_grad="zeros")
    return name, given


# coupled L2 in optax: the decay before the core transform
RECIPES = tuple(f"optax.chain(optax.add_decayed_weights(weight_decay), {core})" for core in (
    "optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)",
    "optax.amsgrad(learning_rate, b1=b1, b2=b2, eps=eps)",
    "optax.sgd(learning_rate, momentum=momentum)",
    "optax.sgd(learning_rate, momentum=momentum, nesterov=True)"))

FRAMEWORK = Framework("optax", ("optax",), DIALECTS, finish, source="optax 0.2.8",
                      installed="optax", recipes=RECIPES)
