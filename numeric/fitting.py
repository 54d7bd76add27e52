"""Fitting a candidate's unknown hyperparameters to what an optimizer did on the probes.

The model is the candidate's symbolic rule (derive) as the generated numpy step
(numeric.numpy_step), run over the probes with arrays of hyperparameter values, one row per
point: the equations theta_k(h) = observed theta_k for every probe and step are solved by
Levenberg-Marquardt in coordinates that keep each value inside its domain (the catalogue's
bounds), starting from torch's defaults. The solution is then rounded, one value at a time, to the
shortest decimal (0 first) that still reproduces every observation within the dtype's tolerance
(numeric.metrics): 3e-4, not 3.0000000000012e-4. A value the probes cannot see (its equations do
not involve it, as ASGD's t0 for theta) keeps its default. A fit says only that the probes are
reproduced; numeric.identify verifies the rounded spec on random inputs before calling it a match.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy
import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.errors import UserError

from .candidates import Candidate
from .metrics import tolerance
from .numpy_optimizer import compiled_step, numpy_step
from .program import cached_program
from .probes import Probes

NONFINITE = 1e6  # the residual of an entry finite on one side only
FIT_TOLERANCE = 1e-6
MAX_STEP = 2.0
REFIT_ITERATIONS = 20  # the largest change of one coordinate in one iteration


def _fraction(text):
    return None if text is None else float(Fraction(text))


class Domain:
    """value <-> unconstrained coordinate y, from a Scalar's bounds."""

    def __init__(self, scalar):
        self.lo, self.hi = _fraction(scalar.low), _fraction(scalar.high)

    def value(self, y):
        y = numpy.clip(y, -700.0, 700.0)
        if self.lo is not None and self.hi is not None:
            return self.lo + (self.hi - self.lo) / (1.0 + numpy.exp(-y))
        if self.lo is not None:
            return self.lo + numpy.exp(y)
        if self.hi is not None:
            return self.hi - numpy.exp(y)
        return y

    def coordinate(self, v: float) -> float:
        if self.lo is not None and self.hi is not None:
            return math.log((v - self.lo) / (self.hi - v))
        if self.lo is not None:
            return math.log(v - self.lo)
        if self.hi is not None:
            return math.log(self.hi - v)
        return v

    def inside(self, v: float) -> bool:
        return (self.lo is None or v > self.lo) and (self.hi is None or v < self.hi)

    def allows(self, v: float) -> bool:
        return (self.lo is None or v >= self.lo) and (self.hi is None or v <= self.hi)


def start_value(scalar, domain: Domain) -> float:
    """torch's default where it is inside the domain, else the catalogue's typical value."""
    for text in (scalar.default, scalar.typical):
        v = float(Fraction(text))
        if domain.inside(v):
            return v
    return domain.value(0.0)


@lru_cache(maxsize=None)
def _inits(program, names: tuple) -> dict:
    symbols = [Y.hyper(n) for n in names]
    return {n: sp.lambdify(symbols, e, "numpy") for n, e in program.inits}


@lru_cache(maxsize=None)
def model_for(candidate: Candidate):
    """The candidate's Model, started at start_value() of each unknown (cached: the same
    candidates come back for every optimizer identified), or None where torch would not build
    it at those values."""
    start = {s.name: start_value(s, Domain(s)) for s in candidate.unknowns}
    try:
        return Model(candidate, start)
    except UserError:
        return None


class Model:
    """A candidate's generated step over the probes; `run(values)` -> theta (steps, P, N)."""

    def __init__(self, candidate: Candidate, start: dict):
        self.names = tuple(s.name for s in candidate.entry.scalars)
        at = {Y.hyper(n): sp.Rational(Fraction(repr(v))) for n, v in start.items()}
        spec = candidate.template.substitute(at)
        step = numpy_step(spec)
        rep = {n: float(v) for n, v in spec.hyper(numeric=True).items()}
        key, absent = step.program(None, **rep)
        program = cached_program(key, frozenset(), step.rule_for)
        self.inits = _inits(program, self.names)
        self.lazy, self.scalar_state = program.lazy, program.scalar_state
        self.state_names = program.state
        self.first = compiled_step(key, absent, step.rule_for)
        self.next = compiled_step(key, frozenset(), step.rule_for)
        self.batched = True

    def run(self, values: dict, probes: Probes) -> numpy.ndarray:
        """values: canonical name -> number or array (P,); theta after each step (steps, P, N)."""
        rows = max(numpy.size(v) for v in values.values())
        h = {n: numpy.reshape(numpy.asarray(values[n], dtype=float), (-1, 1))
             if numpy.size(values[n]) > 1 else numpy.float64(numpy.ravel(values[n])[0])
             for n in self.names}
        with warnings.catch_warnings(), numpy.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if self.batched:
                try:
                    return self._run(h, probes, rows)
                except (ValueError, TypeError):  # a branch on a scalar (RAdam's rho_t > 5)
                    self.batched = False
            out = [self._run({n: v if numpy.ndim(v) == 0 else numpy.float64(v[i, 0])
                              for n, v in h.items()}, probes, 1) for i in range(rows)]
            return numpy.concatenate(out, axis=1)

    def _run(self, h: dict, probes: Probes, rows: int) -> numpy.ndarray:
        shape = (rows, probes.theta0.size)
        theta = numpy.broadcast_to(probes.theta0, shape).copy()
        args = [h[n] for n in self.names]
        state = {}
        for name in self.state_names:
            if name in self.lazy:
                state[name] = None
                continue
            first = self.inits[name](*args)
            state[name] = first if name in self.scalar_state and numpy.ndim(first) == 0 \
                else numpy.broadcast_to(first, shape if name not in self.scalar_state
                                        else numpy.shape(first)).copy()
        out = numpy.empty((probes.steps,) + shape)
        fn = self.first
        for k, g in enumerate(probes.grads):
            state, theta = fn(state, theta, g, **h)
            theta = numpy.broadcast_to(theta, shape)
            out[k] = theta
            fn = self.next
        return out


@dataclass
class Fit:
    candidate: Candidate
    values: dict  # canonical name -> float, every scalar of the entry
    error: float  # max |model - observed| relative to each probe's scale
    exact: bool  # within the dtype's tolerance on every probe and step
    relative: float  # RMS error relative to each probe's own movement (for ranking: 1 for
    # an optimizer that does not move at all)
    direction: numpy.ndarray | None = None  # (model - observed) / movement, for nearest


class Observation:
    """What the optimizer did, with the scales the residuals are measured in."""

    def __init__(self, probes: Probes, thetas: numpy.ndarray, dtype):
        self.probes, self.thetas = probes, thetas
        finite = numpy.where(numpy.isfinite(thetas), thetas, 0.0)
        moved = numpy.abs(finite - probes.theta0).max(axis=0)
        self.scale = numpy.maximum(numpy.abs(finite).max(axis=0), numpy.abs(probes.theta0))
        # a fit reproduces the probes within this; the match itself is assert_matches_spec's,
        # at the dtype's own tolerance. Looser than that: the generated numpy step keeps
        # scalar state in float64 where torch keeps a float32 tensor (NAdam's mu_product, off
        # by 1e-8 relative from the first step)
        self.tol = max(tolerance(dtype), FIT_TOLERANCE)
        # movement below the fit's resolution of the value is rounding, not a signal; and a
        # probe that does not move (no decay at weight_decay 0) must not outweigh every other
        self.moved = numpy.maximum(moved, self.tol * numpy.maximum(self.scale, 1e-30))

    def residual(self, model_thetas: numpy.ndarray, by: numpy.ndarray) -> numpy.ndarray:
        """(steps, P, N) -> (P, steps*N): the difference in units of `by` per probe."""
        obs = self.thetas[:, None, :]
        diff = (model_thetas - obs) / by
        both = ~numpy.isfinite(model_thetas) & ~numpy.isfinite(obs)
        same = both & ((model_thetas == obs) | (numpy.isnan(model_thetas) & numpy.isnan(obs)))
        bad = ~numpy.isfinite(diff) & ~same
        diff = numpy.where(same, 0.0, numpy.where(bad, NONFINITE, diff))
        return numpy.moveaxis(diff, 1, 0).reshape(diff.shape[1], -1)

    def first(self, steps: int) -> "Observation":
        """The observation of the first `steps` steps only."""
        if steps >= self.probes.steps:
            return self
        short = Probes(self.probes.theta0, self.probes.grads[:steps])
        out = Observation.__new__(Observation)
        out.probes, out.thetas, out.tol = short, self.thetas[:steps], self.tol
        out.scale, out.moved = self.scale, self.moved
        return out

    def error(self, model_thetas) -> numpy.ndarray:
        return numpy.abs(self.residual(model_thetas, self.scale)).max(axis=1)


class Fitter:
    """One candidate's fit, improved in stages: a short run on the first probe steps prunes
    the candidates cheaply; the survivors go on over every step."""

    def __init__(self, candidate: Candidate, observation: Observation):
        self.candidate, self.observation = candidate, observation
        self.fixed = {n: float(v) for n, v in candidate.fixed}
        self.names = [s.name for s in candidate.unknowns]
        self.domains = {s.name: Domain(s) for s in candidate.unknowns}
        start = {s.name: start_value(s, self.domains[s.name]) for s in candidate.unknowns}
        self.y = numpy.array([self.domains[n].coordinate(start[n]) for n in self.names])
        self.model = model_for(candidate)
        self.relative = math.inf  # after the last improve(): RMS error relative to movement
        self.error = math.inf  # ... and the largest, relative to each probe's scale

    def values(self, Y_rows=None) -> dict:
        """{name: value} at the current fit, or {name: (P,) values} at coordinate rows."""
        rows = self.y[None, :] if Y_rows is None else Y_rows
        out = dict(self.fixed)
        out.update({n: self.domains[n].value(rows[:, i]) for i, n in enumerate(self.names)})
        if Y_rows is None:
            out = {n: float(numpy.ravel(v)[0]) for n, v in out.items()}
        return out

    def improve(self, steps: int, iterations: int) -> float:
        if self.model is None:
            return math.inf
        obs = self.observation.first(steps)

        def residual(Y_rows):
            return obs.residual(self.model.run(self.values(Y_rows), obs.probes), obs.moved)

        if self.names:
            self.y = _levenberg_marquardt(residual, self.y, iterations)
        thetas = self.model.run(self.values(self.y[None, :]), obs.probes)
        self.relative = _rms(obs.residual(thetas, obs.moved)[0])
        self.error = float(obs.error(thetas)[0])
        return self.relative

    def _costs(self, Y_rows) -> numpy.ndarray:
        obs = self.observation
        r = obs.residual(self.model.run(self.values(Y_rows), obs.probes), obs.moved)
        with numpy.errstate(all="ignore"):
            costs = numpy.einsum("ij,ij->i", r, r)
        return numpy.where(numpy.isfinite(costs), costs, numpy.inf)

    def flat(self) -> list:
        """The unknowns that act only through a sign or a comparison here (Lion's betas): a
        small change of one leaves almost every observation exactly as it was, so the solver
        has no slope to follow."""
        obs = self.observation
        rows = self.y[None, :] + numpy.diag(1e-6 * numpy.maximum(1.0, numpy.abs(self.y)))
        base = obs.residual(self.model.run(self.values(self.y[None, :]), obs.probes), 1.0)
        moved = obs.residual(self.model.run(self.values(numpy.vstack([rows])), obs.probes), 1.0)
        changed = (moved != base).mean(axis=1)
        return [i for i in range(len(self.names)) if changed[i] < 0.1]

    def scan(self) -> bool:
        """The best of a grid of short decimals for the unknowns that flat() names: jointly
        for one or two (two digits, then three near the best), else one at a time. Only where
        the model runs many values at once (else a grid costs a run per value)."""
        if self.model is None or not self.model.batched or not self.names:
            return False
        # bounded ones only (a rate in [0, 1)): a half-line's grid is long and its values act
        # through a slope in the catalogue's rules
        flat = [i for i in self.flat() if self.domains[self.names[i]].hi is not None
                and self.domains[self.names[i]].lo is not None]
        if not flat or not self.model.batched:
            return False
        best = before = float(self._costs(self.y[None, :])[0])
        groups = [flat] if len(flat) <= 2 else [[i] for i in flat]
        for group in groups:
            for digits in (1, 2, 3):
                axes = [[v for v in grid(self.domains[self.names[i]], digits,
                                         self.domains[self.names[i]].value(self.y[i]))
                         if self.domains[self.names[i]].inside(v)] for i in group]
                if not all(axes):
                    continue
                points = numpy.array(numpy.meshgrid(*axes, indexing="ij")).reshape(
                    len(group), -1).T
                rows = numpy.repeat(self.y[None, :], len(points), axis=0)
                for col, i in enumerate(group):
                    rows[:, i] = [self.domains[self.names[i]].coordinate(v)
                                  for v in points[:, col]]
                found = self._costs(rows)
                if not self.model.batched:  # found out on this run: no grids for it
                    return False
                j = int(numpy.argmin(found))
                if found[j] < best * (1 - 1e-9):
                    best, self.y = float(found[j]), rows[j]
        return best < before

    def finish(self) -> Fit:
        """Round the fit (shortest decimals that still reproduce every probe) and judge it."""
        if self.model is None:
            return Fit(self.candidate, self.values(), math.inf, False, math.inf)
        values = _rounded(self.model, self.observation, self.candidate, self.domains,
                          self.values())
        return _judged(self.model, self.observation, self.candidate, values)


def _judged(model, observation, candidate, values) -> Fit:
    thetas = model.run(values, observation.probes)
    error = float(observation.error(thetas)[0])
    direction = observation.residual(thetas, observation.moved)[0]
    return Fit(candidate, values, error, error <= observation.tol, _rms(direction), direction)


def _rms(r) -> float:
    with numpy.errstate(all="ignore"):
        value = float(numpy.sqrt(numpy.mean(numpy.square(r))))
    return value if math.isfinite(value) else math.inf


def _levenberg_marquardt(residual, y, iterations):
    with numpy.errstate(all="ignore"):  # a trial point may overflow: it is then refused
        return _lm(residual, y, iterations)


def _lm(residual, y, iterations):
    n = y.size
    r = residual(y[None, :])[0]
    cost = r @ r
    damping = 1e-3
    for _ in range(iterations):
        if cost < 1e-28:
            break
        # central differences, all 2n points in one run: forward ones (error O(h)) stall a
        # fit near 1e-8, short of float64's tolerance
        h = 1e-5 * numpy.maximum(1.0, numpy.abs(y))
        R = residual(numpy.vstack([y + numpy.diag(h), y - numpy.diag(h)]))
        J = ((R[:n] - R[n:]) / (2 * h[:, None])).T
        J = numpy.where(numpy.isfinite(J), J, 0.0)
        A, g = J.T @ J, J.T @ r
        scale = numpy.diag(A).copy()
        scale[scale <= 0] = 1e-12 * (scale.max() if scale.max() > 0 else 1.0)
        improved = False
        for _ in range(12):
            try:
                d = numpy.linalg.solve(A + damping * numpy.diag(scale), -g)
            except numpy.linalg.LinAlgError:
                damping *= 10
                continue
            # a bounded step: a rate pushed to 1 by one bold step has no slope left to return
            trial = y + numpy.clip(d, -MAX_STEP, MAX_STEP)
            rt = residual(trial[None, :])[0]
            ct = rt @ rt
            if numpy.isfinite(ct) and ct < cost:
                y, r, improved = trial, rt, True
                damping = max(damping / 5, 1e-12)
                done = cost - ct <= 1e-12 * cost
                cost = ct
                break
            damping *= 6
        if not improved or done:
            break
    return y


def grid(domain: Domain, digits: int = 1, near: float | None = None) -> list:
    """Short decimals across a domain: its fractions 0.1, 0.2, ... 0.9 and 0.95, 0.99, 0.995,
    0.999, 0.9999 (digits 1); with more digits, the fractions of that many digits within one
    step of the coarser grid around `near` (0.96, 0.97 near 0.95; then 0.965)."""
    if domain.lo is None or domain.hi is None:
        return []
    width = domain.hi - domain.lo
    if digits == 1 or near is None:
        fractions = [j / 10 for j in range(1, 10)] + [0.95, 0.99, 0.995, 0.999, 0.9999]
    else:
        step, f0 = 10.0 ** -digits, (near - domain.lo) / width
        fractions = [round(round(f0, digits) + k * step, digits) for k in range(-10, 11)]
    return [domain.lo + width * f for f in fractions if 0 < f < 1]


def _near(v: float, domain: Domain, digits: int) -> float:
    """v to `digits` significant digits, of its distance to the upper bound where that is the
    shorter (0.9988 -> 0.999 with one digit, not 1.0)."""
    if domain.hi is not None and domain.hi - v < abs(v):
        return domain.hi - float(f"{domain.hi - v:.{digits - 1}e}")
    return float(f"{v:.{digits - 1}e}")


def _jointly(model, observation, candidate, domains, values, limit, exact) -> dict:
    """Every unknown rounded at once, to 1, 2, ... 6 digits (torch's default where the fit is
    within 1% of it): correlated values (lr against betas in float32) fail one at a time."""
    names = [s.name for s in candidate.unknowns]
    if not names:
        return values
    rows = []
    for digits in range(1, 7):
        row = {}
        for s in candidate.unknowns:
            v, d = values[s.name], float(Fraction(s.default))
            row[s.name] = d if abs(v - d) <= 1e-2 * abs(d) else _near(v, domains[s.name], digits)
        rows.append(row)
    batch = {**values, **{n: numpy.array([r[n] for r in rows]) for n in names}}
    found = model.run(batch, observation.probes)
    with numpy.errstate(all="ignore"):
        errors = observation.error(found)
        rms = numpy.sqrt(numpy.mean(numpy.square(observation.residual(found, observation.moved)),
                                    axis=1))
    for row, error, r in zip(rows, errors, rms):
        # within the tolerance, even where the unrounded fit was not (a solver chasing a
        # float32 observation's rounding), or as good as the fit that misses
        if (error <= observation.tol or not exact and r <= limit) \
                and all(domains[n].allows(row[n]) for n in names):
            return {**values, **row}
    return values


def _refit(model, observation, domains, values: dict, free: list) -> dict:
    """`values` with the unknowns in `free` fitted again, the others held."""
    free = [n for n in free if domains[n].inside(values[n])]
    if not free:
        return values

    def residual(Y_rows):
        at = {**values, **{n: domains[n].value(Y_rows[:, i]) for i, n in enumerate(free)}}
        return observation.residual(model.run(at, observation.probes), observation.moved)

    y = _levenberg_marquardt(residual, numpy.array([domains[n].coordinate(values[n])
                                                    for n in free]), REFIT_ITERATIONS)
    return {**values, **{n: float(domains[n].value(y[i])) for i, n in enumerate(free)}}


def _short(v: float):
    """0, then v to 1, 2, ... 17 significant digits: the shortest decimals first."""
    yield 0.0
    for digits in range(1, 18):
        yield float(f"{v:.{digits - 1}e}")


def _rounded(model, observation, candidate, domains, values) -> dict:
    """Each unknown in turn: torch's default, then 0, then the shortest decimal, the first that
    reproduces the probes as well as the fit (within the tolerance, or twice the fit's own
    error where that is larger). The default first: a value the probes cannot see (ASGD's t0)
    stays where torch has it. Passes repeat while one changes something: a value rounded lets
    another round that could not before."""
    values = dict(values)
    thetas = model.run(values, observation.probes)
    error = float(observation.error(thetas)[0])
    # a fit that misses (the nearest, not a match) is rounded only where that costs it
    # nothing measurable: 1% of its RMS error
    exact = error <= observation.tol
    limit = max(observation.tol, 2 * error) if exact else \
        1.01 * _rms(observation.residual(thetas, observation.moved)[0])
    joint = _jointly(model, observation, candidate, domains, values, limit, exact)
    refit, values = joint == values, joint  # rounded at once: nothing left to follow
    error = float(observation.error(model.run(values, observation.probes))[0])
    if not exact and error <= observation.tol:
        exact, limit = True, observation.tol
    done = set()
    for _ in range(3):
        changed = False
        for scalar in candidate.unknowns:
            name = scalar.name
            if name in done:
                continue
            first = [float(Fraction(scalar.default))]
            tries = [v for v in dict.fromkeys(first + list(_short(values[name])))
                     if domains[name].allows(v)]
            rows = {**values, name: numpy.array(tries + [tries[0]])}  # two rows at least
            found = model.run(rows, observation.probes)
            with numpy.errstate(all="ignore"):
                errors = (observation.error(found) if exact else numpy.sqrt(numpy.mean(
                    numpy.square(observation.residual(found, observation.moved)), axis=1))
                    )[:len(tries)]
            within = numpy.nonzero(errors <= limit)[0]
            if within.size:
                values[name], changed = tries[int(within[0])], True
                done.add(name)
                if exact and refit:  # the others follow: fitted values are correlated
                    values = _refit(model, observation, domains, values,
                                    [s.name for s in candidate.unknowns if s.name not in done])
        if not changed:
            break
    return values


__all__ = ["Fit", "Fitter", "Model", "Observation"]
