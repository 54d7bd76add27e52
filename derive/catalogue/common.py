"""Hyperparameters that many torch classes share, with torch's words; each entry picks its own
default (torch's lr is 1e-3 for Adam, 1e-2 for RMSprop, 1.0 for Adadelta)."""
from __future__ import annotations

from .base import Hyper, Scalar

MAXIMIZE = {"maximize": False}


def lr(default: str) -> Hyper:
    return Hyper("lr", (Scalar("lr", default, r"\gamma", "γ", "learning rate (torch's `lr`)",
                               "1/10"),), "Invalid learning rate: {value}")


def weight_decay(default: str) -> Hyper:
    return Hyper("weight_decay", (Scalar(
        "weight_decay", default, r"\lambda", "λ",
        "weight-decay coefficient (torch's `weight_decay`)", "1/10"),),
        "Invalid weight_decay value: {value}")


def eps(default: str) -> Hyper:
    return Hyper("eps", (Scalar("eps", default, r"\epsilon", "ε",
                                "term added to the denominator (`eps`)", "1/100000000"),),
                 "Invalid epsilon value: {value}")


def betas(first: str, second: str) -> Hyper:
    return Hyper("betas", (
        Scalar("beta1", first, r"\beta_1", "β₁", "decay rate of the first moment (`betas[0]`)",
               "9/10", high="1", high_strict=True),
        Scalar("beta2", second, r"\beta_2", "β₂",
               "decay rate of the second moment (`betas[1]`)", "999/1000", high="1",
               high_strict=True)),
        "Invalid beta parameter at index {index}: {value}")
