"""Optimizers side by side on the deterministic problem, compared after every step.

Open loop (DESIGN.md): each step's gradients are computed once, at the first run's parameters,
and given to every run, so a difference measures the optimizers, not the loss landscape
amplifying an earlier rounding difference. Every parameter and every state tensor of each
compared pair is checked after every step; the report keeps the largest errors and the first
step at which a pair leaves the tolerance.

The scenario also drives torch's machinery: two param groups (the second with half the lr), an
lr schedule, a stretch in which the second group's momentum and weight_decay are 0 (torch
re-reads them each step), a parameter with no gradient on some steps and one whose first
gradient comes late, and a restart of every run from a state_dict checkpoint.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import torch

from optequiv.derive.errors import UserError

from .c_build import ToolchainError
from .metrics import Difference, difference, tolerance
from .problems import GROUPS, NAMES, Problem


@dataclass(frozen=True)
class Scenario:
    groups: bool = True  # two param groups; the second's lr is half the first's
    lr_decay: float = 0.995  # every group's lr is multiplied by this before each later step
    switch_off: tuple | None = (1 / 3, 2 / 3)  # between these fractions of the run, group 2 has
    # momentum 0 and weight_decay 0
    resume_at: float | None = 0.5  # after this fraction, every run restarts from a checkpoint
    skip_every: int = 4
    late_from: int = 5


@dataclass
class Mismatch:
    step: int
    tensor: str
    diff: Difference

    rel_error: float

    def __str__(self) -> str:
        d = self.diff
        what = "NaN/inf in different places; " if d.nonfinite_differ else ""
        return (f"step {self.step}, {self.tensor}: {what}|error| {d.abs_error:.3g}, relative "
                f"{self.rel_error:.3g}, {d.ulp:.0f} ulp")


@dataclass
class Comparison:
    """One candidate against one reference over a run."""

    candidate: str
    reference: str
    rtol: float
    steps: int = 0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    max_ulp: float = 0.0
    max_ulp_at: str = ""  # "step k, tensor" where max_ulp was reached
    first_mismatch: Mismatch | None = None
    scales: dict = field(default_factory=dict)  # tensor label -> largest magnitude so far
    reference_error: str | None = None  # the reference raised (a torch bug): compared until then
    steps_requested: int = 0
    raised: dict | None = None  # what the reference raised: {"step", "type", "message"}

    @property
    def agree(self) -> bool:
        """Every step compared was within the tolerance (perhaps not every step requested)."""
        return self.first_mismatch is None

    @property
    def complete(self) -> bool:
        return self.steps == self.steps_requested and self.raised is None

    @property
    def passed(self) -> bool:
        """Agreement over the whole run: a comparison cut short by the reference is no pass."""
        return self.agree and self.complete

    def add(self, step: int, tensor: str, diff: Difference) -> None:
        self.scales[tensor] = scale = max(self.scales.get(tensor, 0.0), diff.scale)
        rel = diff.rel_error(scale)
        self.max_abs_error = max(self.max_abs_error, diff.abs_error)
        self.max_rel_error = max(self.max_rel_error, rel)
        if diff.ulp > self.max_ulp:
            self.max_ulp, self.max_ulp_at = diff.ulp, f"step {step}, {tensor}"
        if self.first_mismatch is None and (diff.nonfinite_differ or rel > self.rtol):
            self.first_mismatch = Mismatch(step, tensor, diff, rel)

    def structural(self, step: int, tensor: str, text: str) -> None:
        if self.first_mismatch is None:
            inf = float("inf")
            self.first_mismatch = Mismatch(step, f"{tensor} ({text})",
                                           Difference(inf, 1.0, inf, True), inf)

    def to_json(self) -> dict:
        m = self.first_mismatch
        return {"candidate": self.candidate, "reference": self.reference, "passed": self.passed,
                "steps": self.steps, "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error, "max_ulp": _count(self.max_ulp),
                "tolerance_rel": self.rtol,
                "first_mismatch": None if m is None else
                {"step": m.step, "tensor": m.tensor, "abs_error": _finite(m.diff.abs_error),
                 "rel_error": _finite(m.rel_error), "ulp": _count(m.diff.ulp), "text": str(m)},
                "reference_error": self.reference_error,
                "agree": self.agree, "steps_compared": self.steps,
                "steps_requested": self.steps_requested, "raised": self.raised}


def _finite(x: float):
    return x if math.isfinite(x) else None  # JSON has no inf


def _count(x: float):
    return int(x) if math.isfinite(x) else None


class Run:
    """One optimizer on its own copy of the problem's parameters."""

    def __init__(self, factory, problem: Problem, scenario: Scenario, dtype, device):
        self.factory, self.scenario = factory, scenario
        self.params = problem.params(dtype, device)
        self.opt = factory(self.layout())
        # initial values per group; an optimizer without param_groups gets no schedule
        self.base = [dict(g) for g in getattr(self.opt, "param_groups", [])]
        if scenario.groups and len(self.base) > 1:
            self.base[1]["lr"] *= 0.5

    def layout(self):
        if not self.scenario.groups:
            return [self.params[n] for n in NAMES]
        first, second = ([self.params[n] for n in names] for names in GROUPS)
        return [{"params": first}, {"params": second}]

    def set_hyper(self, step: int, steps: int) -> None:
        s = self.scenario
        for i, (group, base) in enumerate(zip(getattr(self.opt, "param_groups", []), self.base)):
            group["lr"] = base["lr"] * s.lr_decay ** (step - 1)
            if s.switch_off and i == 1:
                off = s.switch_off[0] * steps < step <= s.switch_off[1] * steps
                for key in ("momentum", "weight_decay"):
                    if key in base:
                        group[key] = 0.0 if off else base[key]

    def step(self, grads: dict) -> None:
        for name, p in self.params.items():
            g = grads[name]
            p.grad = None if g is None else g.clone()
        self.opt.step()

    def resume(self) -> None:
        """Rebuild the optimizer from a checkpoint of its state_dict, as a restarted job does."""
        if not hasattr(self.opt, "load_state_dict"):
            return
        buffer = io.BytesIO()
        torch.save(self.opt.state_dict(), buffer)
        buffer.seek(0)
        self.opt = self.factory(self.layout())
        self.opt.load_state_dict(torch.load(buffer, weights_only=True))


def _compare(cmp: Comparison, step: int, cand: Run, ref: Run, strict: bool) -> None:
    """State before parameters: a wrong buffer is named before the parameter it moves."""
    for name in NAMES:
        p, q = cand.params[name], ref.params[name]
        sp = getattr(cand.opt, "state", {}).get(p, {})
        sq = getattr(ref.opt, "state", {}).get(q, {})
        for key in sq:
            label = f"state[{key!r}] of {name}"
            if key not in sp:
                if strict:
                    cmp.structural(step, label, f"missing in {cmp.candidate}")
                continue
            a, b = sp[key], sq[key]
            if not torch.is_tensor(a) or not torch.is_tensor(b):
                a, b = torch.as_tensor(float(a)), torch.as_tensor(float(b))
            if a.shape != b.shape:
                cmp.structural(step, label, f"shape {tuple(a.shape)} vs {tuple(b.shape)}")
                continue
            cmp.add(step, label, difference(a.to(b.device), b))
        if strict:
            for key in sorted(set(sp) - set(sq)):
                cmp.structural(step, f"state[{key!r}] of {name}",
                               f"{cmp.candidate} has it, {cmp.reference} does not")
        cmp.add(step, name, difference(p, q))


def require_device(device, who: str) -> None:
    """A device this machine has: a missing GPU is a configuration error, said once, not a
    mismatch (inside a user's pytest, an AssertionError would read as 'your optimizer is wrong')."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{who}: CUDA is not available on this machine "
                        "(torch.cuda.is_available() is False)")


def side_by_side(factories: dict, pairs: list, *, steps: int, dtype=torch.float64,
                 device="cpu", seed: int = 0, scenario: Scenario = Scenario(),
                 strict: bool = True, stop_early=False, reraise=(), settle=()) -> list:
    """Run every factory (name -> factory(params) -> Optimizer) on the problem; compare each
    (candidate, reference) pair after every step. Gradients come from the first factory's run;
    every run restarts from a checkpoint at scenario.resume_at. `strict`: state entries
    must match by name (False: compare the entries both have). `stop_early`: True stops at the
    first mismatch of any pair; a collection of candidate names, at the first of theirs.
    `reraise`: names of runs whose exceptions propagate with their own traceback (a user's
    optimizer), with a note of the step; any other run's exception is reported in its pairs.
    `settle`: candidate names whose run stops at their first mismatch (only the verdict is
    wanted, not the largest error over the run)."""
    threads = torch.get_num_threads()
    # the problem is tiny: with more than one thread, OpenMP start-up dominates (torch's fused
    # CPU Adam takes ~40 ms a step on 2 threads, 0.1 ms on one); the user's setting is restored
    torch.set_num_threads(1)
    try:
        return _side_by_side(factories, pairs, steps, dtype, device, seed, scenario, strict,
                             stop_early, set(reraise), set(settle))
    finally:
        torch.set_num_threads(threads)


def _side_by_side(factories, pairs, steps, dtype, device, seed, scenario, strict, stop_early,
                  reraise, settle):
    problem = Problem(seed, scenario.skip_every, scenario.late_from)
    runs = {name: Run(f, problem, scenario, dtype, device) for name, f in factories.items()}
    source = runs[next(iter(factories))]
    rtol = tolerance(dtype)
    comparisons = [Comparison(a, b, rtol, steps_requested=steps) for a, b in pairs]
    watched = [c for c in comparisons if stop_early is True or
               stop_early and c.candidate in stop_early]
    resume_step = round(scenario.resume_at * steps) if scenario.resume_at else None
    failed = {}  # run name -> what it raised: {"step", "type", "message"}
    settled = set()  # runs of `settle` that have their verdict
    for step in range(1, steps + 1):
        for run in runs.values():
            run.set_hyper(step, steps)
        grads = problem.gradients(source.params, step)
        for name, run in runs.items():
            if name in failed or name in settled:
                continue
            try:
                run.step(grads)
            except ToolchainError:  # the environment (a broken $CC), not a numeric verdict
                raise
            except Exception as error:  # noqa: BLE001 - reported per run, the others go on
                if run is source or name in reraise:
                    error.add_note(f"(raised by {name} at step {step} of {steps}, "
                                   f"{str(dtype).split('.')[-1]} on {device})")
                    raise
                failed[name] = {"step": step, "type": type(error).__name__,
                                "message": " ".join(str(error).split())}
        if step == resume_step:
            # the references restart too: torch's load_state_dict casts scalar state other
            # than the count to the parameter's dtype (NAdam's mu_product, ASGD's eta), so a
            # restarted torch job is what a restarted candidate must match
            for name in set(runs) - set(failed) - settled:
                runs[name].resume()
        for cmp in comparisons:
            if cmp.raised or cmp.first_mismatch and (cmp.candidate in failed or
                                                     cmp.candidate in settled):
                continue
            if cmp.reference in failed:
                cmp.raised = failed[cmp.reference]
                cmp.reference_error = _raised_text(cmp.raised)
            elif cmp.candidate in failed:
                cmp.structural(step, "step()", f"raised {_raised_text(failed[cmp.candidate])}")
            else:
                cmp.steps = step
                _compare(cmp, step, runs[cmp.candidate], runs[cmp.reference], strict)
                if cmp.first_mismatch and cmp.candidate in settle:
                    settled.add(cmp.candidate)
        if not all(c.agree for c in watched):
            break
    return comparisons


def _raised_text(raised: dict) -> str:
    return f"step {raised['step']}: {raised['type']}: {raised['message']}"
