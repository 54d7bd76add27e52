"""fused=True: a param group's parameters stepped by one call of the program's compiled C kernel.

The kernel (c_codegen.py, built by c_build.py) takes arrays of data pointers, so a model of many
tensors is one call and one parallel region (torch's CPU fused kernels are one call too, with a
parallel loop per tensor). It reads raw memory, so only parameters whose every tensor is a
dense CPU array of one element type qualify (`batch_key`, and its inlined copy in `gather`, the
per-step hot loop); the optimizer runs the others through the eager printer, one tensor at a
time, as before. Step counts stay per parameter: the kernel reads each tensor's own count,
computes that tensor's scalars (bias corrections) from it, and writes the new count after the
loop. Writing through pointers bypasses autograd's version counters, so `launch` bumps them as
any in-place torch op would.
"""
from __future__ import annotations

import ctypes
from array import array
from functools import lru_cache

import torch

from . import c_build
from .c_codegen import TYPES, c_source, function_name, scalar_roles, tensor_roles
from .program import cached_program

DTYPES = dict(zip((torch.float32, torch.float64), TYPES))
_ADDRESS = ctypes.c_void_p


class FusedKernel:
    """One program's kernel (a C function per element type) and how to call it."""

    def __init__(self, program):
        self.program = program
        self.source = c_source(program)
        self.tensor_keys = tuple(program.key(n) for n in tensor_roles(program)[2:])
        self.scalar_keys = tuple(program.key(n) for n in scalar_roles(program))
        self.absent_tensors = tuple(program.key(n) for n in tensor_roles(program)[2:]
                                    if n in program.absent)
        self.absent_scalars = tuple(k for n, k in zip(scalar_roles(program), self.scalar_keys)
                                    if n in program.absent)
        lib = c_build.load(self.source)
        self.functions = {}
        arguments = [ctypes.c_int64, _ADDRESS, _ADDRESS, _ADDRESS, ctypes.c_int, ctypes.c_int]
        for dtype, ctype in DTYPES.items():
            fn = getattr(lib, function_name(ctype))
            fn.restype, fn.argtypes = None, arguments
            self.functions[dtype] = fn

    def batch_key(self, p: torch.Tensor, grad: torch.Tensor, state: dict, step_dtype):
        """None unless p, its gradient and its state are raw arrays the kernel can read; then
        (dtype, step count dtype), the two things a call must share; `step_dtype` is the one
        a step count created now gets. (Hot: once per parameter and step, so plain attribute
        tests, no helpers.)"""
        dtype = p.dtype
        if dtype not in DTYPES or not p.is_cpu or not p.is_contiguous():
            return None
        n = p.numel()
        if grad.dtype is not dtype or not grad.is_cpu or not grad.is_contiguous() \
                or grad.numel() != n:
            return None
        for key in self.tensor_keys:
            x = state.get(key)
            if x is not None and (x.dtype is not dtype or not x.is_cpu or not x.is_contiguous()
                                  or x.numel() != n):
                return None
        seen = None
        for key in self.scalar_keys:
            x = state.get(key)
            if x is not None:
                if not isinstance(x, torch.Tensor) or x.dtype not in DTYPES or not x.is_cpu \
                        or x.numel() != 1 or (seen is not None and x.dtype is not seen):
                    # scalar state of two dtypes (torch's load_state_dict casts NAdam's
                    # mu_product to the parameter's dtype, never the count): the eager step
                    return None
                step_dtype = seen = x.dtype
        return dtype, step_dtype

    def gather(self, params, opt_state) -> tuple:
        """The steady state, fast: ({(dtype, step dtype): Batch}, the other params).
        A parameter whose state is complete and whose tensors batch_key would accept goes in a
        batch here; one with a missing gradient is dropped; every other one (state still to be
        created, something the kernel cannot read) is returned for the optimizer's general
        path. This is most of a step's Python time, so the usual case (every tensor of one
        dtype, every state complete) is one loop that checks a parameter and appends its
        pointers, with no other allocation; anything else goes parameter by parameter."""
        uniform = self._uniform(params, opt_state)
        if uniform is not None:
            return uniform, []
        live = [p for p in params if p.grad is not None]
        return self._each(live, opt_state) if live else ({}, [])

    def _uniform(self, params, opt_state):
        """{(dtype, step dtype): Batch} when every parameter with a gradient qualifies and
        there is one, else None."""
        keys, scalar_keys, get = self.tensor_keys, self.scalar_keys, opt_state.get
        numels, pointers, written = [], [], []
        dtype = step_dtype = None
        for p in params:
            grad = p.grad
            if grad is None:
                continue
            if dtype is None:
                dtype = p.dtype
                if dtype not in DTYPES:
                    return None
            state, n = get(p), p.numel()
            if state is None or p.dtype is not dtype or grad.dtype is not dtype \
                    or not p.is_cpu or not grad.is_cpu or not p.is_contiguous() \
                    or not grad.is_contiguous() or grad.numel() != n:
                return None
            numels.append(n)
            pointers += (p.data_ptr(), grad.data_ptr())
            written.append(p)
            for key in keys:
                x = state.get(key)
                if x is None or x.dtype is not dtype or not x.is_cpu or not x.is_contiguous() \
                        or x.numel() != n:
                    return None
                pointers.append(x.data_ptr())
                written.append(x)
            for key in scalar_keys:
                x = state.get(key)
                if not isinstance(x, torch.Tensor) or not x.is_cpu or x.numel() != 1:
                    return None
                if x.dtype is not step_dtype:  # every scalar of one dtype: the kernel reads
                    if step_dtype is not None or x.dtype not in DTYPES:  # them all as one
                        return None
                    step_dtype = x.dtype
                pointers.append(x.data_ptr())
                written.append(x)
        if not numels:
            return None
        return {(dtype, step_dtype): Batch(numels, pointers, written)}

    def _each(self, params, opt_state) -> tuple:
        """gather, parameter by parameter: the tests of batch_key, inlined."""
        batches, slow = {}, []
        keys = self.tensor_keys
        scalar_keys = self.scalar_keys
        for p in params:
            grad = p.grad
            state = opt_state.get(p)
            dtype = p.dtype
            n = p.numel()
            if state is None or dtype not in DTYPES or not p.is_cpu or not p.is_contiguous() \
                    or grad.dtype is not dtype or not grad.is_cpu or not grad.is_contiguous() \
                    or grad.numel() != n:
                slow.append(p)
                continue
            tensors = [state.get(key) for key in keys]
            for x in tensors:
                if x is None or x.dtype is not dtype or not x.is_cpu or not x.is_contiguous() \
                        or x.numel() != n:
                    break
            else:
                step_dtype = None
                for key in scalar_keys:
                    x = state.get(key)
                    if not isinstance(x, torch.Tensor) or x.dtype not in DTYPES or not x.is_cpu \
                            or x.numel() != 1 or step_dtype not in (None, x.dtype):
                        break
                    step_dtype = x.dtype
                    tensors.append(x)
                else:
                    batch = batches.get((dtype, step_dtype))
                    if batch is None:
                        batch = batches[(dtype, step_dtype)] = Batch()
                    batch.add(n, p, grad, tensors)
                    continue
            slow.append(p)
        return batches, slow

    def step(self, dtype, params: list, states: list, hyper: dict, step_dtype) -> None:
        """One step of `params` (all of `dtype`, every one accepted by batch_key, the same
        state absent) with per-parameter state dicts `states`; scalar state of `step_dtype`."""
        batch = Batch()
        for p, state in zip(params, states):
            for key in self.absent_tensors:  # lazy state, written by the kernel
                state[key] = torch.empty_like(p, memory_format=torch.contiguous_format)
            for key in self.absent_scalars:
                state[key] = torch.zeros((), dtype=step_dtype)
            batch.add(p.numel(), p, p.grad, [state[k] for k in self.tensor_keys
                                             + self.scalar_keys])
        self.launch(dtype, step_dtype, batch, hyper)

    def launch(self, dtype, step_dtype, batch: "Batch", hyper: dict) -> None:
        """Call the kernel on a batch, then tell autograd that its tensors changed in place
        (as any in-place torch op does: a graph that saved a parameter then raises on backward
        instead of using the new values silently)."""
        values = array("d", [hyper[name] for name in self.program.hyper])
        fn, double = self.functions[dtype], step_dtype is torch.float64
        numels, pointers = batch.numels, batch.pointers
        width = len(pointers) // len(numels)
        if len(set(pointers[::width])) == len(numels):
            _call(fn, numels, pointers, values, double)
        else:  # a parameter listed twice (torch warns, deprecated): one after the other, as the
            for i, numel in enumerate(numels):  # loop does, not two threads racing
                _call(fn, [numel], pointers[i * width:(i + 1) * width], values, double)
        torch.autograd.graph.increment_version(batch.written)


def _call(fn, numels: list, pointers: list, values: array, double: bool) -> None:
    numels, pointers = array("q", numels), array("Q", pointers)
    fn(len(numels), numels.buffer_info()[0], pointers.buffer_info()[0], values.buffer_info()[0],
       double, torch.get_num_threads())


class Batch:
    """Tensors for one kernel call: element counts, data pointers in the kernel's order (per
    tensor, its roles in order: c_codegen.roles), and the tensors the call writes."""

    __slots__ = ("numels", "pointers", "written")

    def __init__(self, numels=None, pointers=None, written=None):
        self.numels = [] if numels is None else numels
        self.pointers = [] if pointers is None else pointers
        self.written = [] if written is None else written

    def add(self, numel: int, param, grad, state: list) -> None:
        """A parameter, its gradient, and its state tensors in role order."""
        self.numels.append(numel)
        self.pointers += [param.data_ptr(), grad.data_ptr(), *[t.data_ptr() for t in state]]
        self.written.append(param)
        self.written += state


@lru_cache(maxsize=None)
def fused_kernel(key, absent: frozenset, rule_for) -> FusedKernel:
    return FusedKernel(cached_program(key, absent, rule_for))
