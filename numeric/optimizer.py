"""`numeric.torch_optimizer(spec)`: a torch.optim.Optimizer whose step is generated from the
spec's symbolic rule.

    AdamW = numeric.torch_optimizer("adamw")
    opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)      # a drop-in for torch.optim.AdamW

The update arithmetic comes only from derive (program.py -> torch_codegen.py). What follows torch
is its machinery (behaviour, not code), which a drop-in must share: keyword names, positions and
defaults, param groups, hyperparameters re-read from param_groups at every step, `closure`, a
parameter whose grad is None skipped entirely (the spec's missing_grad=zeros steps it on a zero
gradient instead; step_counter=per_group / global takes each step count from the param group's
`step_count`, which every step() advances), lazily created per-parameter state under torch's
key names (so state_dict() and load_state_dict() round-trip, even with torch.optim's own).

Implementations (torch's keywords):
  - default (fused=None or False): a loop over parameters, each stepped by the step printed as
    in-place torch operations (torch_codegen.py): bit for bit torch's single-tensor loop on the
    CPU. foreach=True is accepted and runs the same loop (torch's foreach gives its loop's
    numbers bit for bit on the CPU).
  - fused=True: the same program printed as C (c_codegen.py), compiled once per program and
    machine (c_build.py), one call per param group (fused.py); within a few ulp of torch's loop,
    as torch's own fused kernels are. Every generated class accepts it: where torch's class has
    no `fused` (Adamax, NAdam, ...), it is an extra keyword-only argument after torch's own. Parameters the kernel cannot read (not dense CPU
    float32/float64) take the default path. Raises CompilerNotFound at construction when no C
    compiler exists. It is not the default: the default needs no compiler and no first-use
    compilation, and gives torch's loop's bits.
  - under torch.compile (of opt.step or of a training step holding it): the default path, with
    the step count and tensor hyperparameters kept as 0-d tensors in the graph, as torch's
    compiled loop keeps them, so that neither a new count nor a scheduler's tensor lr compiles
    again, and a switch on the count or other scalar state (RAdam's rho_t > 5, ASGD's mu == 1)
    picked per element rather than branched on (a graph break); the state is made in
    `_init_group`, which dynamo runs outside the graph.
"""
from __future__ import annotations

import inspect
from functools import lru_cache

import torch

from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import as_spec

from . import c_build
from .fused import fused_kernel
from .program import cached_program
from .structure import structure_key
from .validation import check_values
from .torch_codegen import compile_torch


@torch.compiler.disable  # building (SymPy, exec) runs once per program, never inside a graph
@lru_cache(maxsize=None)
def _kernel(key, absent, rule_for, traced=False):
    """The step of a program; traced: the one torch.compile traces (switches on the count or
    other scalar state picked per element, not branched on in Python: torch_source)."""
    return compile_torch(cached_program(key, absent, rule_for), traced)


def _defaults(spec) -> dict:
    """The constructor's defaults (the catalogue entry's signature): the spec's values."""
    h = {k: float(v) for k, v in spec.hyper(numeric=True).items()}
    entry = spec.entry
    out = {}
    for key in entry.positional + entry.keyword + entry.own_for(spec):
        if entry.has(key) and entry.hyper(key).follows and key not in spec.given:
            out[key] = None  # the constructor's or its group's lr (GeneratedOptimizer.__init__)
        elif entry.has(key):
            parts = tuple(h[s.name] for s in entry.hyper(key).scalars)
            out[key] = parts if entry.hyper(key).pair else parts[0]
        elif key == entry.decay_flag:
            out[key] = spec.decay == "decoupled"
        elif key in entry.flags:
            out[key] = spec.flag(key)
        else:
            out[key] = None if key in ("foreach", "fused") else False
    return out


def validate(spec, values: dict) -> None:
    """derive's checks (validation.check_values), then what only the torch optimizer has."""
    checks = spec.entry.torch_checks  # what only some torch constructors refuse (Adam's)
    if "tensor_lr_foreach" in checks:
        if isinstance(values.get("lr"), torch.Tensor) and values.get("foreach"):
            raise ValueError("lr as a Tensor is not supported for capturable=False and "
                             "foreach=True")
    check_values(spec, values)
    if "betas_type" in checks:  # after the range checks, as torch: an int or a bool is refused
        betas = tuple(values.get("betas", ()))
        if not any(all(isinstance(b, kind) for b in betas) for kind in (float, torch.Tensor)):
            raise ValueError("betas must be either both floats or both Tensors")
    if values.get("fused"):
        if values.get("foreach"):
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")  # torch's
        c_build.require_compiler()  # fail here, with one clear message, not at the first step


class GeneratedOptimizer(torch.optim.Optimizer):
    """Base of the classes torch_optimizer() makes; `spec` and `rule_for` are class attributes."""

    spec = None
    rule_for = staticmethod(build_rule)
    # the spec's missing-gradient keys, as plain class attributes: step() reads them before
    # torch.compile's _init_group, where a look into the class's __dict__ (as _reads makes)
    # would fix dynamo's view of it before _init_group adds the plans
    _zeros = False  # missing_grad=zeros
    _shared_count = False  # step_counter per_group or global
    __signature__ = None
    _plans: dict  # set per class by _plan: the group's switches -> _Plan

    def __init__(self, params, *args, **kwargs):
        bound = self.__signature__.bind(params, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        params = values.pop("params")
        follows = self._follows()
        for key, (lr, source) in follows.items():
            if values[key] is None and source == "constructor":  # timm's self.defaults['lr']
                values[key] = values[lr]
        validate(self.spec, {k: v for k, v in values.items() if k not in follows or v is not None})
        super().__init__(params, values)
        if self.spec.entry.eager_state:  # torch's Adagrad: every parameter's state, now
            with torch.no_grad():
                for group in self.param_groups:
                    plan = self._plan(group, self._hyper(group))
                    for p in group["params"]:
                        self._state(p, plan.shape, plan.keys, {})

    @classmethod
    def _follows(cls) -> dict:
        """optequiv's own keys that default to an lr: key -> (the lr's key, "group" or
        "constructor"), among those the spec's rule reads (catalogue Hyper.follows)."""
        entry = cls.spec.entry
        return {k: (entry.hyper(k).follows, entry.hyper(k).follows_from)
                for k in entry.own_for(cls.spec) if entry.hyper(k).follows}

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if (group.get("foreach") or group.get("fused")) \
                and len(set(map(id, group["params"]))) < len(group["params"]):
            self.param_groups.pop()
            raise UserError("a parameter listed twice in one group with foreach=True or "
                            "fused=True: torch's multi-tensor kernels step such a list in an "
                            "order of their own, which the generated optimizer does not "
                            "reproduce; list each parameter once, or use foreach=False")
        try:
            self._fill_follows(group)
        except UserError:
            self.param_groups.pop()
            raise
        counter = self.spec.choice("step_counter")
        if counter != "per_parameter":
            # the group's number of step() calls; under global a group added later joins at
            # the count the others reached (they are all equal: every step() advances each)
            start = max((g.get(GROUP_COUNT, 0) for g in self.param_groups[:-1]), default=0)
            group.setdefault(GROUP_COUNT, start if counter == "global" else 0)

    @classmethod
    def _fill_follows(cls, group: dict) -> dict:
        for key, (lr, _) in cls._follows().items():
            if group.get(key) is None:  # Composer: group['initial_lr'] = group['lr'], the key
                group[key] = group[lr]  # and value torch's LR schedulers take as their base lr
                if not float(group[key]) > 0:  # the spec language's domain and words
                    raise UserError(cls.spec.entry.hyper(key).message.format(
                        value=group[key]))
        return group

    def __reduce__(self):
        # the class is made at run time, so pickle (torch.save) cannot find it by name: the
        # copy rebuilds it from the spec, then torch's own __setstate__ restores the rest
        return (_unpickle, (str(self.spec), self.rule_for), self.__getstate__())

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                if key not in self.spec.entry.read_order:  # torch defaults switches, not numbers
                    group.setdefault(key, value)
            self._fill_follows(group)
        counts = self._count_keys()
        for p_state in self.state.values():
            for key in counts if p_state else ():
                p_state[key]  # torch's Adam: KeyError 'step' for another optimizer's state

    # -- which program a group runs now ----------------------------------------------------------
    @classmethod
    def _reads(cls) -> "_Reads":
        reads = cls.__dict__.get("_reads_cache")
        if reads is None:  # one per class: a subclass may change spec
            reads = cls._reads_cache = _Reads(cls.spec)
        return reads

    @classmethod
    def _hyper(cls, group) -> dict:
        """The group's values under the programs' canonical names, as Python floats (a tensor
        stays a tensor under torch.compile: see _number). (Once per group and step: a
        fused step of a tensor that sits in the cache is a few times this Python.)"""
        number = _number if torch.compiler.is_compiling() else float
        h = {}
        for key, names, pair in cls._reads().hypers:
            if key in group:
                if pair:
                    for name, v in zip(names, group[key]):
                        h[name] = number(v)
                else:
                    h[names[0]] = number(group[key])
        h.update(cls._reads().idle)
        return h

    @classmethod
    @torch.compiler.disable  # SymPy, once per structure: never inside a graph
    def _key(cls, group, h: dict):
        return structure_key(cls.spec, h=h,
                             flags={f: group.get(f, False) for f in cls.spec.entry.flags})

    @classmethod
    def _plan(cls, group, h: dict) -> "_Plan":
        """The group's program now, found from a tuple of booleans. (structure_key builds SymPy
        objects and the program caches hash them: after a large step has streamed through the
        CPU caches, that Python is slow enough to show in a step's time.)"""
        reads = cls._reads()
        for key in reads.read_order:
            group[key]  # a group of another optimizer's checkpoint: torch's KeyError, in its order
        switches = tuple([h.get(n, 0) != 0 for n in reads.switches]
                         + [bool(group.get(f, False)) for f in reads.flags])
        plans = cls.__dict__.get("_plans")
        if plans is None:  # one cache per class: a subclass may change spec or rule_for
            plans = cls._plans = {}
        plan = plans.get(switches)
        if plan is None:
            plan = plans[switches] = _Plan(cls._key(group, h), cls.rule_for)
        return plan

    def _state(self, p, program, keys, h) -> tuple:
        """(state, absent): torch's lazy state, created on a parameter's first step with a
        gradient (entries that start at 0 are made here, entries that start absent are made by
        the step), and the names of the entries still absent. keys: _keys(program.state)."""
        if not program.state:
            return {}, _NONE
        state = self.state[p]
        missing = [name for name, key in keys if key not in state]
        made = bool(state)  # torch makes the state on the first step only, then indexes it
        made_here = [name for name in missing if name not in program.lazy]
        if self.spec.entry.eager_state:  # the constructor's values, as torch's __init__
            h = self._hyper(self.defaults)
        first = _first_values(program, h) if made_here and not made else {}
        for name in missing:
            if name in program.lazy:
                continue
            key = program.key(name)
            if made:
                raise KeyError(key)  # e.g. amsgrad switched on after a step
            if name in program.scalar_state:
                state[key] = torch.tensor(first[name], dtype=_step_dtype())
            elif first[name] == 0:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
            else:
                state[key] = torch.full_like(p, first[name], memory_format=torch.preserve_format)
        if "step" in state and not isinstance(state["step"], torch.Tensor):
            state["step"] = torch.tensor(float(state["step"]), dtype=_step_dtype())
        return state, (frozenset(missing) & program.lazy if missing else _NONE)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # missing_grad=zeros: a parameter without a gradient steps on zeros, through every
            # path alike; its grad is None again afterwards, as the caller left it
            filled = [p for p in group["params"] if p.grad is None] if self._zeros else ()
            try:
                for p in filled:
                    p.grad = torch.zeros_like(p)
                if torch.compiler.is_compiling():
                    self._init_group(group)
                self._step_group(group)
            finally:
                for p in filled:
                    p.grad = None
        return loss

    def _step_group(self, group) -> None:
        h = self._hyper(group)
        plan = self._plan(group, h)
        if self._shared_count:  # step_counter per_group or global: one more step() call
            if GROUP_COUNT not in group:  # a checkpoint of torch's: the count its state reached
                group[GROUP_COUNT] = self._reached(group["params"])
            group[GROUP_COUNT] += 1
            self._set_counts(group, group["params"])
        params, fused, ready = group["params"], None, {}
        if group.get("fused"):  # the steady state: gathered fast, stepped in a few calls
            fused = plan.fused()
            ready, params = fused.gather(params, self.state)
        if params:  # the general path: in-place torch ops, so autograd must look away
            with torch.no_grad():
                self._step_params(params, plan, fused, h, group)
        for (dtype, step_dtype), batch in ready.items():
            fused.launch(dtype, step_dtype, batch, h)

    def _reached(self, params) -> int:
        keys = self._reads().count_keys
        return max((int(self.state[p][key]) for p in params for key in keys
                    if key in self.state.get(p, {})), default=0)

    def _set_counts(self, group, params) -> None:
        """step_counter per_group / global: each parameter about to step takes its count from
        the group (the step adds the 1: the count before this step), whatever steps it
        missed; one whose state is still to be made takes it when _step_params makes it."""
        keys = self._reads().count_keys
        before = group[GROUP_COUNT] - 1
        for p in params:
            state = self.state.get(p) if p.grad is not None else None
            for key in keys if state else ():
                if key in state:
                    state[key].fill_(before)

    def _init_group(self, group) -> None:
        """torch.compile's hook: dynamo runs an optimizer's `_init_group` eagerly, outside the
        graph, then marks every state tensor static (graph attributes, not inputs), as for
        torch.optim's own classes. The lazy state is made here, so that the graph only reads
        it and updates it in place, and CUDA graphs can replay it on the same storage."""
        h = self._hyper(group)
        plan = self._plan(group, h)
        for p in group["params"]:
            if p.grad is not None and not p.grad.is_sparse and not p.is_complex():
                state, absent = self._state(p, plan.shape, plan.keys, h)
                # built here, outside the graph: a kernel first built while tracing is a graph
                # break, and every parameter after it a frame of its own, guarded on the
                # parameter's identity (a recompilation per parameter up to dynamo's limit)
                plan.eager(absent, traced=True)
                if group.get("capturable"):  # dynamo sets it for CUDA parameters, as torch
                    for name in plan.shape.scalar_state:  # does: the count on the device,
                        key = plan.shape.key(name)  # for CUDA graphs
                        if key in state and state[key].device != p.device:
                            state[key] = state[key].to(p.device)

    def _step_params(self, params, plan, fused, h, group=None) -> None:
        """Lazy state, and each parameter through the eager step, or (fused) the kernel in
        batches that share the absent state, the dtype and the step count's dtype."""
        shape, keys, step_dtype = plan.shape, plan.keys, _step_dtype()
        batches, ready = {}, []
        for p in params:
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse:
                grad = self._sparse(grad, h, fused is not None)
            if p.is_complex():
                raise RuntimeError(f"{type(self).__name__} supports real parameters only "
                                   "(torch.optim steps a complex one as pairs of reals)")
            ready.append((p, grad, *self._state(p, shape, keys, h)))
        if group is not None and self._shared_count:  # the state made just now counts too
            self._set_counts(group, [p for p, *_ in ready])
        # every state is made (and what is absent noted) before any parameter steps, as torch's
        # _init_group does: a parameter listed twice finds its buffer absent both times
        for p, grad, state, absent in ready:
            if grad.is_sparse:  # "touched": the eager step on the coordinates it holds
                _step_touched(plan.eager(absent), p, grad, state, plan.shape, h)
                continue
            kind = None if fused is None else fused.batch_key(p, grad, state, step_dtype)
            if kind is None:
                plan.eager(absent)(p, grad, state, **h)
            else:
                batches.setdefault((absent, *kind), ([], []))
                batches[(absent, *kind)][0].append(p), batches[(absent, *kind)][1].append(state)
        for (absent, dtype, step_dtype), (params, states) in batches.items():
            plan.fused(absent).step(dtype, params, states, h, step_dtype)

    def _sparse(self, grad, h, fused: bool):
        """A sparse gradient as the entry says torch's step takes it (densified, or coalesced
        for _step_touched), or torch's RuntimeError where torch refuses it."""
        entry = self.spec.entry
        refused = next((words for key, words in entry.sparse_refused.items()
                        if (fused if key == "fused" else h.get(key, 0) != 0)), None)
        if entry.sparse is None or refused:
            raise RuntimeError(refused or entry.sparse_message.format(
                name=entry.class_name, cls=type(self).__name__))
        return grad.coalesce().to_dense() if entry.sparse == "dense" else grad.coalesce()

    @classmethod
    def _count_keys(cls) -> tuple:
        """torch's keys of the scalar state (the step count) of the class's program."""
        group = cls._fill_follows(_defaults(cls.spec))
        plan = cls._plan(group, cls._hyper(group))
        return tuple(key for name, key in plan.keys if name in plan.shape.scalar_state)

    # -- inspection --------------------------------------------------------------------------------
    @classmethod
    def source(cls, first_step: bool = False, fused: bool = False, traced: bool = False,
               **hyperparameters) -> str:
        """The generated step for the class defaults (or the values given): the first step of
        a parameter (lazy state being created) or a later one, as Python source, or with
        fused=True as the C source of the fused kernel (which builds it); traced=True: the
        Python step that torch.compile traces."""
        group = cls._fill_follows({**_defaults(cls.spec), **hyperparameters})
        h = cls._hyper(group)
        key = cls._key(group, h)
        shape = cached_program(key, frozenset(), cls.rule_for)
        absent = shape.lazy if first_step else frozenset()
        if fused:
            return fused_kernel(key, absent, cls.rule_for).source
        return _kernel(key, absent, cls.rule_for, traced).source


_NONE = frozenset()
# the param group's key for its step count under step_counter per_group or global (a group key,
# so that state_dict() and load_state_dict() carry it as they carry lr)
GROUP_COUNT = "step_count"


def _step_touched(kernel, p, grad, state, program, h) -> None:
    """One step on the coordinates a coalesced sparse gradient holds, as torch's Adagrad takes
    a sparse gradient (its state_sum.sparse_mask(grad)): those coordinates of the parameter and
    of each state tensor are gathered, stepped by the eager kernel, and written back; the
    per-parameter scalar state (the count) steps once, in place."""
    at = tuple(grad._indices())
    scalar = {program.key(name) for name in program.scalar_state}
    part = {key: v if key in scalar else v[at] for key, v in state.items()}
    theta = p[at]
    kernel(theta, grad._values(), part, **h)
    p[at] = theta
    for key, v in part.items():
        if key in scalar:
            state[key] = v
            continue
        if key not in state:  # made by this step (a lazy buffer): 0 where nothing touched it
            state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state[key][at] = v


@torch.compiler.disable  # SymPy: the state is made outside the graph (see _init_group)
def _first_values(program, h: dict) -> dict:
    """torch's first value of each state entry at the group's values (a tensor lr read once)."""
    return program.first_values({k: float(v) for k, v in h.items()})


def _number(value):
    """float(value), except a tensor (torch's tensor lr) under torch.compile: there float() is
    an .item(), a graph break and a recompilation whenever a scheduler changes the value; the
    generated step takes the 0-d tensor, as torch's loop does."""
    if isinstance(value, torch.Tensor) and torch.compiler.is_compiling():
        return value
    return float(value)


def _unpickle(text: str, rule_for):
    cls = torch_optimizer(text, rule_for=rule_for)
    return cls.__new__(cls)


class _Reads:
    """What a step reads from a group, from the entry once (its properties build tuples)."""

    __slots__ = ("hypers", "read_order", "switches", "flags", "idle", "count_keys")

    def __init__(self, spec):
        entry = spec.entry
        read = entry.positional + entry.keyword + entry.own_for(spec)
        self.hypers = tuple((hp.key, tuple(s.name for s in hp.scalars), hp.pair)
                            for hp in entry.hypers if hp.key in read)
        # optequiv's own keys that this spec's rule never reads (no keyword, no group key):
        # the programs take every scalar, so these stand at their value in the spec
        h = spec.hyper(numeric=True)
        self.idle = {s.name: float(h[s.name]) for hp in entry.hypers if hp.key not in read
                     for s in hp.scalars}
        self.read_order, self.switches = tuple(entry.read_order), tuple(entry.switches)
        self.flags = tuple(entry.flags)
        self.count_keys = tuple(entry.state(name).key for name in entry.counts)


class _Plan:
    """What a step needs for one structure: the key, the program, its state keys, and the
    kernels by absent state (made on first use; a fused one compiles)."""

    __slots__ = ("key", "rule_for", "shape", "keys", "kernels")

    @torch.compiler.disable
    def __init__(self, key, rule_for):
        self.key, self.rule_for = key, rule_for
        self.shape = cached_program(key, _NONE, rule_for)
        self.keys = tuple(zip(self.shape.state, self.shape.keys))
        self.kernels = {}

    def eager(self, absent=_NONE, traced=None):
        """The step as torch operations; traced (default: whether torch.compile is tracing
        now): the form for a graph."""
        traced = torch.compiler.is_compiling() if traced is None else traced
        k = self.kernels.get((False, absent, traced))
        if k is None:
            k = self.kernels[(False, absent, traced)] = _kernel(self.key, absent, self.rule_for,
                                                                 traced)
        return k

    def fused(self, absent=_NONE):
        k = self.kernels.get((True, absent))
        if k is None:
            k = self.kernels[(True, absent)] = fused_kernel(self.key, absent, self.rule_for)
        return k


def _step_dtype():
    # torch keeps the step count as a float32 CPU scalar, float64 under a float64 default dtype
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _signature(spec) -> inspect.Signature:
    defaults = _defaults(spec)
    P = inspect.Parameter
    params = [P("params", P.POSITIONAL_OR_KEYWORD)]
    params += [P(k, P.POSITIONAL_OR_KEYWORD, default=defaults[k]) for k in spec.entry.positional]
    params += [P(k, P.KEYWORD_ONLY, default=defaults[k]) for k in spec.entry.keyword]
    # optequiv's own keys (another framework's convention) after torch's, so that every torch
    # call binds as in torch
    params += [P(k, P.KEYWORD_ONLY, default=defaults[k]) for k in spec.entry.own_for(spec)]
    if "fused" not in spec.entry.positional + spec.entry.keyword:
        # optequiv's C kernel for every entry, where torch's class has no fused kernel (Rprop):
        # one keyword after torch's own, so that every torch call still binds as in torch
        params.append(P("fused", P.KEYWORD_ONLY, default=None))
    return inspect.Signature(params)


def torch_optimizer(spec, *, rule_for=build_rule) -> type:
    """A torch.optim.Optimizer subclass generated from `spec` (every value numeric; omitted ones
    take torch's defaults; the spec's values become the class's defaults). `rule_for` builds the
    rule for each structural spec (default derive.rules.build_rule; tests plant wrong rules)."""
    spec = as_spec(spec)
    signature = _signature(spec)  # spec.hyper(numeric=True) rejects a symbolic spec here
    name = "Generated" + spec.entry.class_name
    doc = (f"torch.optim.Optimizer generated from `{spec}` by optequiv (stages: "
           f"{', '.join(build_rule(spec).stage_names())}).\n\nSignature: {name}{signature}")
    return type(name, (GeneratedOptimizer,), {
        "spec": spec, "rule_for": staticmethod(rule_for), "__signature__": signature,
        "_zeros": spec.choice("missing_grad") == "zeros",
        "_shared_count": spec.choice("step_counter") != "per_parameter",

        "__doc__": doc, "__module__": __name__, "__qualname__": name})
