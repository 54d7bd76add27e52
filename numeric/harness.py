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
from .problems import GROUPS, LATE, NAMES, Problem


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
    eps: float = 0.0  # the dtype's machine epsilon: the error in its units, relative to scale
    context: str = ""  # what the scenario did there ("`quad` had no gradient at step 2")

    def __str__(self) -> str:
        d = self.diff
        what = "NaN/inf in different places; " if d.nonfinite_differ else ""
        # in eps of the tensor's largest magnitude so far, not in ulp of the value itself: a
        # value that crosses zero is 10^18 ulp from its neighbour and still one rounding off
        units = (f" ({self.rel_error / self.eps:.3g} eps)"
                 if self.eps and math.isfinite(self.rel_error) else "")
        where = f" ({self.context})" if self.context else ""
        return (f"step {self.step}, {self.tensor}{where}: {what}|error| {d.abs_error:.3g}, "
                f"relative {self.rel_error:.3g}{units}")


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
    eps: float = 0.0  # the dtype's machine epsilon (Mismatch's units)
    # state that is not part of the verdict (state="auto": a key both keep, perhaps with another
    # meaning): its first difference, and the entries that could not be compared and why
    state_verdict: bool = True
    first_state_difference: Mismatch | None = None
    not_compared: dict = field(default_factory=dict)  # label -> why

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

    def add(self, step: int, tensor: str, diff: Difference, context: str = "",
            state: bool = False) -> None:
        self.scales[tensor] = scale = max(self.scales.get(tensor, 0.0), diff.scale)
        rel = diff.rel_error(scale)
        if state and not self.state_verdict:  # noted, not judged
            if self.first_state_difference is None and (diff.nonfinite_differ or rel > self.rtol):
                self.first_state_difference = Mismatch(step, tensor, diff, rel, self.eps, context)
            return
        self.max_abs_error = max(self.max_abs_error, diff.abs_error)
        self.max_rel_error = max(self.max_rel_error, rel)
        if diff.ulp > self.max_ulp:
            self.max_ulp, self.max_ulp_at = diff.ulp, f"step {step}, {tensor}"
        if self.first_mismatch is None and (diff.nonfinite_differ or rel > self.rtol):
            self.first_mismatch = Mismatch(step, tensor, diff, rel, self.eps, context)

    def structural(self, step: int, tensor: str, text: str, context: str = "") -> None:
        if self.first_mismatch is None:
            inf = float("inf")
            self.first_mismatch = Mismatch(step, f"{tensor} ({text})",
                                           Difference(inf, 1.0, inf, True), inf, 0.0, context)

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
                "steps_requested": self.steps_requested, "raised": self.raised,
                "first_state_difference": None if self.first_state_difference is None else
                str(self.first_state_difference), "not_compared": dict(self.not_compared)}


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


def _compare(cmp: Comparison, step: int, cand: Run, ref: Run, strict: bool, state,
             context) -> None:
    """Parameters and state at one step. `state`: "judged" (every entry the reference keeps, by
    name; `strict`: the key sets must agree too), "noted" (entries both keep, by name, as far
    as they are comparable tensors: differences are noted, not judged), "none", or a map
    {reference key: candidate key} (judged). `context(name)`: what the scenario did to that
    parameter at this step.

    Against torch's own class ("judged": the keys mean the same) state comes first, so a wrong
    buffer is named before the parameter it moves; otherwise the parameters come first: they
    are what an optimizer does, and another implementation's state may mean something else."""
    if state != "judged":
        _compare_params(cmp, step, cand, ref, context)
    if state != "none":
        _compare_state(cmp, step, cand, ref, strict, state, context)
    if state == "judged":
        _compare_params(cmp, step, cand, ref, context)


def _compare_params(cmp: Comparison, step: int, cand: Run, ref: Run, context) -> None:
    for name in NAMES:
        cmp.add(step, name, difference(cand.params[name], ref.params[name]), context(name))


def _compare_state(cmp: Comparison, step: int, cand: Run, ref: Run, strict: bool, state,
                   context) -> None:
    judged = state != "noted"
    for name in NAMES:
        sp = getattr(cand.opt, "state", {}).get(cand.params[name], {})
        sq = getattr(ref.opt, "state", {}).get(ref.params[name], {})
        keys = state.items() if isinstance(state, dict) else ((k, k) for k in sq)
        for key, theirs in keys:
            label = f"state[{theirs!r}] of {name}" if theirs == key else \
                f"state[{theirs!r}] of {name} (the reference's {key!r})"
            if key not in sq:
                continue
            if theirs not in sp:  # a key asked for by name must be there
                if judged and (strict or isinstance(state, dict)):
                    cmp.structural(step, label, f"missing in {cmp.candidate}", context(name))
                continue
            a, b, why = _comparable(sp[theirs], sq[key])
            if why:
                if judged:
                    cmp.structural(step, label, why, context(name))
                else:
                    cmp.not_compared.setdefault(label, why)
                continue
            cmp.add(step, label, difference(a.to(b.device), b), context(name), state=True)
        if strict and state == "judged":
            for key in sorted(set(sp) - set(sq)):
                cmp.structural(step, f"state[{key!r}] of {name}",
                               f"{cmp.candidate} has it, {cmp.reference} does not")


def _comparable(a, b) -> tuple:
    """(a, b, "") as tensors of one shape, or (None, None, why not): a real optimizer may keep a
    dict, a list or a number under torch's key (torch-optimizer's AggMo: a dict of buffers)."""
    def tensor(x):
        if torch.is_tensor(x):
            return x
        if isinstance(x, (bool, int, float)):
            return torch.as_tensor(float(x))
        return None
    ta, tb = tensor(a), tensor(b)
    if ta is None or tb is None:
        kinds = f"{type(a).__name__} vs {type(b).__name__}"
        return None, None, f"not comparable: {kinds}"
    if ta.shape != tb.shape:
        return None, None, f"shape {tuple(ta.shape)} vs {tuple(tb.shape)}"
    return ta.detach(), tb.detach(), ""


def require_device(device, who: str) -> None:
    """A device this machine has: a missing GPU is a configuration error, said once, not a
    mismatch (inside a user's pytest, an AssertionError would read as 'your optimizer is wrong')."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{who}: CUDA is not available on this machine "
                        "(torch.cuda.is_available() is False)")


def side_by_side(factories: dict, pairs: list, *, steps: int, dtype=torch.float64,
                 device="cpu", seed: int = 0, scenario: Scenario = Scenario(),
                 strict: bool = True, stop_early=False, reraise=(), settle=(),
                 state="judged") -> list:
    """Run every factory (name -> factory(params) -> Optimizer) on the problem; compare each
    (candidate, reference) pair after every step. Gradients come from the first factory's run;
    every run restarts from a checkpoint at scenario.resume_at. `strict`: state entries
    must match by name (False: compare the entries both have). `stop_early`: True stops at the
    first mismatch of any pair; a collection of candidate names, at the first of theirs.
    `reraise`: names of runs whose exceptions propagate with their own traceback (a user's
    optimizer), with a note of the step; any other run's exception is reported in its pairs.
    `settle`: candidate names whose run stops at their first mismatch (only the verdict is
    wanted, not the largest error over the run). `state`: how state is compared (_compare)."""
    threads = torch.get_num_threads()
    # the problem is tiny: with more than one thread, OpenMP start-up dominates (torch's fused
    # CPU Adam takes ~40 ms a step on 2 threads, 0.1 ms on one); the user's setting is restored
    torch.set_num_threads(1)
    try:
        return _side_by_side(factories, pairs, steps, dtype, device, seed, scenario, strict,
                             stop_early, set(reraise), set(settle), state)
    finally:
        torch.set_num_threads(threads)


def _side_by_side(factories, pairs, steps, dtype, device, seed, scenario, strict, stop_early,
                  reraise, settle, state):
    problem = Problem(seed, scenario.skip_every, scenario.late_from)
    runs = {name: Run(f, problem, scenario, dtype, device) for name, f in factories.items()}
    source = runs[next(iter(factories))]
    rtol, eps = tolerance(dtype), torch.finfo(dtype).eps
    comparisons = [Comparison(a, b, rtol, steps_requested=steps, eps=eps,
                              state_verdict=state != "noted") for a, b in pairs]
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
                _compare(cmp, step, runs[cmp.candidate], runs[cmp.reference], strict, state,
                         lambda name: scenario_context(scenario, problem, grads, step, steps,
                                                       name))
                if cmp.first_mismatch and cmp.candidate in settle:
                    settled.add(cmp.candidate)
        if not all(c.agree for c in watched):
            break
    return comparisons


def scenario_context(scenario: Scenario, problem: Problem, grads: dict, step: int, steps: int,
                     name: str) -> str:
    """What the scenario did to parameter `name` at `step`, in words, so that a mismatch there
    names its likely cause; "" for a plain step."""
    said = []
    if grads.get(name) is None:
        said.append(f"`{name}` had no gradient at step {step}" if step >= problem.late_from
                    or name != LATE else f"`{name}` has had no gradient yet")
    elif name == LATE and step == problem.late_from and step > 1:
        said.append(f"`{name}` got its first gradient at step {step}")
    resumed = round(scenario.resume_at * steps) if scenario.resume_at else None
    if resumed and step == resumed + 1:
        said.append(f"the first step after every run restarted from a state_dict checkpoint "
                    f"(after step {resumed})")
    if scenario.lr_decay != 1 and step == 2:
        said.append("the first step with the lr changed by the schedule")
    if scenario.switch_off and scenario.groups and name in GROUPS[1]:
        lo, hi = (f * steps for f in scenario.switch_off)
        if lo < step <= hi and not lo < step - 1 <= hi:
            said.append("the first step of group 2 with momentum and weight_decay set to 0")
        elif lo < step - 1 <= hi and not lo < step <= hi:
            said.append("the first step of group 2 with momentum and weight_decay restored")
    return "; ".join(said)


def _raised_text(raised: dict) -> str:
    return f"step {raised['step']}: {raised['type']}: {raised['message']}"
