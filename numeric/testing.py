"""Check your own optimizer against a spec, in your own CI.

    from optequiv.numeric.testing import assert_matches_spec

    def test_my_adamw():
        assert_matches_spec(lambda params: MyAdamW(params, lr=1e-3, weight_decay=0.1),
                            "adamw(lr=1e-3, weight_decay=0.1)")

The reference is the optimizer generated from the spec's symbolic rule (numeric.torch_optimizer),
not torch.optim, so specs torch has no class for work too (decay=independent, buffer=zero).
Both optimizers run side by side on numeric.problems (open loop: the same gradients for both,
some of them None, one parameter joining late, an lr schedule applied through param_groups,
and a restart of yours from its state_dict halfway). Parameters are compared after every step,
and so are the state entries both optimizers keep under the same name (torch's names: step,
momentum_buffer, exp_avg, exp_avg_sq, max_exp_avg_sq).

A pass means something only if the check could have failed. The wrong optimizers most likely to
pass by accident are the spec's nearest variants (numeric.variants: another decay=, buffer=, a
flag flipped), so the generated optimizer of each runs beside the reference on the same
gradients. A variant the dtype cannot tell from the spec at these settings (AdamW decaying after
the step differs by lr²·λ per step: below float32's resolution at lr 1e-4) makes the check run
again in float64, where it can; the messages state the resolution reached. A variant that is
the spec itself at these values (numeric.variants.same_optimizer_at, a proof) needs no telling
apart.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import torch

from optequiv.derive.spec import as_spec

from .harness import Scenario, require_device, side_by_side
from .metrics import EPS_UNITS
from .optimizer import torch_optimizer
from .variants import nearest_variants, same_optimizer_at

SCENARIO = Scenario(groups=False, switch_off=None)
SWITCHES = ("missing_grads", "late_param", "schedule", "restart")  # scenario parts one can drop


def scenario(missing_grads=True, late_param=True, schedule=True, restart=True) -> Scenario:
    """The check's scenario with the parts switched off that a user wants to rule out as a
    cause: steps on which `quad` has no gradient, `late` joining late, the lr schedule, the
    restart from a state_dict checkpoint."""
    return replace(SCENARIO, skip_every=SCENARIO.skip_every if missing_grads else 0,
                   late_from=SCENARIO.late_from if late_param else 1,
                   lr_decay=SCENARIO.lr_decay if schedule else 1.0,
                   resume_at=SCENARIO.resume_at if restart else None)


def _state_mode(state):
    """assert_matches_spec's `state=` as harness.side_by_side takes it."""
    if state == "auto":
        return "noted"
    if state is False or state == "params":
        return "none"
    if isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, str)
                                       for k, v in state.items()):
        return dict(state)
    raise ValueError("assert_matches_spec: state must be 'auto', 'params' (or False) or a "
                     f"dict of the spec's state keys to yours, got {state!r}")
YOURS = "the optimizer under test"  # the run's name: exceptions carry it in their note


class UnresolvedWarning(UserWarning):
    """The check passed, but could not tell the spec from one of its nearest variants."""


def _name(dtype) -> str:
    return str(dtype).split(".")[-1]


@dataclass(frozen=True)
class Resolution:
    """One dtype's run: the comparison of the optimizer under test, and of each variant."""

    dtype: torch.dtype
    yours: object  # harness.Comparison
    variants: list  # harness.Comparison per variant (candidate: the variant's spec text)
    same: tuple = ()  # variants proven to be the spec at these values

    @property
    def unresolved(self) -> list:
        return [c for c in self.variants if c.agree and c.candidate not in self.same]

    def cannot_tell(self, either: str = "") -> str:
        """'float32 cannot tell X from the spec ...', or '' when it tells every variant apart."""
        if not self.unresolved:
            return ""
        names = ", ".join(f"{c.candidate} (max relative difference {c.max_rel_error:.3g})"
                          for c in self.unresolved)
        return (f"{_name(self.dtype)} cannot{either} tell {names} from the spec at these "
                f"settings (tolerance {self.yours.rtol:.3g})")


@dataclass(frozen=True)
class Check:
    """What a passing assert_matches_spec established; str() says it in one line."""

    spec: str
    steps: int
    runs: list  # Resolution per dtype compared: the test dtype, then float64 where it ran
    skipped_float64: bool = False  # float64 would have run, but also_float64=False

    @property
    def unresolved(self) -> list:
        """The variants the last dtype compared could not tell from the spec."""
        return [c.candidate for c in self.runs[-1].unresolved]

    @property
    def state_notes(self) -> list:
        """What state="auto" saw and did not judge: state kept under the spec's key that holds
        something else, and entries that could not be compared."""
        c = self.runs[0].yours
        notes = [f"{label}: {why}" for label, why in c.not_compared.items()]
        if c.first_state_difference is not None:
            notes.insert(0, f"the state differs from the spec's under the same key from "
                            f"{c.first_state_difference} while the parameters match: it holds "
                            "another quantity there (state={spec key: your key} compares "
                            "chosen entries)")
        return notes

    def __str__(self) -> str:
        first = self.runs[0]
        told = len(first.variants) - len(first.unresolved) - len(first.same)
        parts = [f"matches {self.spec} over {self.steps} steps in {_name(first.dtype)} (max "
                 f"relative error {first.yours.max_rel_error:.3g}, tolerance "
                 f"{first.yours.rtol:.3g}); it tells {told} of its {len(first.variants)} nearest "
                 "variants apart"]
        if first.same:
            parts.append(f"{', '.join(first.same)} {'is' if len(first.same) == 1 else 'are'} "
                         "the spec itself at these values (proven)")
        if first.unresolved:
            parts.append(first.cannot_tell())
        if len(self.runs) > 1:
            last = self.runs[-1]
            parts.append(f"float64 compared as well: max relative error "
                         f"{last.yours.max_rel_error:.3g}, tolerance {last.yours.rtol:.3g}; "
                         + (last.cannot_tell(" either") or "it tells them apart"))
        if self.skipped_float64:
            parts.append("float64 not compared (also_float64=False)")
        return "; ".join(parts + self.state_notes)


@dataclass(frozen=True)
class Options:
    """How the check runs: the scenario and how state is compared (_state_mode's value)."""

    scenario: Scenario = SCENARIO
    state: object = "noted"


def _run(factory, spec, variants: dict, dtype, steps, device, seed, prove=True,
         options: Options = Options()) -> Resolution:
    """variants: spec text -> Spec. prove=False: they are known not to be the spec."""
    factories = {"reference": torch_optimizer(spec), YOURS: factory,
                 **{name: torch_optimizer(v) for name, v in variants.items()}}
    yours, *near = side_by_side(factories, [(name, "reference") for name in factories
                                            if name != "reference"],
                                steps=steps, dtype=dtype, device=device, seed=seed,
                                scenario=options.scenario, strict=False, stop_early={YOURS},
                                reraise={YOURS}, settle=set(variants), state=options.state)
    # proven only where the numbers could not tell: the proof costs more than a run
    same = tuple(c.candidate for c in near
                 if prove and c.agree and same_optimizer_at(spec, variants[c.candidate]))
    return Resolution(dtype, yours, near, same)


class SpecMismatch(AssertionError):
    """assert_matches_spec's failure. `mismatch`: the first (harness.Mismatch: step, tensor,
    rel_error); `instead`: the nearest variants that yours matches over the whole run."""

    def __init__(self, message: str, mismatch, instead: tuple = ()):
        super().__init__(message)
        self.mismatch, self.instead = mismatch, tuple(instead)


def _fail(text: str, run: Resolution, because: str = "", instead: tuple = ()) -> SpecMismatch:
    c, dtype = run.yours, run.dtype
    said = f"; it matches {' and '.join(instead)} instead" if instead else ""
    return SpecMismatch(
        f"the optimizer does not implement {text}: {because}first mismatch at "
        f"{c.first_mismatch} (tolerance: relative {c.rtol:.3g} = {EPS_UNITS.get(dtype)} eps of "
        f"{_name(dtype)}, against numeric.torch_optimizer({text!r})){said}", c.first_mismatch,
        instead)


def _instead(factory, variants: dict, dtype, steps, device, seed, options: Options) -> tuple:
    """The spec's nearest variants that yours matches over the whole run (each run to its end
    against yours)."""
    if not variants:
        return ()
    factories = {YOURS: factory, **{name: torch_optimizer(v) for name, v in variants.items()}}
    found = side_by_side(factories, [(name, YOURS) for name in variants], steps=steps,
                         dtype=dtype, device=device, seed=seed, scenario=options.scenario,
                         strict=False, reraise={YOURS}, settle=set(variants),
                         state=options.state)
    return tuple(c.candidate for c in found if c.passed)


def assert_matches_spec(factory, spec, *, steps=20, dtype=torch.float64, device="cpu", seed=0,
                        also_float64=True, state="auto", missing_grads=True, late_param=True,
                        schedule=True, restart=True) -> Check:
    """Raise AssertionError, naming the first mismatching step, tensor and error, unless
    `factory(params)` builds an optimizer that implements `spec` (a spec string or Spec, all
    values numeric) to the tolerance of `dtype` (numeric.metrics).

    The spec's nearest variants (numeric.variants) run beside it in `dtype`. When `dtype` cannot
    tell one of them from the spec at these settings, the check runs in float64 as well and
    fails if float64 disagrees (the message says which variant `dtype` could not resolve);
    `also_float64=False` leaves that out. Returns a Check: str() states the resolution reached.
    A variant that even the last comparison cannot tell from the spec gives an
    UnresolvedWarning (more steps, or larger lr·weight_decay, would resolve it).
    An exception from your optimizer propagates with its own traceback (a note gives the step).

    The parameters decide. `state="auto"` compares the state both keep under one key as far as
    it is comparable (a dict or a list under torch's key is left out) and notes a difference
    (Check.state_notes) without failing: another implementation may keep another quantity
    under torch's name. `state={spec key: your key}` compares those entries, and they must
    match; `state="params"` (or False) compares parameters only. `missing_grads`, `late_param`,
    `schedule` and `restart` switch parts of the scenario off, to isolate a cause; a message
    names the part that acted at the first mismatch, and a nearest variant that your optimizer
    matches instead.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"assert_matches_spec: steps must be a whole number >= 1, got {steps!r}")
    require_device(device, f"assert_matches_spec(device={str(device)!r})")
    switches = dict(zip(SWITCHES, (missing_grads, late_param, schedule, restart)))
    for name, value in switches.items():
        if not isinstance(value, bool):
            raise ValueError(f"assert_matches_spec: {name} must be True or False, got {value!r}")
    options = Options(scenario(**switches), _state_mode(state))
    text = spec if isinstance(spec, str) else str(spec)
    spec = as_spec(spec)
    # the scenario's steps without a gradient are where step_counter and missing_grad act
    gaps = options.scenario.skip_every > 0 or options.scenario.late_from > 1
    variants = {str(v): v for v in nearest_variants(spec, missing_grads=gaps)}
    first = _run(factory, spec, variants, dtype, steps, device, seed, options=options)
    if not first.yours.passed:
        raise _fail(text, first, instead=_instead(factory, variants, dtype, steps, device, seed,
                                                  options))
    runs, skipped = [first], False
    if first.unresolved and dtype != torch.float64:
        if also_float64:
            unresolved = {c.candidate: variants[c.candidate] for c in first.unresolved}
            try:
                wide = _run(factory, spec, unresolved, torch.float64, steps, device, seed,
                            prove=False, options=options)
            except Exception as error:  # yours raised in float64: say why float64 ran at all
                error.add_note(f"(assert_matches_spec compared float64 as well because "
                               f"{first.cannot_tell()}; also_float64=False leaves it out)")
                raise
            if not wide.yours.passed:
                raise _fail(text, wide, f"{first.cannot_tell()}; float64 compared as well "
                                        f"(in {_name(dtype)} it matched to relative "
                                        f"{first.yours.max_rel_error:.3g}; also_float64=False "
                                        "leaves float64 out): ")
            runs.append(wide)
        else:
            skipped = True
    check = Check(text, steps, runs, skipped)
    if check.unresolved:
        warnings.warn(f"assert_matches_spec({text!r}) passed, but {runs[-1].cannot_tell()}: an "
                      "optimizer implementing one of them would pass too; more steps or larger "
                      "hyperparameters may tell them apart", UnresolvedWarning, stacklevel=2)
    return check


__all__ = ["assert_matches_spec", "identify", "Check", "SpecMismatch", "UnresolvedWarning"]


def __getattr__(name):
    # identify (numeric.identify) runs this module's check, so it is imported when asked for
    if name in ("identify", "Identification"):
        from . import identify as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
