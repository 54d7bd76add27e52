"""torch's own optimizer test configurations for a catalogue entry, and the generated optimizer
run against torch's class on each of them.

torch's tests of torch.optim draw their constructor arguments from
torch.testing._internal.common_optimizers.optim_db: per class an OptimizerInfo whose
optim_inputs_func(device) lists the configurations (kwargs and a description; on CUDA it adds
capturable ones), and whose supported_impls / supports_fused_on say which implementations the
class has. `inputs` returns them as torch's tests run them (its
_get_optim_inputs_including_global_cliquey_kwargs: each configuration, then the same with
differentiable=True), the implementations apart (`pairs`), so that each is run against its own
counterpart: torch's loop against ours by default, foreach against foreach, fused against fused
(against torch's loop where the class has no fused). foreach is kept on the CPU, where
optim_db's helper drops it because CPU is not one of torch's foreach-kernel devices: the classes
run it there all the same.

The module imports torch's testing package on first use only: it needs `expecttest`, a test
dependency, not one of optequiv's.
"""
from __future__ import annotations

import inspect
from copy import deepcopy
from dataclasses import dataclass

import torch

from optequiv.derive import catalogue
from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule

from .harness import Comparison, Scenario, side_by_side
from .optimizer import torch_optimizer
from .reference import IMPLEMENTATIONS
from .validation import REFUSED, refusal

# torch's configurations as they are: one group, no lr schedule, nothing switched off on the way;
# the problem's parameters still include a 0-dim one, one whose gradient is None on some steps
# and one whose first gradient comes late, and the run resumes from a state_dict half way
SCENARIO = Scenario(groups=False, lr_decay=1.0, switch_off=None)
STEPS = 8
EPS32 = torch.finfo(torch.float32).eps
# ours by implementation: "loop" is the generated class's default (foreach and fused unset)
OURS = {"loop": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def entries() -> tuple:
    """The catalogue entries that model a torch class."""
    return tuple(e for e in catalogue.ENTRIES.values() if e.torch_class)


def _db():
    try:
        import expecttest  # noqa: F401  (torch's testing package imports it)
    except ImportError:
        raise UserError("torch's optimizer test configurations (torch.testing._internal."
                        "common_optimizers) need the expecttest package: pip install "
                        "expecttest") from None
    from torch.testing._internal import common_optimizers

    return common_optimizers


def info(entry):
    """optim_db's OptimizerInfo of the entry's torch class."""
    name = entry.torch_class.rsplit(".", 1)[-1]
    found = [i for i in _db().optim_db if i.optim_cls.__name__ == name]
    if not found:
        raise UserError(f"{entry.torch_class} has no OptimizerInfo in torch's optim_db")
    return found[0]


@dataclass
class Input:
    desc: str
    kwargs: dict


def inputs(entry, device="cpu") -> list:
    """Every configuration torch's tests construct the class with on `device`, implementation
    keywords (foreach, fused) left out."""
    db = _db()
    return [Input(i.desc, i.kwargs) for i in db._get_optim_inputs_including_global_cliquey_kwargs(
        device, None, info(entry), skip=("foreach", "fused"))]


def torch_implementations(entry, device=None) -> tuple:
    """What optim_db says the class has: its loop, foreach and fused where supported_impls lists
    them (fused only on a device of supports_fused_on; device None: on some device)."""
    i = info(entry)
    kind = None if device is None else torch.device(device).type
    return ("loop",) + tuple(
        impl for impl in ("foreach", "fused") if impl in i.supported_impls
        and (impl != "fused" or kind is None and i.supports_fused_on or kind in i.supports_fused_on))


def disagreement(entry) -> str | None:
    """Why the entry's `implementations` differ from optim_db's, or None."""
    theirs = torch_implementations(entry)
    if set(entry.implementations) == set(theirs):
        return None
    return (f"{entry.name}: the catalogue lists {', '.join(entry.implementations)}; torch's "
            f"optim_db has {', '.join(theirs)} for {entry.torch_class}")


def pairs(entry, device="cpu") -> tuple:
    """(ours, torch's) implementations to compare on `device`: each one the generated class
    takes, against torch's of the same name, or against torch's loop where the class has none
    (the generated class takes fused=True for every entry: a compiled kernel of the same rule)."""
    theirs = torch_implementations(entry, device)
    takes = inspect.signature(torch_optimizer(entry.name)).parameters
    own = {"foreach"} if entry.foreach_differs else set()
    return tuple((impl, impl if impl in theirs and impl not in own else "loop") for impl in OURS
                 if impl == "loop" or impl in takes)


def refused(kwargs: dict) -> str | None:
    """The generated optimizer's message for a configuration it refuses on purpose, or None."""
    keys = [k for k in REFUSED if kwargs.get(k)]
    return refusal(keys[0]) if keys else None


def check(entry, optim_input: Input, implementation: str, *, dtype=torch.float64, device="cpu",
          steps: int = STEPS, rule_for=build_rule, reference: str | None = None,
          scenario: Scenario = SCENARIO) -> Comparison:
    """Ours (`implementation`: its keywords on the generated class) against torch's class with
    the same keywords (or, with `reference`, torch's `reference` implementation), every
    parameter and state entry compared after every step (harness). The gradients come from
    torch's loop, so a torch implementation that raises part way (fused SGD on a parameter whose
    first gradient comes late) ends its comparison there, with `raised` saying so."""
    cls = info(entry).optim_cls
    ours = torch_optimizer(entry.name, rule_for=rule_for)
    reference = reference or implementation

    def make(kind, extra):
        return lambda params: kind(params, **deepcopy(optim_input.kwargs), **extra)

    runs = {"torch loop": make(cls, IMPLEMENTATIONS["loop"]),
            f"torch {reference}": make(cls, IMPLEMENTATIONS[reference]),
            "ours": make(ours, OURS[implementation])}  # one run when the reference is the loop
    [comparison] = side_by_side(runs, [("ours", f"torch {reference}")], steps=steps, dtype=dtype,
                                device=device, scenario=scenario)
    return comparison


def ulp_figures(chosen=None, *, device="cpu", steps: int = STEPS) -> list:
    """float32 against torch's loop on `device`, over every configuration ours accepts: per entry
    and implementation of ours, the largest distance in ulp of any parameter or state entry after
    any step (elementwise: large near 0, where a value is the cancellation of larger ones), the
    largest normwise relative error in float32 eps, and how many configurations stayed within
    the float32 tolerance."""
    rows = []
    for entry in chosen or entries():
        configs = [i for i in inputs(entry, device) if refused(i.kwargs) is None]
        for impl, _ in pairs(entry, device):
            runs = [check(entry, i, impl, dtype=torch.float32, device=device, steps=steps,
                          reference="loop") for i in configs]
            worst = max(runs, key=lambda c: c.max_ulp)
            where = next(i.desc for i, c in zip(configs, runs) if c is worst)
            rows.append({"case": f"ulp {entry.name} {impl}", "optimizer": entry.name,
                         "implementation": impl, "device": str(device), "steps": steps,
                         "configurations": len(runs),
                         "within_tolerance": sum(c.passed for c in runs),
                         "max_ulp": worst.max_ulp,
                         "max_ulp_at": f"{where}: {worst.max_ulp_at}" if worst.max_ulp else "",
                         "max_rel_error_eps": max(c.max_rel_error for c in runs) / EPS32})
    return rows
