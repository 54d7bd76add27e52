"""`numeric.torch_optimizer(spec)`: a torch.optim.Optimizer whose step is generated from the
spec's symbolic rule.

    AdamW = numeric.torch_optimizer("adamw")
    opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)      # a drop-in for torch.optim.AdamW

The update arithmetic comes only from derive (program.py -> torch_codegen.py). What follows torch
is its machinery (behaviour, not code), which a drop-in must share: keyword names, positions and
defaults, param groups, hyperparameters re-read from param_groups at every step, `closure`, a
parameter whose grad is None skipped entirely, lazily created per-parameter state under torch's
key names (so state_dict() and load_state_dict() round-trip, even with torch.optim's own).

Implementations: the step is a loop over parameters, one tensor at a time. foreach=True is
accepted and runs the same loop (torch's foreach gives its loop's numbers bit for bit on the CPU);
fused=True is refused until a fused printer exists (it would read the same numeric.program IR).
"""
from __future__ import annotations

import inspect
import math
from functools import lru_cache

import sympy as sp
import torch

from derive.errors import UserError
from derive.rules import build_rule
from derive.spec import as_spec, make_spec

from .program import SCALAR_STATE, cached_program
from .structure import structure_key
from .reference import TORCH_STATE
from .torch_codegen import compile_torch

# torch 2.13's signatures: positional-or-keyword names, then keyword-only ones
POSITIONAL = {"sgd": ("lr", "momentum", "dampening", "weight_decay", "nesterov"),
              "adam": ("lr", "betas", "eps", "weight_decay", "amsgrad"),
              "adamw": ("lr", "betas", "eps", "weight_decay", "amsgrad")}
KEYWORD = {"sgd": ("maximize", "foreach", "differentiable", "fused"),
           "adam": ("foreach", "maximize", "capturable", "differentiable", "fused",
                    "decoupled_weight_decay"),
           "adamw": ("maximize", "foreach", "capturable", "differentiable", "fused")}
NUMBERS = ("lr", "momentum", "dampening", "weight_decay", "eps")
FLAGS = ("nesterov", "maximize", "amsgrad", "decoupled_weight_decay")
CLASS_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}


@lru_cache(maxsize=None)
def _kernel(key, absent, rule_for):
    return compile_torch(cached_program(key, absent, rule_for))


def _defaults(spec) -> dict:
    h = {k: float(v) for k, v in spec.hyper(numeric=True).items()}
    out = {}
    for key in POSITIONAL[spec.name] + KEYWORD[spec.name]:
        if key == "betas":
            out[key] = (h["beta1"], h["beta2"])
        elif key in h:
            out[key] = h[key]
        elif key == "decoupled_weight_decay":
            out[key] = spec.decay == "decoupled"
        elif key in FLAGS:
            out[key] = spec.flag(key)
        else:
            out[key] = None if key in ("foreach", "fused") else False
    return out


def _number(key: str, value):
    """A hyperparameter as an exact SymPy number for derive's validation, and its text as torch
    prints it. NaN is validated as -1 (shown as nan), so it is rejected wherever torch's checks
    reject negatives."""
    text = str(value)
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{key} must be a number, got {text}")
    if math.isnan(value):
        return sp.Integer(-1), text
    if math.isinf(value):
        return (sp.oo if value > 0 else -sp.oo), text
    return sp.Rational(value), text


def validate(spec, values: dict) -> None:
    """Check hyperparameters exactly as the spec language does (derive.spec), so messages are
    torch's: `Invalid learning rate: -1.0`."""
    given, sources = {}, {}
    for key in NUMBERS:
        if key in values:
            given[key], sources[key] = _number(key, values[key])
    if "betas" in values:
        pair = tuple(values["betas"])
        if len(pair) != 2:
            raise UserError(f"betas must be a pair (beta1, beta2), got {values['betas']}")
        numbers = [_number("betas", b) for b in pair]
        given["betas"] = tuple(n for n, _ in numbers)
        sources.update({("betas", i): text for i, (_, text) in enumerate(numbers)})
    for key in FLAGS:
        if key in values:
            given[key] = bool(values[key])
    if spec.family == "sgd":
        given["buffer"] = spec.buffer
    if "decay" in spec.given and not (spec.name == "adam" and spec.decay in ("l2", "decoupled")):
        given["decay"] = spec.decay  # adam's torch keyword decides l2 / decoupled itself
    for key in ("capturable", "differentiable"):
        if values.get(key):
            raise UserError(f"{key}=True is not supported by the generated optimizer")
    if values.get("fused"):
        raise UserError("fused=True: the generated optimizer has no fused kernel yet; it runs "
                        "the single-tensor loop (foreach=True is accepted and gives the same "
                        "numbers as torch's foreach)")
    make_spec(spec.name, given, sources)


class GeneratedOptimizer(torch.optim.Optimizer):
    """Base of the classes torch_optimizer() makes; `spec` and `rule_for` are class attributes."""

    spec = None
    rule_for = staticmethod(build_rule)
    __signature__ = None

    def __init__(self, params, *args, **kwargs):
        bound = self.__signature__.bind(params, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        params = values.pop("params")
        validate(self.spec, values)
        super().__init__(params, values)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    # -- which program a group runs now ----------------------------------------------------------
    @classmethod
    def _hyper(cls, group) -> dict:
        """The group's values under the programs' canonical names, as Python floats."""
        h = {k: float(group[k]) for k in NUMBERS if k in group}
        if "betas" in group:
            h["beta1"], h["beta2"] = (float(b) for b in group["betas"])
        if cls.spec.family == "adam":
            h.pop("momentum", None), h.pop("dampening", None)
        return h

    @classmethod
    def _key(cls, group, h: dict):
        return structure_key(cls.spec, momentum_on=h.get("momentum", 0) != 0,
                             decay_on=h["weight_decay"] != 0,
                             flags={f: group.get(f, False) for f in FLAGS})

    def _state(self, p, program) -> dict:
        """torch's lazy state: created on a parameter's first step with a gradient; entries
        that start at 0 are made here, entries that start absent are made by the step."""
        if not program.state:
            return {}
        state = self.state[p]
        for name in program.state:
            key = TORCH_STATE[name]
            if name in program.lazy or key in state:
                continue
            if name in SCALAR_STATE:
                state[key] = torch.tensor(0.0, dtype=_step_dtype())
            else:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if "step" in state and not torch.is_tensor(state["step"]):
            state["step"] = torch.tensor(float(state["step"]), dtype=_step_dtype())
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            h = self._hyper(group)
            key = self._key(group, h)
            shape = cached_program(key, frozenset(), self.rule_for)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse or torch.is_complex(p):
                    raise RuntimeError(f"{type(self).__name__} supports dense real parameters "
                                       "and gradients only")
                state = self._state(p, shape)
                absent = frozenset(n for n in shape.state if TORCH_STATE[n] not in state)
                _kernel(key, absent, self.rule_for)(p, p.grad, state, **h)
        return loss

    # -- inspection --------------------------------------------------------------------------------
    @classmethod
    def source(cls, first_step: bool = False, **hyperparameters) -> str:
        """The generated step for the class defaults (or the values given), as Python source:
        the first step of a parameter (lazy state being created) or a later one."""
        group = {**_defaults(cls.spec), **hyperparameters}
        h = cls._hyper(group)
        key = cls._key(group, h)
        shape = cached_program(key, frozenset(), cls.rule_for)
        absent = shape.lazy if first_step else frozenset()
        return _kernel(key, absent, cls.rule_for).source


def _step_dtype():
    # torch keeps the step count as a float32 CPU scalar, float64 under a float64 default dtype
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _signature(spec) -> inspect.Signature:
    defaults = _defaults(spec)
    P = inspect.Parameter
    params = [P("params", P.POSITIONAL_OR_KEYWORD)]
    params += [P(k, P.POSITIONAL_OR_KEYWORD, default=defaults[k]) for k in POSITIONAL[spec.name]]
    params += [P(k, P.KEYWORD_ONLY, default=defaults[k]) for k in KEYWORD[spec.name]]
    return inspect.Signature(params)


def torch_optimizer(spec, *, rule_for=build_rule) -> type:
    """A torch.optim.Optimizer subclass generated from `spec` (every value numeric; omitted ones
    take torch's defaults; the spec's values become the class's defaults). `rule_for` builds the
    rule for each structural spec (default derive.rules.build_rule; tests plant wrong rules)."""
    spec = as_spec(spec)
    signature = _signature(spec)  # spec.hyper(numeric=True) rejects a symbolic spec here
    name = "Generated" + CLASS_NAMES[spec.name]
    doc = (f"torch.optim.Optimizer generated from `{spec}` by optequiv (stages: "
           f"{', '.join(build_rule(spec).stage_names())}).\n\nSignature: {name}{signature}")
    return type(name, (GeneratedOptimizer,), {
        "spec": spec, "rule_for": staticmethod(rule_for), "__signature__": signature,
        "__doc__": doc, "__module__": __name__, "__qualname__": name})
