"""What the numpy and torch printers share: scalar hoisting, the shape of a term, compiling.

Scalars (expressions in hyperparameters and the step count only) are computed once per step as
Python floats, in double precision, before any tensor work: `lr/(1 - beta1**t)` is one number,
not a tensor operation per element. torch.optim computes its bias corrections the same way.
"""
from __future__ import annotations

import linecache

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter


class ScalarPrinter(PythonCodePrinter):
    """Python source for scalar expressions: floats, ** 0.5, plain operators."""

    def __init__(self, names: dict):
        super().__init__({"standard": "python3", "fully_qualified_modules": True})
        self.names = names

    def _print_Symbol(self, expr):
        return self.names.get(expr, expr.name)

    def _print_Rational(self, expr):
        return repr(int(expr)) if expr.q == 1 else repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        # torch computes bias_correction2 ** 0.5 (libm's pow), not math.sqrt: the two differ in
        # the last bit at some step counts (Adam's default betas: step 1270), and in float64 that
        # bit grows into visibly different training runs
        if expr.exp in (sp.Rational(1, 2), sp.Rational(-1, 2)):
            root = f"{self.parenthesize(expr.base, PRECEDENCE['Pow'])} ** 0.5"
            return root if expr.exp > 0 else f"(1 / {root})"
        return super()._print_Pow(expr, rational)

    def _print_Max(self, expr):
        return f"max({', '.join(self._print(a) for a in expr.args)})"

    def _print_Min(self, expr):
        return f"min({', '.join(self._print(a) for a in expr.args)})"


class ScalarTable:
    """Names for scalar expressions, each computed once; `lines()` prints their definitions with
    their own common subexpressions shared (t + 1 appears in both bias corrections)."""

    def __init__(self, is_scalar, names: dict):
        self.is_scalar = is_scalar
        self.names = names  # Symbol -> variable name for the scalar inputs (step count)
        self.entries: dict = {}  # expr -> Symbol c0, c1, ...

    def ref(self, expr: sp.Expr) -> str:
        """Source text for a scalar: a literal, an input name, or the name of a hoisted value."""
        expr = sp.sympify(expr)
        if expr.is_Number:
            return ScalarPrinter(self.names).doprint(expr)
        if isinstance(expr, sp.Symbol):
            return self.names.get(expr, expr.name)
        if expr not in self.entries:
            self.entries[expr] = sp.Symbol(f"c{len(self.entries)}")
        return self.entries[expr].name

    def lines(self) -> list:
        if not self.entries:
            return []
        # a conditional scalar is printed whole (a ... if c else ...): CSE would compute its
        # branches' pieces before the condition is tested, the one not taken included
        exprs = [e for e in self.entries if not e.has(sp.Piecewise)]
        temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("k")) if exprs else ([], [])
        printer = ScalarPrinter(self.names)
        out = [f"{s} = {printer.doprint(e)}" for s, e in temps]
        out += [f"{self.entries[e]} = {printer.doprint(r)}" for e, r in zip(exprs, reduced)]
        out += [f"{self.entries[e]} = {printer.doprint(e)}" for e in self.entries
                if e.has(sp.Piecewise)]
        return out


def switched(program, printer, plain, split) -> list:
    """The lines of a step: `plain(program)`, or, where the step switches on a scalar
    (program.split_cases), `if cond: ... elif ...: ... else: ...` with a step per branch;
    each condition printed whole by the scalar `printer`."""
    cases = split(program)
    if not cases:
        return plain(program)
    out = []
    for i, (cond, sub) in enumerate(cases):
        if cond is sp.true:
            out.append("else:")
        else:
            out.append(f"{'if' if i == 0 else 'elif'} {printer.doprint(cond)}:")
        out += ["    " + line for line in switched(sub, printer, plain, split) or ["pass"]]
    return out


def split_add(expr: sp.Expr, is_scalar) -> tuple:
    """(scalar part, tensor terms) of a sum."""
    scalar = [a for a in sp.Add.make_args(expr) if is_scalar(a)]
    tensor = [a for a in sp.Add.make_args(expr) if not is_scalar(a)]
    return sp.Add(*scalar), tensor


def split_term(term: sp.Expr, is_scalar) -> tuple:
    """(coefficient, numerator factors, denominator factors) of a product, with tensor factors
    spelled out: g**2 is [g, g] (one addcmul), x**-1 a denominator (one addcdiv)."""
    coef, numer, denom = [], [], []
    for f in sp.Mul.make_args(term):
        if is_scalar(f):
            coef.append(f)
        elif isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp > 0:
            numer += [f.base] * int(f.exp)
        elif isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp < 0:
            denom += [f.base] * int(-f.exp)
        else:
            numer.append(f)
    return sp.Mul(*coef), numer, denom


def reciprocal_of(coef: sp.Expr):
    """d when coef is 1/d (a division is correctly rounded; a multiply by a rounded reciprocal
    is not), else None."""
    if isinstance(coef, sp.Pow) and coef.exp.is_number and coef.exp < 0:
        return coef.base ** (-coef.exp)
    return None


def hoist(expr: sp.Expr, table: ScalarTable, is_scalar) -> sp.Expr:
    """`expr` with every maximal scalar sub-expression replaced by its hoisted name."""
    if expr in (sp.true, sp.false):
        return expr
    if is_scalar(expr):
        return sp.Symbol(table.ref(expr)) if not expr.is_Number else expr
    if isinstance(expr, (sp.Add, sp.Mul)):
        scalar = [a for a in expr.args if is_scalar(a)]
        tensor = [hoist(a, table, is_scalar) for a in expr.args if not is_scalar(a)]
        parts = tensor
        if scalar:
            parts = [hoist(expr.func(*scalar), table, is_scalar)] + tensor
        return expr.func(*parts, evaluate=False)
    if isinstance(expr, sp.Piecewise):  # its (value, condition) pairs, each part hoisted
        return sp.Piecewise(*[(hoist(e, table, is_scalar), hoist(c, table, is_scalar))
                              for e, c in expr.args], evaluate=False)
    if not expr.args:
        return expr
    return expr.func(*[hoist(a, table, is_scalar) for a in expr.args], evaluate=False)


def compile_source(source: str, fname: str, filename: str, namespace: dict):
    """exec generated source under a made-up file name registered with linecache, so that
    tracebacks and inspect.getsource show the generated lines."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    scope = dict(namespace)
    exec(compile(source, filename, "exec"), scope)
    return scope[fname]
