"""torch source for a Program: one parameter's step as in-place tensor operations.

    def step(param, grad, state, *, lr, beta1, ...):   # state: torch's per-parameter dict

How an expression becomes operations (each choice saves memory, and each is also how one would
write the step by hand, so float32 results can match torch.optim's loop bit for bit):
  - an output X <- c*X + k*Y (Y a tensor already computed, c + k = 1) is one X.lerp_(Y, k);
  - an output X <- c*X + terms is X.mul_(c) then one fused update per term: add_(Y, alpha=k),
    addcmul_(Y, Z, value=k), addcdiv_(Y, Z, value=k); no temporary for X;
  - a sum starts from an unscaled term and adds the others with alpha=k;
  - a tensor times 1/d is a division by d (correctly rounded, unlike a multiply by 1/d);
  - scalar factors are computed once (printing.ScalarTable): Python floats in eager mode, as
    torch's loop computes them; under torch.compile the step count stays the 0-d tensor torch
    keeps it in, so the factors that depend on it are 0-d tensors (see `read_count`);
  - a temporary that is exactly a new state entry is computed in that entry's storage when the
    old value is not read afterwards; otherwise it is computed aside and copied at the end.
"""
from __future__ import annotations

import itertools
import math

import sympy as sp

from .printing import ScalarPrinter, ScalarTable, compile_source, reciprocal_of, split_add, \
    split_term, switched
from .program import GRAD, THETA, Program, branches, lift_state_switches, on_state, split_cases, \
    split_host_cases

_UNARY = {sp.Abs: "torch.abs", sp.sign: "torch.sign", sp.exp: "torch.exp", sp.log: "torch.log"}
_COMPARE = {sp.StrictGreaterThan: "gt", sp.GreaterThan: "ge", sp.StrictLessThan: "lt",
            sp.LessThan: "le", sp.Equality: "eq", sp.Unequality: "ne"}
_MIRROR = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "eq": "eq", "ne": "ne"}


class _Kernel:
    """Printer state for one program: emitted lines, variable names, scalar table."""

    def __init__(self, program: Program):
        self.p = program
        self.names = {THETA: "param", GRAD: "grad"}
        for n in program.state:
            self.names[program.state_symbol(n)] = n if n in program.scalar_state else program.key(n)
        for _, sym in program.stored:
            self.names[sym] = sym.name
        self.scalars = ScalarTable(program.is_scalar, self.names)
        self.lines = []
        self.counter = itertools.count()

    # -- helpers ---------------------------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append(line)

    def new(self, rhs: str) -> str:
        name = f"y{next(self.counter)}"
        self.emit(f"{name} = {rhs}")
        return name

    def s(self, expr) -> str:
        return self.scalars.ref(expr)

    def scale(self, var: str, fresh: bool, coef) -> tuple:
        """var * coef, in place when var is a fresh temporary."""
        coef = sp.sympify(coef)
        if coef == 1:
            return var, fresh
        if coef == -1:
            if not fresh:
                return self.new(f"torch.neg({var})"), True
            self.emit(f"{var}.neg_()")
            return var, True
        d = reciprocal_of(coef)
        op, arg = ("div", d) if d is not None else ("mul", coef)
        if fresh:
            self.emit(f"{var}.{op}_({self.s(arg)})")
            return var, True
        return self.new(f"torch.{op}({var}, {self.s(arg)})"), True

    # -- values: a tensor expression as a variable ------------------------------------------------
    def value(self, expr: sp.Expr) -> tuple:
        """(variable, fresh): fresh variables were made by this call and may be mutated."""
        if isinstance(expr, sp.Symbol):
            return self.names[expr], False
        if isinstance(expr, sp.Add):
            return self.value_add(expr)
        if isinstance(expr, sp.Mul):
            return self.value_mul(expr)
        if isinstance(expr, sp.Pow):
            return self.value_pow(expr)
        if isinstance(expr, (sp.Max, sp.Min)):
            return self.value_extremum(expr)
        if isinstance(expr, sp.Piecewise):
            if self.lifted(expr):  # a temp under a lifted switch
                return self.select(None, expr, None), True
            return self.value_piecewise(expr)
        if expr.func in _UNARY:
            x, _ = self.value(expr.args[0])
            return self.new(f"{_UNARY[expr.func]}({x})"), True
        raise NotImplementedError(f"no torch printer for {expr.func.__name__}: {expr}")

    def value_add(self, expr) -> tuple:
        constant, terms = split_add(expr, self.p.is_scalar)
        # an unscaled term first, so that every other term is one fused add with alpha; else a
        # scaled input (theta or a state entry): torch's in-place chains start from the tensor
        # they update (ASGD's param.mul_(1 - lambd*eta).add_(grad, alpha=-eta)), and add_ with
        # alpha is one fused multiply-add on the CPU, so the order decides the bits
        inputs = {THETA} | {self.p.state_symbol(n) for n in self.p.state}

        def rank(term):
            coef, numer, denom = split_term(term, self.p.is_scalar)
            if coef in (1, -1):
                return 0 if coef == 1 else 1
            return 2 if len(numer) == 1 and not denom and numer[0] in inputs else 3
        terms.sort(key=rank)
        acc, fresh = self.value(terms[0])
        for term in terms[1:]:
            acc, fresh = self.accumulate(acc, fresh, term)
        if constant != 0:
            if fresh:
                self.emit(f"{acc}.add_({self.s(constant)})")
            else:
                acc, fresh = self.new(f"torch.add({acc}, {self.s(constant)})"), True
        return acc, fresh

    def value_mul(self, expr) -> tuple:
        coef, numer, denom = split_term(expr, self.p.is_scalar)
        if numer:
            acc, fresh = self.value(numer[0])
            rest = [("mul", f) for f in numer[1:]]
        else:
            x, _ = self.value(denom[0])
            acc, fresh = self.new(f"torch.reciprocal({x})"), True
            denom = denom[1:]
            rest = []
        for op, f in rest + [("div", f) for f in denom]:
            y, _ = self.value(f)
            if fresh:
                self.emit(f"{acc}.{op}_({y})")
            else:
                acc, fresh = self.new(f"torch.{op}({acc}, {y})"), True
        return self.scale(acc, fresh, coef)

    def value_pow(self, expr) -> tuple:
        base, exp = expr.args
        x, _ = self.value(base)
        fn = {sp.Integer(2): "torch.square({})", sp.Rational(1, 2): "torch.sqrt({})",
              sp.Rational(-1, 2): "torch.rsqrt({})", sp.Integer(-1): "torch.reciprocal({})"}
        if exp in fn:
            return self.new(fn[exp].format(x)), True
        return self.new(f"torch.pow({x}, {self.s(exp)})"), True

    def value_extremum(self, expr) -> tuple:
        fn, clamp = ("torch.maximum", "clamp_min") if isinstance(expr, sp.Max) \
            else ("torch.minimum", "clamp_max")
        constant = [a for a in expr.args if self.p.is_scalar(a)]
        tensors = [self.value(a)[0] for a in expr.args if not self.p.is_scalar(a)]
        acc = tensors[0]
        for y in tensors[1:]:
            acc = self.new(f"{fn}({acc}, {y})")
        for c in constant:
            acc = self.new(f"torch.{clamp}({acc}, {self.s(c)})")
        return acc, acc != tensors[0]

    def value_piecewise(self, expr) -> tuple:
        """A switch on tensor conditions (a scalar one is an if/else: program.split_cases; under
        torch.compile, one on scalar state is lifted: select):
        the last value, then each earlier branch over it where its condition holds, from the
        last to the first, so the first that holds wins. A scalar value is filled in place
        (masked_fill_ rounds it to the tensor's type, as torch's `sign[sign > 0] = etaplus`)."""
        last, earlier = branches(expr)
        if self.p.is_scalar(last):
            acc, fresh = self.new(f"torch.empty_like(param).fill_({self.s(last)})"), True
        else:
            acc, fresh = self.value(last)
        for value, cond in earlier:
            mask = self.condition(cond)
            if self.p.is_scalar(value):
                if not fresh:
                    acc, fresh = self.new(f"{acc}.clone()"), True
                self.emit(f"{acc}.masked_fill_({mask}, {self.s(value)})")
            else:
                acc, fresh = self.new(f"torch.where({mask}, {self.value(value)[0]}, {acc})"), True
        return acc, fresh

    def condition(self, cond) -> str:
        """A boolean tensor for a condition on tensors (relationals, And, Or, Not)."""
        if isinstance(cond, (sp.And, sp.Or)):
            fn = "torch.logical_and" if isinstance(cond, sp.And) else "torch.logical_or"
            acc, *rest = [self.condition(a) for a in cond.args]
            for x in rest:
                acc = self.new(f"{fn}({acc}, {x})")
            return acc
        if isinstance(cond, sp.Not):
            return self.new(f"torch.logical_not({self.condition(cond.args[0])})")
        if type(cond) not in _COMPARE or self.p.is_scalar(cond):
            raise NotImplementedError(f"no torch printer for the condition {cond}")
        op, lhs, rhs = _COMPARE[type(cond)], cond.lhs, cond.rhs
        if self.p.is_scalar(lhs):
            op, lhs, rhs = _MIRROR[op], rhs, lhs
        other = self.s(rhs) if self.p.is_scalar(rhs) else self.value(rhs)[0]
        return self.new(f"torch.{op}({self.value(lhs)[0]}, {other})")

    # -- fused updates -----------------------------------------------------------------------------
    def operation(self, term) -> tuple:
        """(method, operand variables, keyword) adding `term` to a tensor in one fused call."""
        coef, numer, denom = split_term(term, self.p.is_scalar)
        if len(numer) == 2 and not denom:
            return "addcmul", [self.value(f)[0] for f in numer], "value", coef
        if len(numer) == 1 and len(denom) == 1:
            return "addcdiv", [self.value(numer[0])[0], self.value(denom[0])[0]], "value", coef
        tensor = sp.Mul(*numer) / sp.Mul(*denom)
        return "add", [self.value(tensor)[0]], "alpha", coef

    def apply(self, acc: str, fresh: bool, op: tuple) -> tuple:
        method, operands, keyword, coef = op
        args = ", ".join(operands)
        if coef == -1 and method == "add":
            method, coef = "sub", sp.Integer(1)
        if coef != 1:
            args += f", {keyword}={self.s(coef)}"
        if fresh:
            self.emit(f"{acc}.{method}_({args})")
            return acc, True
        return self.new(f"torch.{method}({acc}, {args})"), True

    def accumulate(self, acc: str, fresh: bool, term) -> tuple:
        return self.apply(acc, fresh, self.operation(term))

    # -- a switch on scalar state, lifted (program.lift_state_switches) ------------------------------
    def lifted(self, expr) -> bool:
        return isinstance(expr, sp.Piecewise) and not self.p.is_scalar(expr) \
            and all(self.p.is_scalar(c) for _, c in expr.args) and on_state(self.p, expr)

    def select(self, dest: str | None, expr: sp.Piecewise, old: sp.Symbol | None) -> str:
        """A variable holding dest's new value under a lifted switch: each branch's value
        computed with the operations its own step uses (into a copy of dest where the value
        updates dest), then torch.where on the condition (a 0-d tensor under torch.compile),
        so that every element is what the branch taken computes, with no Python `if`."""
        values = []
        for value, cond in expr.args:
            if self.lifted(value):
                var = self.select(dest, value, old)
            elif self.p.is_scalar(value):
                var = self.new(f"torch.full_like({dest or 'param'}, {self.s(value)})")
            elif old is not None and old in value.free_symbols:
                var = self.new(f"{dest}.clone()")
                self.into(var, value, old)
            else:
                var = self.value(value)[0]
            values.append((var, cond))
        acc = values[-1][0]
        printer = ScalarPrinter(self.names)
        for var, cond in reversed(values[:-1]):
            acc = self.new(f"torch.where({printer.doprint(cond)}, {var}, {acc})")
        return acc

    # -- writing an output into existing storage ----------------------------------------------------
    def into(self, dest: str, expr: sp.Expr, old: sp.Symbol) -> None:
        """dest <- expr, where dest holds `old`, without a temporary for dest."""
        if self.lifted(expr):
            self.emit(f"{dest}.copy_({self.select(dest, expr, old)})")
            return
        others = [a for a in expr.args if a != old]
        if isinstance(expr, (sp.Max, sp.Min)) and len(others) == 1 \
                and len(expr.args) == 2 and not self.p.is_scalar(others[0]):
            fn = "torch.maximum" if isinstance(expr, sp.Max) else "torch.minimum"
            self.emit(f"{fn}({dest}, {self.value(others[0])[0]}, out={dest})")
            return
        own, rest = [], []
        for term in sp.Add.make_args(expr):
            coef, numer, denom = split_term(term, self.p.is_scalar)
            (own if numer == [old] and not denom else rest).append((term, coef))
        if not own:
            x, _ = self.value(expr)
            self.emit(f"{dest}.copy_({x})")
            return
        c = sp.Add(*[coef for _, coef in own])
        if len(rest) == 1 and self.lerp(dest, c, rest[0][0]):
            return
        ops = [self.operation(term) for term, _ in rest if not self.p.is_scalar(term)]
        constant = sp.Add(*[term for term, _ in rest if self.p.is_scalar(term)])
        ops = [(m, [self.new(f"{dest}.clone()") if x == dest else x for x in xs], k, co)
               for m, xs, k, co in ops]  # operands are read before dest changes
        self.scale(dest, True, c)
        for op in ops:
            self.apply(dest, True, op)
        if constant != 0:
            self.emit(f"{dest}.add_({self.s(constant)})")

    def lerp(self, dest: str, c, term) -> bool:
        """c*X + k*Y with c + k = 1 is X.lerp_(Y, k); with c - k = 1, X.lerp_(-Y, -k)."""
        k, numer, denom = split_term(term, self.p.is_scalar)
        if len(numer) != 1 or denom or not isinstance(numer[0], sp.Symbol):
            return False
        y = self.names[numer[0]]
        if sp.expand(c + k - 1) == 0:
            self.emit(f"{dest}.lerp_({y}, {self.s(k)})")
            return True
        if sp.expand(c - k - 1) == 0:
            self.emit(f"{dest}.lerp_({self.new(f'torch.neg({y})')}, {self.s(-k)})")
            return True
        return False


def _bindings(program: Program) -> dict:
    """temp -> state name, for temps computed directly in that state entry's storage: the temp
    is exactly the entry's new value and the entry's old value is not read after it."""
    out = {}
    temps = [s for s, _ in program.temps]
    for name, expr in program.outputs:
        if name == "theta" or name in program.scalar_state or expr not in temps or expr in out:
            continue
        if sum(e == expr for _, e in program.outputs) != 1:
            continue
        old = program.state_symbol(name)
        at = temps.index(expr)
        later = [e for _, e in program.temps[at + 1:]] + [e for n, e in program.outputs]
        if name in program.absent or not any(old in e.free_symbols for e in later):
            out[expr] = name
    return out


def _steps(program: Program) -> list:
    """The lines of one step with no scalar switch: scalars, then tensor operations."""
    k = _Kernel(program)
    bound = _bindings(program)
    for sym, expr in program.temps:
        name = bound.get(sym)
        if name is None:
            k.names[sym] = k.value(expr)[0]
        elif name in program.absent:
            k.names[sym] = _create(k, name, expr)
        else:
            k.into(program.key(name), expr, program.state_symbol(name))
            k.names[sym] = program.key(name)
    stored = dict(program.stored)
    deferred = []
    outputs = [(n, e) for n, e in program.outputs if n != "theta" and n not in stored] + \
        [(n, e) for n, e in program.outputs if n == "theta"]
    for i, (name, expr) in enumerate(outputs):
        if name in program.scalar_state:
            # an item assignment, not fill_: under torch.compile, torch 2.13 drops in-place
            # methods (fill_, add_, copy_) on a 0-d float64 CPU tensor from the graph (the count
            # is one under a float64 default dtype: it stayed at 0); `[()] =` is kept
            k.emit(f"state[{program.key(name)!r}][()] = {k.s(expr)}")
        elif expr in bound:
            continue
        elif name != "theta" and name in program.absent:
            _create(k, name, expr)
        else:
            dest = "param" if name == "theta" else program.key(name)
            old = THETA if name == "theta" else program.state_symbol(name)
            if any(old in e.free_symbols for _, e in outputs[i + 1:]):  # old value needed below
                var = k.select(dest, expr, old) if k.lifted(expr) else k.value(expr)[0]
                deferred.append((dest, var))
            else:
                k.into(dest, expr, old)
    for dest, var in deferred:
        k.emit(f"{dest}.copy_({var})")
    return k.scalars.lines() + k.lines


def torch_source(program: Program, fname: str = "step", traced: bool = False) -> str:
    """The step's source; traced=True: the step run under torch.compile, where the switches on
    scalar state are lifted and picked per element (program.lift_state_switches)."""
    reads = []
    for n in program.state:
        if n in program.scalar_state:
            reads.append(f"{n} = read_count(state[{program.key(n)!r}])")
        elif n not in program.absent:
            reads.append(f"{program.key(n)} = state[{program.key(n)!r}]")
    hyper = ", ".join(program.hyper)
    lines = [f"def {fname}(param, grad, state, *, {hyper}):",
             f'    """{program.name}; absent state: {sorted(program.absent) or "none"}"""']
    # a switch on scalars (RAdam's rho_t > 5) is an if/else around whole steps: each branch
    # keeps its in-place operations and computes only its own scalars
    # the stored scalar state first, once: a switch's condition may read it (every branch
    # stores the same values)
    first = _Kernel(program)
    stored = _stored(first, dict(program.outputs))
    if traced:
        steps = stored + switched(program, ScalarPrinter(first.names),
                                  lambda sub: _steps(lift_state_switches(sub)), split_host_cases)
    else:
        steps = stored + switched(program, ScalarPrinter(first.names), _steps, split_cases)
    lines += ["    " + line for line in reads + steps]
    return "\n".join(lines) + "\n"


def _stored(k: _Kernel, outputs: dict) -> list:
    """Scalar state that is not a count (NAdam's mu product), first: computed on its 0-d tensor,
    in the tensor's dtype, as torch's `mu_product *= mu` (the factor a Python float, rounded to
    the tensor's dtype, then the product rounded); then read back for the rest of the step."""
    printer = ScalarPrinter(k.names)
    lines = []
    for name, sym in k.p.stored:
        key, expr, old = k.p.key(name), outputs[name], k.p.state_symbol(name)
        if isinstance(expr, sp.Mul) and old in expr.args:
            rest = sp.Mul(*[a for a in expr.args if a != old])
            lines.append(f"state[{key!r}][()] = state[{key!r}] * ({printer.doprint(rest)})")
        elif name in k.p.via_default_dtype:  # torch's eta.copy_(torch.as_tensor(new_eta))
            lines.append(f"state[{key!r}][()] = torch.as_tensor({printer.doprint(expr)})")
        else:
            lines.append(f"state[{key!r}][()] = {printer.doprint(expr)}")
        lines.append(f"{sym.name} = read_count(state[{key!r}])")
    return lines


def _create(k: _Kernel, name: str, expr) -> str:
    """A state entry made by this step (torch's lazy momentum buffer): its own new tensor."""
    x, fresh = k.value(expr)
    if not fresh:
        x = k.new(f"{x}.detach().clone()")
    key = k.p.key(name)
    k.emit(f"state[{key!r}] = {key} = {x}")
    return key


def read_count(step):
    """The step count as torch.optim's loop reads it (its `_get_value`): a Python float in eager
    mode, the 0-d tensor itself under torch.compile. Read as a float there, the count is a
    `.item()`: dynamo breaks the graph, then specialises the rest of the step on the count (one
    recompilation per step), and once the count turns into a dynamic float, inductor bakes the
    factors it cannot keep symbolic (addcdiv's value, fill_'s) in as constants from the step
    they were compiled at: from step 3 on AdamW's count stuck and its bias correction stale.
    The tensor is a copy: the step stores new values into the same 0-d tensor (ASGD's eta is
    stored before the parameter reads the old one), and a float read is a copy too."""
    import torch

    if torch.compiler.is_compiling():
        return step.clone()
    return float(step)


def compile_torch(program: Program, traced: bool = False):
    import torch

    source = torch_source(program, traced=traced)
    filename = f"<optequiv torch {program.name} absent={sorted(program.absent)}" \
        f"{' traced' if traced else ''}>"
    fn = compile_source(source, "step", filename,
                        {"torch": torch, "math": math, "read_count": read_count})
    fn.source = source
    return fn
