"""The generated optimizer for a spec against torch.optim's own, in every implementation torch
has for the device and dtype: the single-tensor loop (foreach=False), foreach, and fused.
The generated side runs its default step, or with fused=True its compiled C kernel.

A report passes only when every implementation ran every step and agreed on each: one that torch
raised in (its fused SGD with a parameter that joins late) was compared on part of the run, and
that is said, never counted as agreement. Implementations left out of `implementations` are left
out on purpose, and the report says so too."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import as_spec

from .harness import Scenario, side_by_side
from .metrics import EPS_UNITS, tolerance
from .optimizer import torch_optimizer
from .reference import IMPLEMENTATIONS, torch_reference


def available(cls, kwargs: dict, implementation: str, dtype, device) -> str | None:
    """None when torch runs `implementation` of `cls` for this device and dtype, else why not."""
    p = torch.nn.Parameter(torch.zeros(2, dtype=dtype, device=device))
    p.grad = torch.ones_like(p)
    try:
        cls([p], **kwargs, **IMPLEMENTATIONS[implementation]).step()
    except (RuntimeError, ValueError, TypeError) as error:
        return " ".join(str(error).split())
    return None


@dataclass
class Report:
    spec: str
    torch_class: str
    steps: int
    dtype: str
    device: str
    seed: int
    comparisons: list  # harness.Comparison per torch implementation
    skipped: dict  # implementation -> why torch has none here
    fused: bool = False  # the generated optimizer ran with fused=True (its C kernel)
    left_out: tuple = ()  # implementations not asked for (--skip): left out on purpose
    not_in_torch: tuple = ()  # implementations the torch class has none of (RMSprop's fused)

    @property
    def agree(self) -> bool:
        """Every step that was compared agreed (perhaps not every step, nor every
        implementation)."""
        return all(c.agree for c in self.comparisons)

    @property
    def complete(self) -> bool:
        """Every implementation asked for ran every step."""
        return not self.skipped and all(c.complete for c in self.comparisons)

    @property
    def passed(self) -> bool:
        return self.agree and self.complete

    @property
    def first_failing(self):
        """The comparison whose first mismatch comes earliest, or None."""
        found = [(c.first_mismatch.step, c) for c in self.comparisons if c.first_mismatch]
        return min(found, key=lambda x: x[0])[1] if found else None

    def to_json(self) -> dict:
        worst = self.first_failing
        return {
            "passed": self.passed, "spec": self.spec, "torch_class": self.torch_class,
            "generated": "fused" if self.fused else "default",
            "steps": self.steps, "dtype": self.dtype, "device": self.device, "seed": self.seed,
            "max_abs_error": max(c.max_abs_error for c in self.comparisons),
            "max_rel_error": max(c.max_rel_error for c in self.comparisons),
            "max_ulp": max(c.to_json()["max_ulp"] or 0 for c in self.comparisons),
            "max_rel_error_eps": max(c.max_rel_error for c in self.comparisons)
            / torch.finfo(getattr(torch, self.dtype)).eps,
            "tolerance": {"rel": tolerance(getattr(torch, self.dtype)),
                          "eps_units": EPS_UNITS[getattr(torch, self.dtype)],
                          "meaning": "max |a - b| <= rel * scale for each tensor after each step; "
                                     "scale: the largest |value| the tensor has had in the run"},
            "first_mismatch": None if worst is None else
            {"against": worst.reference, **worst.to_json()["first_mismatch"]},
            "implementations": {c.reference: c.to_json() for c in self.comparisons},
            "skipped": self.skipped,
            "reference_errors": {c.reference: c.reference_error for c in self.comparisons
                                 if c.reference_error},
            "agree": self.agree, "complete": self.complete,
            "left_out": {impl: "on request (--skip)" for impl in self.left_out},
            "not_in_torch": {impl: f"{self.torch_class} has no {impl} implementation"
                             for impl in self.not_in_torch},
        }


def crosscheck(spec, *, steps: int = 200, dtype=torch.float64, device="cpu", seed: int = 0,
               implementations=tuple(IMPLEMENTATIONS), scenario: Scenario = Scenario(),
               rule_for=build_rule, fused: bool = False) -> Report:
    """Run numeric.torch_optimizer(spec) against torch.optim for `spec` (UserError when torch has
    no class for it) on the harness problem; gradients come from torch's first implementation.
    `rule_for` is passed to torch_optimizer (negative controls plant wrong rules there);
    `fused`: the generated optimizer is constructed with fused=True. Implementations not in
    `implementations` are reported as left out on purpose."""
    unknown = [impl for impl in implementations if impl not in IMPLEMENTATIONS]
    if unknown or not implementations:
        raise UserError(f"crosscheck: implementations must be some of {', '.join(IMPLEMENTATIONS)}"
                        f", got {', '.join(map(repr, implementations)) or 'none'}")
    text = spec if isinstance(spec, str) else str(spec)
    spec = as_spec(spec)
    cls, kwargs = torch_reference(spec)
    generated = torch_optimizer(spec, rule_for=rule_for)
    if fused:
        generated = (lambda opt: lambda params: opt(params, fused=True))(generated)
    factories, skipped = {}, {}
    # the catalogue entry lists torch's implementations of the class: one it lacks (RMSprop's
    # fused) is no failure of a run, and is reported apart
    missing = tuple(impl for impl in implementations if impl not in spec.entry.implementations)
    for impl in (i for i in implementations if i not in missing):
        why = available(cls, kwargs, impl, dtype, device)
        if why is None:
            factories[impl] = (lambda extra: lambda params: cls(params, **kwargs, **extra))(
                IMPLEMENTATIONS[impl])
        else:
            skipped[impl] = why
    if not factories:
        raise UserError(f"torch.optim.{cls.__name__} has none of {', '.join(implementations)} "
                        f"for {dtype} on {device}: {'; '.join(skipped.values())}")
    factories = {**factories, "generated": generated}
    comparisons = side_by_side(factories, [("generated", impl) for impl in factories
                                           if impl != "generated"],
                               steps=steps, dtype=dtype, device=device, seed=seed,
                               scenario=scenario)
    return Report(text, f"torch.optim.{cls.__name__}", steps, str(dtype).split(".")[-1],
                  str(device), seed, comparisons, skipped, fused,
                  tuple(impl for impl in IMPLEMENTATIONS if impl not in implementations), missing)
