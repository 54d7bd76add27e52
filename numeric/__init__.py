"""Numeric optimizers generated from derive's symbolic rules, and torch.optim cross-checks.

    numeric.numpy_step(spec)         a numpy step (state, theta, grad, **hyper) -> (state, theta)
    numeric.torch_optimizer(spec)    a torch.optim.Optimizer subclass, drop-in for torch's
                                     (fused=True: the step compiled from C, one call per group)
    numeric.crosscheck(spec, ...)    the generated optimizer against torch.optim, step by step
    numeric.testing.assert_matches_spec(factory, spec, ...)   for users' own CI
    numeric.testing.identify(factory, ...)   the specs an optimizer implements, or the nearest

How: program.py turns a rule's symbolic step into a straight-line program (sympy.cse);
numpy_codegen.py, torch_codegen.py and c_codegen.py print it (c_build.py compiles the C once per
machine, fused.py calls it); optimizer.py wraps the torch step or the C kernel in torch's
machinery; harness.py runs optimizers side by side on problems.py and measures with metrics.py.
`import numeric` needs numpy only; the torch parts import torch when first used.
"""
from importlib import import_module

from .numpy_optimizer import numpy_step

_LAZY = {"torch_optimizer": ("optimizer", "torch_optimizer"),
         "crosscheck": ("against_torch", "crosscheck"),
         "testing": ("testing", None)}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'numeric' has no attribute {name!r}")
    module, attr = _LAZY[name]
    loaded = import_module(f".{module}", __name__)
    return loaded if attr is None else getattr(loaded, attr)


__all__ = ["numpy_step", "torch_optimizer", "crosscheck", "testing"]
