"""Designed probes for identification: one parameter whose coordinates are the probes, each with
its own theta_0 and gradient sequence, given to the optimizer open loop.

An element-wise optimizer treats every coordinate on its own, so one vector parameter is many
one-coordinate experiments in one run. The designs are chosen so that every kind of
hyperparameter shows: a constant gradient from 0 (the step size), no gradient from theta_0 != 0
(the decay alone), gradients at scales from 1e-8 to 1e2 (eps against sqrt(v)), changing signs
and magnitudes (the moments' rates), and steps without gradient (zeros) in between. Nothing here
names an optimizer or a hyperparameter.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy
import torch


RANDOM = 16


@dataclass(frozen=True)
class Probes:
    theta0: numpy.ndarray  # (N,)
    grads: numpy.ndarray  # (steps, N)

    @property
    def steps(self) -> int:
        return self.grads.shape[0]


def design(steps: int, seed: int = 0) -> Probes:
    rng = numpy.random.default_rng(seed)
    k = numpy.arange(1, steps + 1, dtype=numpy.float64)
    columns = [
        (0.0, numpy.ones(steps)),  # the step size
        (1.0, numpy.zeros(steps)),  # the decay alone
        (2.0, numpy.full(steps, 0.5)),  # decay and a constant gradient
        (0.0, (-1.0) ** k * (1 + k / steps)),  # alternating signs, growing
        (-1.5, numpy.where(k % 3 == 0, 0.0, numpy.cos(k))),  # zeros in between
        (0.5, 3.0 * numpy.sin(0.7 * k) + 1.0),
    ]
    for scale in (1e-8, 1e-6, 1e-4, 1e-2, 1.0, 1e2):
        columns.append((float(rng.normal()), scale * rng.normal(size=steps)))
        columns.append((0.0, scale * numpy.abs(rng.normal(size=steps)) + scale / 2))
    # many random ones at one scale: a value seen only through a sign (Lion's betas) is
    # pinned by the sign flips it causes, to an interval that narrows with their number
    columns += [(float(rng.normal()), rng.normal(size=steps) + rng.normal())
                for _ in range(RANDOM)]
    theta0 = numpy.array([c[0] for c in columns])
    grads = numpy.stack([c[1] for c in columns], axis=1)
    return Probes(theta0, grads)


def observe(factory, probes: Probes, dtype) -> numpy.ndarray:
    """theta after each step, (steps, N) in float64, of `factory([param])` given the probes'
    gradients. The optimizer's exceptions propagate, with a note of the step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny problem: OpenMP start-up would dominate
    try:
        param = torch.nn.Parameter(torch.tensor(probes.theta0, dtype=dtype))
        opt = factory([param])
        out = numpy.empty(probes.grads.shape)
        for step, g in enumerate(probes.grads, 1):
            param.grad = torch.tensor(g, dtype=dtype)
            try:
                opt.step()
            except Exception as error:
                error.add_note(f"(raised by the optimizer under test at step {step} of the "
                               "identification probes)")
                raise
            out[step - 1] = param.detach().double().numpy()
        return out
    finally:
        torch.set_num_threads(threads)


__all__ = ["Probes", "design", "observe"]
