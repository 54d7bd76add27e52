"""numpy source for a Program: a pure function `(state, theta, grad, **hyper) -> (state, theta)`.

Inputs are never written to (state stays immutable, as in derive): every output is a new array.
"""
from __future__ import annotations

import math

import numpy
from sympy.printing.numpy import NumPyPrinter

from .printing import ScalarPrinter, ScalarTable, compile_source, hoist, switched
from .program import GRAD, THETA, Program, branches, split_cases


class _ArrayPrinter(NumPyPrinter):
    def __init__(self, names: dict):
        super().__init__({"fully_qualified_modules": True})
        self.names = names

    def _print_Symbol(self, expr):
        return self.names.get(expr, expr.name)

    def _print_Max(self, expr):  # elementwise and NaN-propagating, like torch.maximum
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"numpy.maximum({out}, {a})"
        return out

    def _print_Min(self, expr):
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"numpy.minimum({out}, {a})"
        return out

    def _print_Piecewise(self, expr):  # elementwise: the first branch whose condition holds
        otherwise, earlier = branches(expr)
        out = self._print(otherwise)
        for value, cond in earlier:
            out = f"numpy.where({self._print(cond)}, {self._print(value)}, {out})"
        return out


def numpy_source(program: Program, fname: str = "step") -> str:
    names = {THETA: "theta", GRAD: "grad"}
    names.update({program.state_symbol(n): f"{n}_0" for n in program.state})
    names.update({sym: f"{n}_new" for n, sym in program.stored})  # float64, as Python's floats
    inputs = {THETA, GRAD} | {program.state_symbol(n) for n in program.state}

    def plain(p: Program) -> list:
        table = ScalarTable(p.is_scalar, names)
        printer = _ArrayPrinter(names)
        kept = dict(p.stored)
        body = []
        for sym, expr in p.temps:
            body.append(f"{sym} = {printer.doprint(hoist(expr, table, p.is_scalar))}")
        results = []
        for name, expr in p.outputs:
            if name in kept:
                continue
            text = table.ref(expr) if p.is_scalar(expr) \
                else printer.doprint(hoist(expr, table, p.is_scalar))
            if expr in inputs:
                text = f"numpy.array({text}, copy=True)"  # an output never aliases an input
            results.append(f"{name}_new = {text}")
        return table.lines() + body + results

    reads = [f"{n}_0 = state[{n!r}]" for n in program.state if n not in program.absent]
    args = ", ".join(program.hyper)
    new_state = ", ".join(f"{n!r}: {n}_new" for n in program.state)
    lines = [f"def {fname}(state, theta, grad, {args}):",
             f'    """{program.name}; absent state: {sorted(program.absent) or "none"}"""']
    # the stored scalar state first, once: a switch's condition may read it
    outputs = dict(program.outputs)
    stored = [f"{n}_new = {ScalarPrinter(names).doprint(outputs[n])}" for n, _ in program.stored]
    steps = stored + switched(program, ScalarPrinter(names), plain, split_cases)
    lines += ["    " + line for line in reads + steps]
    lines.append(f"    return {{{new_state}}}, theta_new")
    return "\n".join(lines) + "\n"


def compile_numpy(program: Program):
    source = numpy_source(program)
    filename = f"<optequiv numpy {program.name} absent={sorted(program.absent)}>"
    fn = compile_source(source, "step", filename, {"numpy": numpy, "math": math})
    fn.source = source
    return fn


__all__ = ["numpy_source", "compile_numpy"]
