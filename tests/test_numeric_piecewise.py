"""Piecewise steps through every printer: a switch on tensors (Rprop's sign of g*prev) is
torch.where / masked_fill_, numpy.where and a C ternary; a switch on scalars (RAdam's rho_t > 5,
ASGD's mu == 1) is an if/else around whole steps in Python and a hoisted flag in C.

The planted program below uses every form; each printer is checked against the program's own
expressions evaluated exactly (SymPy, rationals), which is independent of every printer, and a
planted bug (two branches swapped) shows that the check catches a wrong branch."""
from __future__ import annotations

from functools import lru_cache

import numpy
import pytest
import sympy as sp
import torch

from optequiv.derive import symbols as Y
from optequiv.numeric import c_build
from optequiv.numeric.c_codegen import c_source
from optequiv.numeric.fused import FusedKernel
from optequiv.numeric.numpy_codegen import compile_numpy
from optequiv.numeric.program import GRAD, THETA, Program, split_cases
from optequiv.numeric.torch_codegen import compile_torch

HAS_CC = pytest.mark.skipif(c_build.find_compiler() is None,
                            reason="no C compiler on this machine")
NAMES = ("lr", "beta1", "beta2", "eps", "weight_decay")
KEYS = {"t": "step", "m": "exp_avg", "v": "exp_avg_sq"}
P = sp.Piecewise


def _program(swap: bool = False) -> Program:
    t, m, v = (Y.state(n, 0) for n in ("t", "m", "v"))
    h = {n: Y.hyper(n) for n in NAMES}
    th, g = THETA, GRAD
    half = sp.Rational(1, 2)
    factor = P((h["beta1"] + 1, g * m > 0), (h["beta2"], g * m < 0), (1, True))  # on tensors
    # overlapping conditions (g > v >= 0 implies g > 0): the first that holds must win
    pairs = [(g, g > v), (2 * g, g > 0)]
    first = P(*(pairs[::-1] if swap else pairs), (0, True))
    # a switch on a scalar whose untaken branch divides by zero (beta2 = 1/2): never computed
    scaled = P((g / (2 * h["beta2"] - 1), h["beta2"] > half), (g, True))
    new_m = m * factor + first + scaled
    new_v = P((v + g**2, sp.Eq(t, 3)), (h["beta2"] * v + g**2, True))  # on the count: t == 3
    coef = P((h["weight_decay"], t > 1), (0, True))  # a conditional scalar factor
    new_theta = th - h["lr"] * new_m * P((1 / (sp.sqrt(new_v) + h["eps"]), t + 1 > 2),
                                         (1, True)) - coef * th
    outputs = (("t", t + 1), ("m", new_m), ("v", new_v), ("theta", new_theta))
    return Program("piecewise", NAMES, ("t", "m", "v"), frozenset(), frozenset(),
                   ("step", "exp_avg", "exp_avg_sq"), frozenset({"t"}),
                   (("t", sp.Integer(0)), ("m", sp.Integer(0)), ("v", sp.Integer(0))), None, (),
                   outputs, frozenset(h.values()) | {t})


def _start(n=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, generator=g, dtype=torch.float64)
    m = torch.randn(n, generator=g, dtype=torch.float64)
    v = torch.rand(n, generator=g, dtype=torch.float64)
    grads = [torch.randn(n, generator=g, dtype=torch.float64) for _ in range(4)]
    grads[1][:3] = 0.0  # g*m == 0: the third branch of the tensor switch
    return theta, m, v, grads


@lru_cache(maxsize=None)
def _exact_at(items: tuple):
    return _exact(_program(), dict(items))


def _exact(prog: Program, h: dict):
    """The program's expressions at exact rationals, element by element: the reference."""
    theta, m, v, grads = _start()
    exprs = dict(prog.outputs)
    hx = {Y.hyper(k): sp.Rational(x) for k, x in h.items()}
    cols = [[sp.Rational(float(a)) for a in x] for x in (theta, m, v)]
    t = sp.Integer(0)
    for g in grads:
        new = [[], [], []]
        for i in range(len(cols[0])):
            at = {**hx, THETA: cols[0][i], Y.state("m", 0): cols[1][i], Y.state("v", 0): cols[2][i],
                  Y.state("t", 0): t, GRAD: sp.Rational(float(g[i]))}
            for j, name in enumerate(("theta", "m", "v")):
                new[j].append(sp.nsimplify(sp.N(exprs[name].xreplace(at), 40), rational=True))
        cols, t = new, t + 1
    return [torch.tensor([float(x) for x in c], dtype=torch.float64) for c in cols]


def _torch(prog: Program, h: dict):
    theta, m, v, grads = _start()
    step, state = compile_torch(prog), {"step": torch.tensor(0.0, dtype=torch.float64),
                                        "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
    for g in grads:
        step(theta, g, state, **h)
    return [theta, state["exp_avg"], state["exp_avg_sq"]]


def _numpy(prog: Program, h: dict):
    theta, m, v, grads = (x.numpy() if isinstance(x, torch.Tensor) else x for x in _start())
    step, state = compile_numpy(prog), {"t": 0.0, "m": m, "v": v}
    for g in grads:
        state, theta = step(state, theta, g.numpy(), **h)
    return [torch.from_numpy(numpy.asarray(x)) for x in (theta, state["m"], state["v"])]


def _fused(prog: Program, h: dict):
    theta, m, v, grads = _start()
    state = {"step": torch.tensor(0.0), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
    kernel = FusedKernel(prog)
    for g in grads:
        theta.grad = g
        kernel.step(torch.float64, [theta], [state], h, torch.float32)
    return [theta, state["exp_avg"], state["exp_avg_sq"]]


H = [dict(lr=0.1, beta1=0.7, beta2=0.9, eps=1e-3, weight_decay=0.05),
     dict(lr=0.1, beta1=0.7, beta2=0.5, eps=1e-3, weight_decay=0.05)]  # 2*beta2 - 1 == 0


def _close(got, want) -> bool:
    return all(torch.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(got, want))


@pytest.mark.parametrize("h", H, ids=("beta2=0.9", "beta2=0.5"))
@pytest.mark.parametrize("printer", ["torch", "numpy", pytest.param("fused", marks=HAS_CC)])
def test_every_printer_matches_the_exact_piecewise_step(printer, h):
    run = {"torch": _torch, "numpy": _numpy, "fused": _fused}[printer]
    want = _exact_at(tuple(sorted(h.items())))
    assert _close(run(_program(), h), want)
    # negative control: two overlapping branches in the other order is caught
    assert not _close(run(_program(swap=True), h), want)


def test_the_printers_write_switches_as_where_if_and_ternaries():
    prog = _program()
    assert len(split_cases(prog)) == 2  # one scalar switch at a time, nested
    text = compile_torch(prog).source
    assert "masked_fill_(" in text and "if (beta2 > 0.5):" in text and "else:" in text
    assert "torch.gt(" in text and "torch.lt(" in text
    assert "numpy.where(" in compile_numpy(prog).source
    c = c_source(prog)
    assert " ? " in c and "const int f0 = " in c
