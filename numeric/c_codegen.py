"""C source for a Program: the whole step as one loop over elements, for many tensors at once.

    void optequiv_step_float(int64_t n, const int64_t *numel, void *const *ptr,
                             const double *hyper, int scalar_double, int threads);

ptr holds one data pointer per role for each tensor, tensor by tensor (`roles`: theta, grad,
the tensor state entries, then the scalar state entries, i.e. step counts, which are float or
double tensors as scalar_double says): the caller appends a parameter's pointers as it checks
them, one list, no transposition. hyper holds the hyperparameters in program.hyper's order.
(Few arguments: ctypes converts every argument on every call.)

One call steps n tensors (a param group's worth) in one OpenMP parallel region. The tensors,
laid end to end, are cut into one contiguous share per thread (`split_at`: cuts on 64-byte
boundaries, so no cache line is written by two threads); a thread walks the tensors of its
share, so a model of many small tensors costs each thread one loop start per tensor it touches,
not one per tensor (measured: 100 tensors of 1e4 elements, SGD's kernel 30% faster than with
every tensor split among the threads). Below GRAIN elements per thread fewer threads run
(handing work to a thread costs more than small work).
For each element the inputs are loaded into locals, the CSE temporaries and the outputs are
computed in registers, and every output is stored once: one pass over memory and no temporary
tensor, which is what makes the step as fast as the memory allows (a step is bandwidth-bound).

Numbers (why the results stay within a few ulp of torch.optim's loop):
  - element arithmetic is in the tensor's type (float for float32, as torch's CPU kernels do);
  - scalars (bias corrections, 1 - lr*wd) are computed per tensor in double from its own step
    count, the same formulas the eager printer evaluates in Python, then rounded to the type once;
  - a tensor times 1/d is a division by d (correctly rounded), as in torch_codegen;
  - terms with the same tensor part are combined first (theta*(1 - lr*wd), one rounding);
  - c*S + k*Y with c + k = 1 (S a state entry) is a lerp, as the eager printer's lerp_;
  - max/min propagate NaN (torch.maximum does; C's fmax does not);
  - no -ffast-math and no FMA contraction (c_build.BASE_FLAGS): IEEE sqrt and division, and
    the same bits whatever vector width the compiler picks.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.c import C99CodePrinter

from .printing import ScalarTable, reciprocal_of, split_add, split_term
from .program import GRAD, THETA, Program, branches

TYPES = ("float", "double")
GRAIN = 32768  # elements per thread below which a second thread costs more than it saves
ALIGN = 16  # thread boundaries fall on multiples of this many elements (64 bytes of float)


def function_name(ctype: str) -> str:
    return f"optequiv_step_{ctype}"


def tensor_roles(program: Program) -> tuple:
    """The kernel's pointer-array arguments, in order: theta, grad, then tensor state entries."""
    return ("theta", "grad") + tuple(n for n in program.state if n not in program.scalar_state)


def scalar_roles(program: Program) -> tuple:
    return tuple(n for n in program.state if n in program.scalar_state)


def roles(program: Program) -> tuple:
    """The blocks of the kernel's pointer array, in order."""
    return tensor_roles(program) + scalar_roles(program)


class _ScalarC(C99CodePrinter):
    """Scalars in double: the hyperparameters and a tensor's step count are named locals."""

    def __init__(self, names: dict):
        super().__init__()
        self.names = names

    def _print_Symbol(self, expr):
        return self.names.get(expr, expr.name)


class _Body:
    """Printer state for one element's arithmetic in type T (a C type name)."""

    def __init__(self, program: Program, ctype: str):
        self.p, self.T = program, ctype
        self.names = {THETA: "theta", GRAD: "grad"}
        for n in program.state:
            self.names[program.state_symbol(n)] = n
        for sym, _ in program.temps:
            self.names[sym] = sym.name
        for _, sym in program.stored:
            self.names[sym] = sym.name
        self.scalars = ScalarTable(program.is_scalar, self.names)
        self.used = {}  # scalar source text -> its name as a T local
        self.flags = {}  # a condition on scalars -> its name, an int computed once per tensor

    def flag(self, cond) -> str:
        return self.flags.setdefault(cond, f"f{len(self.flags)}")

    def condition(self, cond) -> str:
        """A condition as C: on scalars, a flag hoisted out of the element loop (RAdam's
        rho_t > 5, ASGD's mu == 1); on tensors, the comparison per element."""
        if self.p.is_scalar(cond):
            return self.flag(cond)
        if isinstance(cond, (sp.And, sp.Or)):
            joint = " && " if isinstance(cond, sp.And) else " || "
            return "(" + joint.join(self.condition(a) for a in cond.args) + ")"
        if isinstance(cond, sp.Not):
            return f"(!{self.condition(cond.args[0])})"
        if not isinstance(cond, sp.Rel):
            raise NotImplementedError(f"no C printer for the condition {cond}")
        return f"({self.expr(cond.lhs)} {cond.rel_op} {self.expr(cond.rhs)})"

    def piecewise(self, e) -> str:
        """Nested ternaries, the first branch whose condition holds: only it is evaluated."""
        otherwise, earlier = branches(e)
        out = self.expr(otherwise)
        for value, cond in earlier:
            out = f"({self.condition(cond)} ? {self.expr(value)} : {out})"
        return out

    def s(self, expr) -> str:
        """A scalar as a T value: a literal, or a local converted from double once per tensor."""
        expr = sp.sympify(expr)
        if expr.is_Number:
            return f"(({self.T}){float(expr)!r})"
        ref = self.scalars.ref(expr)
        return self.used.setdefault(ref, f"{ref}_")

    def expr(self, e) -> str:
        if self.p.is_scalar(e):
            return self.s(e)
        if isinstance(e, sp.Symbol):
            return self.names[e]
        if isinstance(e, sp.Add):
            return self.add(e)
        if isinstance(e, sp.Mul):
            return self.term(*split_term(e, self.p.is_scalar))
        if isinstance(e, sp.Pow):
            return self.power(e)
        if isinstance(e, sp.Piecewise):
            return self.piecewise(e)
        if isinstance(e, (sp.Max, sp.Min)):
            fn = f"opt_{'max' if isinstance(e, sp.Max) else 'min'}_{self.T}"
            out, *rest = [self.expr(a) for a in e.args]
            for x in rest:
                out = f"{fn}({out}, {x})"
            return out
        unary = {sp.Abs: "fabs", sp.exp: "exp", sp.log: "log", sp.sign: f"opt_sign_{self.T}"}
        if e.func in unary:
            return f"{unary[e.func]}({self.expr(e.args[0])})"
        raise NotImplementedError(f"no C printer for {e.func.__name__}: {e}")

    def add(self, e) -> str:
        constant, terms = split_add(e, self.p.is_scalar)
        if constant == 0 and len(terms) == 2:
            lerp = self.lerp(*terms) or self.lerp(*terms[::-1])
            if lerp:
                return lerp
        # terms with the same tensor part become one: theta - lr*wd*theta is theta*(1 - lr*wd)
        parts = {}
        for term in terms:
            coef, numer, denom = split_term(term, self.p.is_scalar)
            key = (tuple(numer), tuple(denom))
            parts[key] = parts.get(key, 0) + coef
        ordered = sorted(((k, c) for k, c in parts.items() if c != 0),
                         key=lambda kv: 0 if kv[1] == 1 else 1)  # stable: otherwise in order
        if not ordered:
            return self.s(constant)
        out = None
        for (numer, denom), coef in ordered:
            if out is not None and coef == -1:
                out = f"({out} - {self.term(1, list(numer), list(denom))})"
                continue
            text = self.term(coef, list(numer), list(denom))
            out = text if out is None else f"({out} + {text})"
        if constant != 0:
            out = f"({out} + {self.s(constant)})"
        return out

    def lerp(self, own, other):
        """c*S + k*Y with c + k = 1 and S a state entry is a lerp from S towards Y (with c - k = 1,
        towards -Y), as the eager printer writes it (X.lerp_(Y, k)): infinities then give what
        torch gives (with S = -inf and Y finite, S + k*(Y - S) is NaN; c*S + k*Y is -inf)."""
        c, numer, denom = split_term(own, self.p.is_scalar)
        k, target, below = split_term(other, self.p.is_scalar)
        states = {self.p.state_symbol(n) for n in self.p.state}
        if len(numer) != 1 or numer[0] not in states or denom or len(target) != 1 or below:
            return None
        y = self.expr(target[0])
        if sp.expand(c - k - 1) == 0:  # c*S - k'*Y, the maximize form: a lerp towards -Y
            y, k = f"(-{y})", -k
        elif sp.expand(c + k - 1) != 0:
            return None
        return f"opt_lerp_{self.T}({self.expr(numer[0])}, {y}, {self.s(k)}, {self.s(c)})"

    def factors(self, numer: list) -> list:
        """The factors of a product one by one, a positive integer power as repeated factors."""
        out = []
        for f in numer:
            if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp > 0:
                out += [self.expr(f.base)] * int(f.exp)
            else:
                out.append(self.expr(f))
        return out

    def term(self, coef, numer: list, denom: list) -> str:
        coef = sp.sympify(coef)
        factors = self.factors(numer)
        if coef not in (1, -1) and reciprocal_of(coef) is None and len(factors) > 1:
            # the coefficient first, as torch's addcmul(g, g, value=c) computes (c*g)*g:
            # g*g overflows float32 from |g| = 1.9e19 on, where (c*g)*g need not (Adam's v
            # with g = 1e20 and c = 1 - beta2 is 1e37, as in torch)
            out = f"({self.s(coef)} * {factors[0]})"
            for f in factors[1:]:
                out = f"({out} * {f})"
            for d in denom:
                out = f"({out} / {self.expr(d)})"
            return out
        out = " * ".join(self.expr(f) for f in numer) if numer else f"(({self.T})1)"
        if len(numer) > 1:
            out = f"({out})"
        for d in denom:
            out = f"({out} / {self.expr(d)})"
        if coef == 1:
            return out
        if coef == -1:
            return f"(-{out})"
        d = reciprocal_of(coef)
        return f"({out} / {self.s(d)})" if d is not None else f"({self.s(coef)} * {out})"

    def power(self, e) -> str:
        base, exp = e.args
        x = self.expr(base)
        if exp == sp.Rational(1, 2):
            return f"sqrt({x})"
        if exp == sp.Rational(-1, 2):
            return f"((({self.T})1) / sqrt({x}))"
        if exp.is_Integer and exp > 0:
            return "(" + " * ".join([x] * int(exp)) + ")"
        if exp.is_Integer and exp < 0:
            return f"((({self.T})1) / (" + " * ".join([x] * int(-exp)) + "))"
        return f"pow({x}, {self.s(exp)})"


def _helpers(T: str) -> str:
    # torch.maximum/minimum return NaN when either input is NaN; sign(NaN) is NaN; lerp from a
    # towards b by w (w1 = 1 - w): from the nearer end, so that w = 1 gives b exactly
    fn = f"static inline {T} opt_"
    return (f"{fn}lerp_{T}({T} a, {T} b, {T} w, {T} w1) "
            f"{{ return w < ({T})0.5 ? a + w * (b - a) : b - (b - a) * w1; }}\n"
            f"{fn}max_{T}({T} a, {T} b) {{ return (a > b || a != a) ? a : b; }}\n"
            f"{fn}min_{T}({T} a, {T} b) {{ return (a < b || a != a) ? a : b; }}\n"
            f"{fn}sign_{T}({T} a) {{ return a > 0 ? 1 : (a < 0 ? -1 : a); }}\n")


def _kernel(program: Program, T: str) -> str:
    body = _Body(program, T)
    tensors, scalars = tensor_roles(program), scalar_roles(program)
    element = []
    for sym, e in program.temps:
        element.append(f"const {T} {sym.name} = {body.expr(e)};")
    stores = []
    for name, e in program.outputs:
        if name not in program.scalar_state:
            stores.append(f"{name}_p[j] = {body.expr(e)};")
    used = set().union(*(e.free_symbols for _, e in program.temps + program.outputs))
    loads = [f"const {T} {body.names[s]} = {body.names[s]}_p[j];"
             for s in [THETA, GRAD] + [program.state_symbol(n) for n in tensors[2:]] if s in used]
    # the scalars: per tensor, in double, common subexpressions shared
    exprs = list(body.scalars.entries)
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("k")) if exprs else ([], [])
    cprint = _ScalarC(body.names)
    prologue = [f"const double {k} = {cprint.doprint(v)};" for k, v in temps]
    prologue += [f"const double {body.scalars.entries[e]} = {cprint.doprint(r)};"
                 for e, r in zip(exprs, reduced)]
    prologue += [f"const {T} {local} = ({T}){ref};" for ref, local in body.used.items()]
    prologue += [f"const int {name} = {cprint.doprint(cond)};" for cond, name in body.flags.items()]
    width = len(roles(program))
    block = {r: f"ptr[i * {width} + {k}]" for k, r in enumerate(roles(program))}
    reads = [f"const double {n} = "
             f"{'0' if n in program.absent else f'read_scalar({block[n]}, scalar_double)'};"
             for n in scalars]
    pointers = [f"{T} *restrict {r}_p = ({T} *){block[r]};" for r in tensors]
    stored = dict(program.stored)
    reads += _stored(program, cprint)
    # scalar state (the step count) is written after every thread has read it
    new_scalars = [f"write_scalar({block[n]}, scalar_double, "
                   f"{stored[n].name if n in stored else cprint.doprint(e)});"
                   for n, e in program.outputs if n in program.scalar_state]
    args = ["int64_t n", "const int64_t *numel", "void *const *ptr", "const double *hyper",
            "int scalar_double", "int threads"]
    ind = "\n" + " " * 16
    lines = [
        f"void {function_name(T)}({', '.join(args)}) {{",
        *[f"    const double {h} = hyper[{k}];" for k, h in enumerate(program.hyper)],
        "    int64_t total = 0;",
        "    for (int64_t i = 0; i < n; ++i) total += numel[i];",
        f"    if (threads > total / {GRAIN}) threads = (int)(total / {GRAIN});",
        "    if (threads < 1) threads = 1;",
        "    #pragma omp parallel for num_threads(threads) schedule(static, 1) if(threads > 1)",
        "    for (int part = 0; part < threads; ++part) {",
        "        const int64_t lo = split_at(n, numel, total, threads, part);",
        "        const int64_t hi = split_at(n, numel, total, threads, part + 1);",
        "        int64_t base = 0;",
        "        for (int64_t i = 0; i < n && base < hi; base += numel[i], ++i) {",
        "            const int64_t first = lo > base ? lo - base : 0;",
        "            const int64_t last = hi < base + numel[i] ? hi - base : numel[i];",
        "            if (first >= last) continue;",
        *["            " + x for x in reads + prologue + pointers],
        "            #pragma omp simd",
        "            for (int64_t j = first; j < last; ++j) {",
        "                " + ind.join(loads + element + stores),
        "            }",
        "        }",
        "    }",
    ]
    if new_scalars:
        lines += ["    for (int64_t i = 0; i < n; ++i) {",
                  *["        " + x for x in reads + new_scalars],
                  "    }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _stored(program: Program, cprint) -> list:
    """Scalar state that is not a count (NAdam's mu product), in the type it is stored in, as
    torch computes `mu_product *= mu` on its 0-d tensor (a float32 one: the factor rounded to
    float, then a float product); the step reads it back as stored."""
    out = []
    outputs = dict(program.outputs)
    for name, sym in program.stored:
        expr, old = outputs[name], program.state_symbol(name)
        if isinstance(expr, sp.Mul) and old in expr.args:
            x, rest = cprint.doprint(old), cprint.doprint(sp.Mul(*[a for a in expr.args
                                                                    if a != old]))
            value = f"scalar_double ? {x} * ({rest}) : (double)((float){x} * (float)({rest}))"
        else:
            value = f"scalar_double ? ({cprint.doprint(expr)}) : " \
                    f"(double)(float)({cprint.doprint(expr)})"
        out.append(f"const double {sym.name} = {value};")
    return out


def c_source(program: Program) -> str:
    """The C translation unit for `program`: a kernel per type in TYPES."""
    head = [f"/* optequiv fused step: {program.name}",
            f"   absent state: {', '.join(sorted(program.absent)) or 'none'}",
            "   generated from the rule's symbolic step (numeric/c_codegen.py); do not edit */",
            "#include <stdint.h>",
            "#include <tgmath.h>",
            "static inline double read_scalar(void *p, int is_double) {",
            "    return is_double ? *(double *)p : (double)*(float *)p;",
            "}",
            "static inline void write_scalar(void *p, int is_double, double x) {",
            "    if (is_double) *(double *)p = x; else *(float *)p = (float)x;",
            "}",
            "/* where part k of `parts` starts in the n tensors laid end to end: an even share,",
            f"   moved back to a multiple of {ALIGN} elements of its tensor, so that no cache line",
            "   is written by two threads */",
            "static int64_t split_at(int64_t n, const int64_t *numel, int64_t total, int parts,",
            "                        int k) {",
            "    if (k >= parts) return total;",
            "    const int64_t want = total * k / parts;",
            "    int64_t base = 0;",
            "    for (int64_t i = 0; i < n; base += numel[i], ++i)",
            f"        if (want < base + numel[i]) return base + (want - base) / {ALIGN} * {ALIGN};",
            "    return total;",
            "}"]
    return "\n".join(head) + "\n" + "".join(_helpers(T) + _kernel(program, T) for T in TYPES)
