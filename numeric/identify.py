"""What does this optimizer actually do? `identify(factory)` names the specs it implements.

    from optequiv.numeric.testing import identify
    found = identify(lambda params: torch.optim.AdamW(params, lr=3e-4, weight_decay=0.1))
    found.matches   # ['adamw(lr=0.0003, weight_decay=0.1)', ...]

1. Probes (numeric.probes): the optimizer runs open loop on designed gradient sequences, one
   coordinate per probe.
2. Candidates (numeric.candidates): every catalogue entry and its nearest variants, the
   hyperparameters the user did not give (`hyper`, torch's names) left to fit.
3. Fits (numeric.fitting): each candidate's symbolic rule, as its generated step, is solved for
   its unknowns against the observed steps, first on a few steps (a cheap prune), then on all;
   the solution is rounded to the shortest decimals that reproduce every observation.
4. Verification: a candidate that reproduces the probes is a match only if
   numeric.testing.assert_matches_spec passes on its spec: random problems, missing gradients, a
   late parameter, an lr schedule, a restart, and its own nearest variants told apart.

When nothing matches, the nearest fit's template one convention further (each variant of
numeric.variants) is fitted afresh: the pool holds torch's conventions and one key away, so an
optimizer two keys away is found here, and matches once the check passes. Otherwise `nearest`
is the closest fit, with assert_matches_spec's first mismatch and, where the difference from it
is along one of the spec's known axes, that key, its other value and derive.compare's first
divergent step and difference between the two. "Along" is measured: a variant that, refitted,
leaves a GAIN-th of the nearest's probe error or less names its axis (the fitted values bend to
absorb what they do not model, so the nearest's residual alone points elsewhere); failing
that, a cosine of ALIGNED or more between what the optimizer did minus the nearest spec and
what a variant does minus it. This is evidence from numbers, not a proof: the difference itself
is derive's, symbolic.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from fractions import Fraction

import numpy
import torch

from optequiv.derive.compare import compare
from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import make_spec, parse_spec

from .candidates import Candidate, candidates
from .fitting import Fitter, Model, Observation
from .metrics import EPS_UNITS
from .probes import design, observe
from .testing import SpecMismatch, assert_matches_spec
from .variants import _current, _shape, nearest_variants

PRUNE_STEPS, PRUNE_ITERATIONS = 6, 15  # the cheap first fit every candidate gets
FIT_ITERATIONS = 60
SCANS = 3
KEEP_ABOVE = 1e-3  # RMS error relative to the probes' movement under which a candidate goes on
KEEP_BEST = 5  # ... and the best few in any case (the nearest is among them)
ALIGNED = 0.9
GAIN = 10.0  # a variant refitted to a tenth of the nearest's probe error names its axis
CLOSE = 1.25  # fits within this factor of the best RMS count as equally close
COMPARE_SECONDS = 10.0


@dataclass
class Nearest:
    """The closest spec to an optimizer that matches none, and how it differs."""

    spec: str
    probe_error: float  # the RMS difference on the probes, relative to each probe's movement
    first_mismatch: dict | None  # assert_matches_spec's: step, tensor, rel_error, text
    axis: str | None = None  # the key along which the difference points
    variant: str | None = None  # the spec with that key's other value
    alignment: float | None = None  # the cosine that named it
    first_divergent_step: int | None = None  # derive.compare(spec, variant)
    difference: str | None = None
    alignments: dict = field(default_factory=dict)  # variant -> its cosine, every one tried
    # variant template -> its probe error refitted afresh (identify._refits), and the named
    # variant's: where it is GAIN times smaller than probe_error, it named the axis
    refits: dict = field(default_factory=dict)
    refit_error: float | None = None

    def to_json(self) -> dict:
        return {"spec": self.spec, "probe_error": _finite(self.probe_error),
                "first_mismatch": self.first_mismatch, "axis": self.axis,
                "variant": self.variant, "alignment": self.alignment,
                "first_divergent_step": self.first_divergent_step,
                "difference": self.difference, "alignments": dict(self.alignments),
                "refits": dict(self.refits), "refit_error": _finite(self.refit_error)}

    def __str__(self) -> str:
        lines = [f"nearest: {self.spec} (RMS difference on the probes {self.probe_error:.3g} "
                 "of each probe's movement)"]
        if self.first_mismatch:
            lines.append(f"  first mismatch: {self.first_mismatch['text']}")
        if self.axis and self.refit_error is not None:
            lines.append(f"  the difference is along {self.axis}: {self.variant} leaves "
                         f"{self.refit_error:.3g} of it (refitted)")
        elif self.axis:
            lines.append(f"  the difference points along {self.axis} (toward {self.variant}; "
                         f"cosine {self.alignment:.3f})")
        if self.axis:
            if self.first_divergent_step:
                lines.append(f"  {self.spec} and {self.variant} first differ at step "
                             f"{self.first_divergent_step}: theta difference {self.difference}")
        return "\n".join(lines)


@dataclass
class Identification:
    matches: list  # spec strings, shortest first, each verified by assert_matches_spec
    nearest: Nearest | None  # when nothing matches
    checked: dict = field(default_factory=dict)  # spec -> why it is no match (fit the probes)

    def to_json(self) -> dict:
        return {"matches": list(self.matches),
                "nearest": None if self.nearest is None else self.nearest.to_json()}

    def __str__(self) -> str:
        if self.matches:
            return "\n".join(["matches:"] + [f"  {m}" for m in self.matches])
        return "matches: none\n" + (str(self.nearest) if self.nearest else "nearest: none")


def _finite(x):
    return x if x is not None and math.isfinite(x) else None


def spec_text(candidate: Candidate, values: dict) -> str:
    """The candidate at these values, as a spec: values at torch's default left out, and flags
    and choices that do not change the rule at these values (any decay= at weight_decay 0)."""
    entry = candidate.entry
    given = {}
    for h in entry.hypers:
        vals = tuple(values[s.name] for s in h.scalars)
        if vals != tuple(float(Fraction(s.default)) for s in h.scalars):
            given[h.key] = vals if h.pair else vals[0]
    for key, value in candidate.template.given.items():
        if key in entry.flags or key in entry.all_choices:
            given[key] = value
    spec = parse_spec(_text(entry.name, given))
    for key in [k for k in given if k in entry.flags or k in entry.all_choices]:
        fewer = {k: v for k, v in given.items() if k != key}
        try:
            simpler = parse_spec(_text(entry.name, fewer))
        except UserError:
            continue
        if _shape(build_rule(simpler)) == _shape(build_rule(spec)):
            given, spec = fewer, simpler
    return _text(entry.name, given)


def _text(name: str, given: dict) -> str:
    def one(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return v
        return repr(float(v))
    parts = [f"{k}=({', '.join(map(one, v))})" if isinstance(v, tuple) else f"{k}={one(v)}"
             for k, v in given.items()]
    return f"{name}({', '.join(parts)})"


def identify(factory, *, hyper=None, steps=20, dtype=torch.float64, seed=0) -> Identification:
    """The specs that `factory(params)` implements (`.matches`), or the nearest one and how it
    differs (`.nearest`). `hyper`: the values you know, in torch's names ({"lr": 3e-4,
    "betas": (0.9, 0.95)}; flags and choice keys too); the rest are fitted. `steps`, `dtype`,
    `seed`: the probes' length and dtype, and assert_matches_spec's."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"identify: steps must be a whole number >= 2, got {steps!r}")
    if dtype not in EPS_UNITS:
        raise ValueError(f"identify: dtype must be one of {', '.join(map(str, EPS_UNITS))}, "
                         f"got {dtype!r}")
    pool = candidates(hyper)
    probes = design(steps, seed)
    observation = Observation(probes, observe(factory, probes, dtype), dtype)
    fitters = [Fitter(c, observation) for c in pool]
    for f in fitters:
        f.improve(min(PRUNE_STEPS, steps), PRUNE_ITERATIONS)
    fitters.sort(key=lambda f: f.relative)
    # the best few, and each entry's best: a value seen only through a sign (Lion's betas)
    # leaves its entry far behind until the grid has found it
    best_of = {id(next(f for f in fitters if f.candidate.entry is e))
               for e in {id(f.candidate.entry): f.candidate.entry for f in fitters}.values()}
    kept = [f for i, f in enumerate(fitters)
            if f.relative <= KEEP_ABOVE or i < KEEP_BEST or id(f) in best_of]
    for f in kept:
        for _ in range(SCANS):  # a grid for what acts through a sign, then the rest again
            f.improve(steps, FIT_ITERATIONS)
            if f.error <= observation.tol or not f.scan():
                break
    fits = sorted((f.finish() for f in kept), key=lambda f: f.relative)
    texts = {}  # spec text -> its fit (the best one of each text)
    for fit in fits:
        try:
            texts.setdefault(spec_text(fit.candidate, fit.values), fit)
        except UserError:  # the fitted values are outside what torch builds
            continue
    matches, checked = [], {}
    for text, fit in sorted(texts.items(), key=lambda kv: (len(kv[0]), kv[0])):
        if not fit.exact:
            continue
        why = _verify(factory, text, steps, dtype, seed)
        if why is None:
            matches.append(text)
        else:
            checked[text] = why
    if not matches:  # an exact fit the check refuted: what a missing gradient does, perhaps
        for text in [t for t in checked if texts[t].exact]:
            for variant in _missing_gradient_variants(text):
                why = _verify(factory, variant, steps, dtype, seed)
                if why is None:
                    matches.append(variant)
                else:
                    checked[variant] = why
    nearest = None
    if not matches and texts:
        # the simplest of the close ones: another flag flipped buys a few percent of fit with
        # distorted rates (amsgrad with beta2 0.74) and says less about what is there
        best = min(f.relative for f in texts.values())
        close = {t: f for t, f in texts.items() if f.relative <= CLOSE * best}
        text, fit = min(close.items(), key=lambda kv: (*_conventions(kv[0]), kv[1].relative))
        refits = _refits(fit, observation, steps)
        # two conventions away from torch's (the pool holds one): an exact refit one key
        # further is a match once the check passes
        for refit, variant in refits:
            if refit.exact:
                try:
                    again = spec_text(refit.candidate, refit.values)
                except UserError:
                    continue
                why = checked.get(again) or _verify(factory, again, steps, dtype, seed)
                if why is None:
                    matches.append(again)
                else:
                    checked[again] = why
        if not matches:
            nearest = _nearest(factory, text, fit, observation, steps, dtype, seed, checked,
                               refits)
    return Identification(matches, nearest, checked)


def _refits(fit, observation, steps) -> list:
    """[(Fit, variant template)]: the nearest fit's template one convention away (each
    variant of numeric.variants), fitted afresh from the nearest's values. The fitted values
    bend to absorb a convention they do not model (a raw-sqrt(v) eps is partly a larger eps
    and a smaller beta1), so what the optimizer does is judged by what each variant, refitted,
    leaves over, not by the nearest's residual alone."""
    out = []
    template = fit.candidate.template
    for variant in nearest_variants(template):
        candidate = Candidate(variant, fit.candidate.unknowns, fit.candidate.fixed)
        fitter = Fitter(candidate, observation)
        if fitter.model is None:
            continue
        for i, n in enumerate(fitter.names):  # from the nearest's values, where inside
            try:
                fitter.y[i] = fitter.domains[n].coordinate(fit.values[n])
            except (ValueError, OverflowError):  # on the edge (0 on a half-line)
                pass
        for _ in range(SCANS):
            fitter.improve(steps, FIT_ITERATIONS)
            if fitter.error <= observation.tol or not fitter.scan():
                break
        out.append((fitter.finish(), variant))
    return out


def _missing_gradient_variants(text: str) -> list:
    """The spec's variants that differ from it only where a parameter has no gradient at a step
    (step_counter, missing_grad): the probes give every coordinate a gradient at every step, so
    only the check's scenario tells them apart, and only the fit's own spec needs them."""
    spec = parse_spec(text)
    plain = {str(v) for v in nearest_variants(spec)}
    return [str(v) for v in nearest_variants(spec, missing_grads=True) if str(v) not in plain]


def _conventions(text: str) -> tuple:
    """How many flags and choice keys a spec sets (its distance from torch's conventions)."""
    spec = parse_spec(text)
    entry = spec.entry
    return (sum(1 for k in spec.given if k in entry.flags or k in entry.all_choices),)


def _verify(factory, text: str, steps: int, dtype, seed: int) -> dict | None:
    """None when assert_matches_spec passes; else the first mismatch, as Nearest shows it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert_matches_spec(factory, text, steps=steps, dtype=dtype, seed=seed)
    except SpecMismatch as failure:
        m = failure.mismatch
        return {"step": m.step, "tensor": m.tensor, "rel_error": _finite(m.rel_error),
                "text": str(m), "scenario": m.context, "instead": list(failure.instead)}
    except UserError as error:  # numeric.torch_optimizer refuses the spec
        return {"step": None, "tensor": None, "rel_error": None, "text": str(error),
                "scenario": "", "instead": []}
    except Exception as error:  # noqa: BLE001 - yours raised in the check's scenario
        note = " ".join(getattr(error, "__notes__", []))
        return {"step": None, "tensor": None, "rel_error": None,
                "text": f"the optimizer raised {type(error).__name__}: {error} {note}".strip(),
                "scenario": "", "instead": []}
    return None


def _nearest(factory, text, fit, observation, steps, dtype, seed, checked,
             refits=()) -> Nearest:
    mismatch = checked.get(text) or _verify(factory, text, steps, dtype, seed)
    near = Nearest(text, fit.relative, mismatch)
    spec = parse_spec(text)
    user = -fit.direction  # what the optimizer did minus the spec, per probe and step
    if fit.exact or not numpy.all(numpy.isfinite(user)) or not numpy.any(user):
        return near  # nothing on the probes to point anywhere: the check's scenario differs
    near.refits = {str(v): _finite(r.relative) for r, v in refits}
    gained = min(refits, key=lambda rv: rv[0].relative, default=None)
    if gained is not None and gained[0].relative * GAIN <= fit.relative:
        # a variant that, refitted, leaves a GAIN-th of the difference or less names the axis
        refit, template = gained
        variant = parse_spec(spec_text(refit.candidate, refit.values))
        return _named(near, fit, spec, variant, refit.relative,
                      fit.candidate.template.conventions_apart(template))
    model_c = Model(_at(spec), {})
    base = model_c.run(fit.values, observation.probes)[:, 0, :]
    best = None
    for variant in nearest_variants(spec):
        try:
            theirs = Model(_at(variant), {}).run(fit.values, observation.probes)[:, 0, :]
        except (UserError, ValueError, TypeError):
            continue
        toward = ((theirs - base) / observation.moved).ravel()
        if not numpy.all(numpy.isfinite(toward)) or not numpy.any(toward):
            continue
        cosine = float(user @ toward / (numpy.linalg.norm(user) * numpy.linalg.norm(toward)))
        near.alignments[str(variant)] = round(cosine, 4)
        if best is None or cosine > best[0]:
            best = (cosine, variant)
    if best is None or best[0] < ALIGNED:
        return near
    cosine, variant = best
    near.alignment = round(cosine, 4)
    return _named(near, fit, spec, variant, None)


def _named(near: Nearest, fit, spec, variant, refit_error, keys=None) -> Nearest:
    """near with the axis from spec to variant named (`keys`, default: where the two differ),
    and derive.compare's difference."""
    keys = spec.conventions_apart(variant) if keys is None else keys
    near.axis, near.variant, near.refit_error = ", ".join(keys), str(variant), refit_error
    if near.alignment is None:
        near.alignment = near.alignments.get(str(variant))
    near.first_divergent_step, near.difference = _difference(fit.candidate, spec, variant, keys)
    return near


def _at(spec) -> Candidate:
    """A candidate with nothing left to fit: `spec` itself (Model runs it at given values)."""
    return Candidate(spec, (), tuple(sorted((k, v) for k, v in spec.hyper(numeric=True).items())))


def _difference(candidate: Candidate, spec, variant, keys) -> tuple:
    """derive.compare of the two conventions with the fitted hyperparameters as symbols (the
    template's), falling back to the numeric specs: (first divergent step, difference)."""
    template = candidate.template
    pairs = []
    try:
        changed = {**template.given, **{k: _current(variant, k) for k in keys}}
        pairs.append((template, make_spec(template.name, changed)))
    except UserError:
        pass
    pairs.append((spec, variant))
    for a, b in pairs:
        result = compare(a, b, want_conditions=False, want_witness=False,
                         seconds=COMPARE_SECONDS)
        if result.first_divergent_step is not None:
            return result.first_divergent_step, str(result.difference)
    return None, None


__all__ = ["identify", "Identification", "Nearest", "spec_text"]
