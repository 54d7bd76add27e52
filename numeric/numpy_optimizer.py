"""`numeric.numpy_step(spec)`: one optimizer step in numpy, generated from derive's symbolic rule.

    step = numpy_step("adam(lr=1e-3)")
    state = step.init(theta)                     # torch's fresh state: t=0, m=v=0
    state, theta = step(state, theta, grad)      # hyperparameters may be overridden: lr=...

The initial state is torch's fresh state for the parameter, `step.init(theta)`: a dict keyed by
the rule's state names, `t` = 0 and zero arrays for Adam's `m`, `v` (and `vmax` with amsgrad),
`buf` = None for SGD with momentum (torch creates the buffer from the first gradient). An empty
dict or None means the same: missing entries are created on the first call, as torch creates
them on a parameter's first step. Pass a mid-run state (the dict a call returned) to continue.
The function is pure: it returns new arrays and never writes to its inputs.
"""
from __future__ import annotations

from functools import lru_cache

import numpy

from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import as_spec

from .numpy_codegen import compile_numpy
from .program import cached_program
from .structure import structure_key
from .validation import check_values


@lru_cache(maxsize=None)
def _compiled(key, absent, rule_for):
    return compile_numpy(cached_program(key, absent, rule_for))


class NumpyStep:
    """A callable `(state, theta, grad, **hyper) -> (state, theta)`; state is a dict keyed by
    the rule's state names (buf; t, m, v, vmax). Hyperparameters are keyword arguments with
    canonical names (lr, momentum, dampening, weight_decay, beta1, beta2, eps); the spec's
    values are the defaults. The program is chosen per call from the structure the values
    switch on (momentum != 0, weight_decay != 0) and from which state entries exist yet."""

    def __init__(self, spec, rule_for=build_rule):
        self.text = spec if isinstance(spec, str) else str(spec)
        self.spec = as_spec(spec)
        self.rule_for = rule_for
        self.defaults = {k: float(v) for k, v in self.spec.hyper(numeric=True).items()}
        entry = self.spec.entry
        self.hyper_names = tuple(s.name for s in entry.scalars)
        self.flags = {f: self.spec.flag(f) for f in entry.flags}
        if entry.decay_flag:
            self.flags[entry.decay_flag] = self.spec.decay == "decoupled"

    def _hyper(self, hyper: dict) -> dict:
        unknown = set(hyper) - set(self.hyper_names)
        if unknown:
            raise TypeError(f"{self.spec.name} step got unexpected hyperparameters "
                            f"{sorted(unknown)}; valid: {', '.join(self.hyper_names)}")
        h = {**self.defaults, **hyper}
        if hyper:  # the spec's own values were checked when it was parsed
            values = {}
            for hp in self.spec.entry.hypers:  # canonical names back to torch's keywords
                parts = tuple(h[s.name] for s in hp.scalars)
                values[hp.key] = parts if hp.pair else parts[0]
            values.update({k: v for k, v in self.spec.given.items() if k in self.spec.entry.flags})
            check_values(self.spec, values)
        return h

    def _key(self, h: dict):
        return structure_key(self.spec, h=h, flags=self.flags)

    def init(self, theta, **hyper) -> dict:
        """torch's fresh state for `theta`: each entry at torch's first value (zeros; lr for
        Rprop's step sizes), SGD's torch buffer None (it is created by the first step)."""
        h = self._hyper(hyper)
        program = cached_program(self._key(h), frozenset(), self.rule_for)
        theta = numpy.asarray(theta)
        first = program.first_values(h)
        return {name: None if name in program.lazy else first[name]
                if name in program.scalar_state else numpy.full_like(theta, first[name])
                for name in program.state}

    def program(self, state: dict | None = None, **hyper):
        """The Program a call with these arguments runs (see numeric.program)."""
        key = self._key(self._hyper(hyper))
        names = cached_program(key, frozenset(), self.rule_for).state
        state = state if state is not None else self.init(numpy.zeros(()), **hyper)
        absent = frozenset(n for n in names if state.get(n) is None)
        return key, absent

    def source(self, state: dict | None = None, **hyper) -> str:
        """The generated numpy source that a call with these arguments runs."""
        return _compiled(*self.program(state, **hyper), self.rule_for).source

    def __call__(self, state: dict | None, theta, grad, **hyper):
        if state is None:  # a parameter's first step, as torch starts with an empty state
            state = {}
        if not isinstance(state, dict):
            raise TypeError(f"{self.spec.name} step: state must be a dict (from step.init(theta) "
                            f"or a previous call) or None, got {type(state).__name__}")
        h = self._hyper(hyper)
        key = self._key(h)
        names = cached_program(key, frozenset(), self.rule_for).state
        missing = [n for n in names if n not in state]
        if missing:  # lazily created, as torch does on a parameter's first step
            state = {**self.init(theta, **hyper), **state}
        absent = frozenset(n for n in names if state.get(n) is None)
        fn = _compiled(key, absent, self.rule_for)
        theta, grad = numpy.asarray(theta), numpy.asarray(grad)
        _same_shape(theta, {"grad": grad, **state})
        return fn(state, theta, grad, **h)

    def __repr__(self) -> str:
        return f"numpy_step({self.text!r})"


def _same_shape(theta, arrays: dict) -> None:
    """numpy would broadcast a gradient (4, 3) onto θ (3,) and return a θ of another shape;
    torch refuses a gradient of another size: so do we, in one line."""
    for name, value in arrays.items():
        shape = () if value is None else numpy.shape(value)
        if shape != theta.shape and (name == "grad" or shape != ()):  # () is a count, or 0
            raise UserError(f"{name} of shape {shape} does not match theta of shape "
                            f"{theta.shape}")


def compiled_step(structure, absent: frozenset, rule_for=build_rule):
    """The generated function for a structure (NumpyStep.program's key) and the state absent
    before the step: `fn(state, theta, grad, **h)` with every canonical hyperparameter given
    and nothing checked, so numpy broadcasts arrays of hyperparameter values against theta
    (numeric.fitting runs many values at once). Cached."""
    return _compiled(structure, absent, rule_for)


def numpy_step(spec, *, rule_for=build_rule) -> NumpyStep:
    """A numpy step function generated from `spec`'s symbolic rule (all values numeric;
    omitted ones take torch's defaults). `rule_for` builds the rule for a structural spec; the
    default is derive's build_rule (tests pass planted rules through it)."""
    return NumpyStep(spec, rule_for)
