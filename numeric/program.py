"""A Rule's one-step map as a straight-line program: the code-generation IR of numeric/.

`rule.step` on symbols gives every output (each new state entry and the new theta) as one SymPy
expression. `build_program` turns them into

    temps    x_i = f(tensors, scalars)      common subexpressions found by sympy.cse
    outputs  name <- f(tensors, scalars)     new state entries in the rule's order, then theta

Tensors are theta, the gradient and the state entries; scalars are the hyperparameters and the step
count. Nothing here knows numpy or torch: the printers (numpy_codegen, torch_codegen) read a
Program, and a later foreach or fused printer would read the same one.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.rules import build_rule
from optequiv.derive.stages import Carry

THETA = Y.theta(0)
GRAD = Y.grad(1)


@dataclass(frozen=True)
class Program:
    name: str  # the structural spec, e.g. "adamw(amsgrad=true, ..., weight_decay=weight_decay)"
    hyper: tuple  # hyperparameter names, the generated function's keyword arguments
    state: tuple  # the rule's state names, in order
    absent: frozenset  # state names that do not exist before this step (torch's lazy buffer)
    lazy: frozenset  # state names that start absent (created by the first step), not at 0
    keys: tuple  # torch's state key of each state name, in the order of `state`
    scalar_state: frozenset  # state names that are one number per parameter (the step count)
    inits: tuple  # ((name, Expr of the hyperparameters), ...): torch's first value of each
    #               state entry that is not lazy (0; Adagrad's initial_accumulator_value)
    decay: str | None  # the decay convention when decay is switched on
    temps: tuple  # ((Symbol, Expr), ...) tensor-valued common subexpressions, in order
    outputs: tuple  # ((name, Expr), ...): state names, then "theta"
    scalars: frozenset  # symbols that are numbers at run time (hyperparameters, step count)
    # ((name, Symbol), ...): scalar state entries that are not counts (NAdam's mu product),
    # stored first, in their tensor's dtype; the other outputs read the Symbol, the value as
    # stored (rounded to float32 under torch's float32 scalar dtype), as torch reads its tensor
    stored: tuple = ()
    via_default_dtype: frozenset = frozenset()  # stored entries torch rounds to the default dtype

    def is_scalar(self, expr) -> bool:
        return expr.free_symbols <= self.scalars

    def state_symbol(self, name: str) -> sp.Symbol:
        return Y.state(name, 0)

    def key(self, name: str) -> str:
        return self.keys[self.state.index(name)]

    def first_values(self, h: dict) -> dict:
        """torch's first value of each entry that is not lazy, at the values `h` (canonical
        names -> numbers): 0 for moments, lr for Rprop's step sizes, 1 for NAdam's product."""
        at = {Y.hyper(k): sp.Float(v, 17) if isinstance(v, float) else v for k, v in h.items()
              if isinstance(v, (int, float))}
        return {n: float(e.xreplace(at)) for n, e in self.inits}


# -- rewrites: (decay convention, output name, expr) -> expr, applied to each output before CSE --

def _at_top(add: sp.Add, target: sp.Symbol) -> bool:
    return any(a == target or (isinstance(a, sp.Mul) and target in a.args) for a in add.args)


def _distribute_over(expr: sp.Expr, target: sp.Symbol) -> sp.Expr:
    """Expose `target` at the top of an Add: -lr*(u + wd*theta) + theta becomes
    -lr*u - lr*wd*theta + theta. Only Mul terms with an Add factor that holds `target` at its
    top level are distributed, one level deep, so the rest keeps its shape."""
    if not isinstance(expr, sp.Add):
        return expr
    terms = []
    for term in expr.args:
        if isinstance(term, sp.Mul) and any(isinstance(f, sp.Add) and _at_top(f, target)
                                            for f in term.args):
            terms.extend(sp.Add.make_args(sp.expand_mul(term, deep=False)))
        else:
            terms.append(term)
    return sp.Add(*terms)


def shrink_decoupled(decay: str | None, name: str, expr: sp.Expr) -> sp.Expr:
    """Decoupled decay is a shrink of theta_{t-1}: theta*(1 - lr*wd) - lr*u (REFERENCE.md). The
    rule adds wd*theta to the direction (one stage, moved); written as the shrink, the printers
    update theta in place with one multiply and no temporary."""
    if decay != "decoupled" or name != "theta":
        return expr
    return _distribute_over(expr, THETA)


def split_quotients(expr: sp.Expr, scalars: frozenset) -> sp.Expr:
    """A scaled sum of quotients, -lr*(a*g/d + b*m/d), as its terms -lr*a*g/d - lr*b*m/d: each
    one fused, correctly rounded addcdiv (torch's NAdam writes two), not a sum then a scale.
    Sums of plain tensors (SGD's g + mu*buf under Nesterov) keep their shape."""
    def quotient(term):
        return any(isinstance(f, sp.Pow) and f.exp.is_negative and not f.free_symbols <= scalars
                   for f in sp.Mul.make_args(term))

    if not isinstance(expr, sp.Add):
        return expr
    terms = []
    for term in expr.args:
        sums = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Add)
                and not f.free_symbols <= scalars and all(quotient(a) for a in f.args)]
        if isinstance(term, sp.Mul) and len(sums) == 1:
            rest = sp.Mul(*[f for f in term.args if f is not sums[0]])
            terms.extend(rest * a for a in sums[0].args)
        else:
            terms.append(term)
    return sp.Add(*terms)


REWRITES = (shrink_decoupled,)


# -- building ------------------------------------------------------------------------------------

def _scalar_symbols(hyper: tuple, scalar_state) -> frozenset:
    return frozenset({Y.hyper(name) for name in hyper} | {Y.state(n, 0) for n in scalar_state})


def _inline_scalar_temps(temps, outputs, scalars):
    """sympy.cse also names scalar pieces (t_0 + 1); the printers hoist scalars themselves, so
    scalar temps go back into the expressions that use them. So do conditions (g*prev < 0,
    named once for two switches): a printer writes a condition where a switch reads it; and
    reciprocals of tensors (1/d or lr/d, shared by g/d and m/d): a division is correctly
    rounded, a multiply by a rounded 1/d is not."""
    def reciprocal(expr):  # 1/d, or a scalar times 1/d
        return all(f.free_symbols <= scalars or (isinstance(f, sp.Pow) and f.exp == -1)
                   for f in sp.Mul.make_args(expr))

    subs, kept = {}, []
    for sym, expr in temps:
        expr = expr.xreplace(subs)
        if isinstance(expr, sp.logic.boolalg.Boolean):
            subs[sym] = expr
        elif not expr.free_symbols <= scalars and reciprocal(expr):
            # the denominator stays one temp, computed once: only the division moves into
            # each use (the new temp reuses the name of the reciprocal's)
            base = {f.base for f in sp.Mul.make_args(expr) if isinstance(f, sp.Pow)
                    and not f.free_symbols <= scalars}
            if len(base) == 1 and not next(iter(base)).is_Symbol:
                kept.append((sym, next(iter(base))))
                expr = expr.xreplace({next(iter(base)): sym})
            subs[sym] = expr
        elif expr.free_symbols <= scalars:
            subs[sym] = expr
        else:
            kept.append((sym, expr))
    return tuple(kept), tuple((n, e.xreplace(subs)) for n, e in outputs)


def build_program(structure, absent: frozenset = frozenset(), rule_for=build_rule) -> Program:
    """The program of one step of `structure` (a Spec whose values only switch features on or
    off), with the state entries in `absent` not yet created (they enter the step as None)."""
    rule = rule_for(structure)
    entry = structure.entry
    hyper = tuple(s.name for s in entry.scalars)
    state = {n: (None if n in absent else Y.state(n, 0)) for n in rule.state_names}
    h = {n: Y.hyper(n) for n in hyper}
    scalar_state = frozenset(n for n in rule.state_names if entry.state(n).scalar)
    # a count is exact in any float dtype; another scalar entry is rounded where it is stored
    rounded = [n for n in rule.state_names if n in scalar_state and n not in absent
               and not dict(entry.state(n).assumptions).get("integer")]
    new_state, new_theta, stored = _step_reading_back(rule, state, h, rounded)
    decay = structure.decay if structure.decay_on() else None
    outputs = [(n, stored[n][1] if n in stored else new_state[n]) for n in rule.state_names] \
        + [("theta", new_theta)]
    scalars = _scalar_symbols(hyper, scalar_state) | {sym for sym, _ in stored.values()}
    for rewrite in REWRITES:
        outputs = [(n, rewrite(decay, n, e)) for n, e in outputs]
    outputs = [(n, split_quotients(e, scalars)) for n, e in outputs]
    symbols = sp.numbered_symbols("x", real=True)
    temps, reduced = sp.cse([e for _, e in outputs], symbols=symbols)
    temps, outs = _inline_scalar_temps(temps, zip([n for n, _ in outputs], reduced), scalars)
    first = rule.initial_state("start", h)
    lazy = frozenset(n for n, v in first.items() if v is None)
    inits = tuple((n, v) for n, v in first.items() if v is not None)
    keys = tuple(entry.state(n).key for n in rule.state_names)
    return Program(str(structure), hyper, tuple(rule.state_names), frozenset(absent),
                   lazy, keys, scalar_state, inits, decay, temps, outs, scalars,
                   tuple((n, stored[n][0]) for n in _dependency_order(stored, rule.state_names)),
                   frozenset(n for n in stored if entry.state(n).via_default_dtype))


def _dependency_order(stored: dict, names: tuple) -> list:
    """The stored entries in an order where each comes after the stored values it reads (a
    rule may read ASGD's new mu before it computes eta), else in the rule's order."""
    order, pending = [], [n for n in names if n in stored]
    while pending:
        ready = [n for n in pending if not any(stored[m][0] in stored[n][1].free_symbols
                                               for m in pending if m != n)]
        order += ready or pending  # a cycle cannot be ordered: the rule's order
        pending = [n for n in pending if n not in order]
    return order


def _step_reading_back(rule, state: dict, h: dict, rounded: list) -> tuple:
    """rule.step, except that once a stage sets an entry of `rounded`, the stages after it read
    a symbol standing for the value as stored. Returns (state, theta, {name: (symbol, value in
    the step's inputs)}) for the entries a stage set."""
    carry = Carry(theta_prev=THETA, theta=THETA, u=GRAD, state=dict(state))
    stored = {}
    for stage in rule.stages:
        before = carry.state
        carry = stage.fn(carry, h)
        for n in rounded:
            if carry.state[n] is not before[n]:
                sym = sp.Symbol(f"{n}_stored", real=True)
                back = {sym: stored[n][1]} if n in stored else {}
                stored[n] = (sym, carry.state[n].xreplace(back))
                carry = carry.with_state(**{n: sym})
    return dict(carry.state), carry.theta, stored


# -- switches on scalars: a Piecewise whose conditions read only scalars ---------------------------

def _full_outputs(program: Program) -> list:
    subs = {}
    for sym, expr in program.temps:
        subs[sym] = expr.xreplace(subs)
    return [(n, e.xreplace(subs)) for n, e in program.outputs]


def _scalar_switch(program: Program, exprs, which=None) -> sp.Piecewise | None:
    """A Piecewise of tensors whose conditions are scalars (RAdam's rho_t > 5, ASGD's mu == 1),
    the first for which `which(node)` holds (any, by default)."""
    for e in exprs:
        for node in sp.preorder_traversal(e):
            if isinstance(node, sp.Piecewise) and not program.is_scalar(node) \
                    and all(program.is_scalar(c) for _, c in node.args) \
                    and (which is None or which(node)):
                return node
    return None


def on_state(program: Program, switch: sp.Piecewise) -> bool:
    """Whether a scalar switch reads scalar state (the count, ASGD's mu): under torch.compile
    that state is a 0-d tensor, so its condition is a tensor, not a Python bool."""
    state = {program.state_symbol(n) for n in program.scalar_state}
    state |= {sym for _, sym in program.stored}
    return any(c.free_symbols & state for _, c in switch.args)


def _branches(switch: sp.Piecewise, outputs: list):
    """(condition, outputs) for each branch of `switch`: its value put in, and in that branch
    its condition holding and the earlier ones failing, in every other switch too."""
    if switch.args[-1].cond is not sp.true:
        raise NotImplementedError(f"a switch with no branch for 'otherwise': {switch}")
    earlier = {}
    for value, cond in switch.args:
        truth = {**earlier, cond: sp.true} if cond is not sp.true else earlier
        yield cond, [(n, e.xreplace({switch: value}).xreplace(truth)) for n, e in outputs]
        earlier[cond] = sp.false
        if cond is sp.true:
            break


def _rebuilt(program: Program, outs: list) -> Program:
    """`program` with new outputs (full expressions): CSE again, scalar temps inlined."""
    temps, reduced = sp.cse([e for _, e in outs], symbols=sp.numbered_symbols("x", real=True))
    temps, outs = _inline_scalar_temps(temps, zip([n for n, _ in outs], reduced),
                                       program.scalars)
    return replace(program, temps=temps, outputs=outs)


def lift_state_switches(program: Program) -> Program:
    """The step with every switch on scalar state lifted to the top of each output it changes:
    output <- Piecewise((its value in the first branch, cond), ..., (otherwise, True)); outputs
    that every branch computes alike (RAdam's moments, the count) stay plain. A printer picks a
    branch's value per element (torch.where) instead of branching in Python on a tensor, which
    under torch.compile is a graph break (and RAdam's switch, flipping at step 6, a
    recompilation). Each branch keeps the temps of its own split_cases step (temps two branches
    share are computed once), so that its value is computed with the operations, and rounded
    as, the step of that branch alone."""
    cases = split_cases(program, lambda node: on_state(program, node))
    if not cases:
        return program
    names = sp.numbered_symbols("x", cls=sp.Dummy, real=True)  # apart from every branch's own
    temps, seen, branch_outputs, full = [], {}, [], []
    for cond, sub in cases:
        full.append([e for _, e in _full_outputs(sub)])
        sub = lift_state_switches(sub)
        rename = {}
        for sym, expr in sub.temps:
            expr = expr.xreplace(rename)
            if expr not in seen:
                seen[expr] = next(names)
                temps.append((seen[expr], expr))
            rename[sym] = seen[expr]
        branch_outputs.append([(n, e.xreplace(rename)) for n, e in sub.outputs])
    outputs = []
    for i, (name, _) in enumerate(program.outputs):
        values = [outs[i][1] for outs in branch_outputs]
        if all(f[i] == full[0][i] for f in full):  # the same value, however CSE split it
            outputs.append((name, values[0]))
        elif name in program.scalar_state:
            raise NotImplementedError(f"scalar state {name!r} that a switch on scalar state "
                                      "changes: no traced printer for it")
        else:
            outputs.append((name, sp.Piecewise(*[(v, cond) for (cond, _), v
                                                in zip(cases, values)])))
    return replace(program, temps=tuple(temps), outputs=tuple(outputs))


def split_host_cases(program: Program) -> tuple:
    """split_cases for the switches that read only hyperparameters (Python numbers even under
    torch.compile, where a tensor switch is lifted instead: lift_state_switches)."""
    return split_cases(program, lambda node: not on_state(program, node))


def branches(e: sp.Piecewise) -> tuple:
    """(the 'otherwise' value, [(value, condition)] from the last branch to the first): every
    printer folds a tensor switch this way, each earlier branch over the later ones, so that
    the first whose condition holds wins."""
    if e.args[-1].cond is not sp.true:
        raise NotImplementedError(f"a Piecewise with no branch for 'otherwise': {e}")
    return e.args[-1].expr, [(a.expr, a.cond) for a in reversed(e.args[:-1])]


def split_cases(program: Program, which=None) -> tuple:
    """((condition, Program), ...): the step under each branch of its first scalar switch, the
    branch's value put in and the rest built again (CSE, scalar temps inlined), so that a
    printer writes `if cond: <one step> elif ...: <another>` and computes only the scalars of
    the branch taken (RAdam's rectification divides by rho_inf - 4, zero at beta2 = 0.6, where
    torch never computes it). () when the step has no scalar switch. A branch's program may
    have switches of its own (split_cases again). which: the switches to split (all, by
    default; see split_host_cases)."""
    outputs = _full_outputs(program)
    switch = _scalar_switch(program, [e for _, e in outputs], which)
    if switch is None:
        return ()
    return tuple((cond, _rebuilt(program, outs)) for cond, outs in _branches(switch, outputs))


@lru_cache(maxsize=None)
def cached_program(structure, absent: frozenset, rule_for=build_rule) -> Program:
    """Programs are pure functions of the structure: one per (structure, absent state, rule);
    `structure` is numeric.structure.structure_key's Spec (a hashable value)."""
    return build_program(structure, absent, rule_for)
