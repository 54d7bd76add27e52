"""derive: SymPy models of optimizer update rules and the equivalence engine.

    parse_spec("sgd(lr=eta, momentum=mu, weight_decay=lam)")  -> Spec
    build_rule(spec)                                           -> Rule (ordered stages)
    unroll(spec, k, start="start"|"state", loop="open"|"closed")
    compare(A, B)                                              -> Comparison

This package never imports torch, numeric or proofs.
"""
from .compare import Comparison, compare
from .errors import UserError
from .rules import Rule, build_rule
from .spec import Spec, parse_spec
from .unroll import unroll

__all__ = ["Comparison", "Rule", "Spec", "UserError", "build_rule", "compare", "parse_spec",
           "unroll"]
