"""Sparse gradients (an Embedding(sparse=True)), for every catalogue entry with a torch class,
against that class: where torch refuses one, ours refuses it in torch's words; where torch steps
it (SGD, Adagrad), ours steps it to the same numbers and state. The configurations come from the
entry: torch's defaults, each hyperparameter at its typical value, each flag on.

Not bit for bit: torch's sparse path adds `alpha*values` into the parameter where its dense
kernels (and ours) fuse the multiply-add, so the runs differ by an ulp or so; RTOL allows that
and no more. The negative controls plant the two ways of getting the semantics wrong (densifying
where torch steps only the touched coordinates, and the reverse) and require the check to fail.
"""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from optequiv.derive.catalogue import ENTRIES
from optequiv.numeric import optimizer as O
from optequiv.numeric import torch_optimizer

RTOL = 1e-13  # relative to the largest value: a few float64 ulps of the sparse path's rounding
ROWS = ([0, 2, 2], [1, 2], [5], [2, 2, 0], [3, 1])  # row 4 is never touched; rows repeat


def torch_class(entry):
    return getattr(torch.optim, entry.torch_class.rpartition(".")[2])


def configs(entry) -> list:
    """torch's defaults, each hyperparameter at its typical value, each flag on, each
    implementation torch's signature names: (id, kwargs) pairs."""
    out = [("defaults", {})]
    for hyper in (h for h in entry.hypers if h.torch):  # torch's class takes torch's keys
        typical = [float(Fraction(s.typical)) for s in hyper.scalars]
        out.append((f"{hyper.key}", {hyper.key: tuple(typical) if hyper.pair else typical[0]}))
    out += [(flag, {flag: True}) for flag in entry.flags]
    out += [(impl, {impl: True}) for impl in ("foreach", "fused")
            if impl in entry.positional + entry.keyword]
    return out


CASES = [pytest.param(e, kw, id=f"{e.name}-{i}") for e in ENTRIES.values()
         if e.torch_class for i, kw in configs(e)]


def run(cls, kwargs, steps=len(ROWS)):
    """(weights, state) after the steps, or the RuntimeError's text: torch's constructor
    checks first (ValueError passes through, for the caller to compare)."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(6, 3, sparse=True).double()
    opt = cls(emb.parameters(), **kwargs)
    for rows in ROWS[:steps]:
        opt.zero_grad()
        emb(torch.tensor(rows)).pow(2).sum().backward()
        try:
            opt.step()
        except RuntimeError as err:
            return str(err)
    state = {k: v.to_dense() if v.is_sparse else v for k, v in opt.state[emb.weight].items()}
    return emb.weight.detach().clone(), state


def differences(theirs, ours) -> list:
    if isinstance(theirs, str) or isinstance(ours, str):
        return [] if theirs == ours else [f"torch: {theirs!r}; ours: {ours!r}"]
    (tw, ts), (ow, os_) = theirs, ours
    bad = [] if set(ts) == set(os_) else [f"state keys {sorted(ts)} vs {sorted(os_)}"]
    for name, a, b in [("weight", tw, ow)] + [(k, ts[k], os_[k]) for k in ts if k in os_]:
        a, b = a.double(), b.double()
        scale = max(a.abs().max().item(), 1.0)
        if a.shape != b.shape or not torch.allclose(a, b, rtol=0, atol=RTOL * scale):
            bad.append(f"{name}: torch {a.tolist()} ours {b.tolist()}")
    return bad


def outcome(cls, kwargs):
    try:
        return run(cls, kwargs)
    except ValueError as err:  # a constructor's refusal (nesterov without momentum, ...)
        return f"ValueError: {err}"


@pytest.mark.parametrize("entry, kwargs", CASES)
def test_sparse_gradient_as_torch(entry, kwargs):
    theirs = outcome(torch_class(entry), kwargs)
    ours = outcome(torch_optimizer(entry.name), kwargs)
    assert differences(theirs, ours) == []


def test_some_entry_steps_sparse_gradients():
    """The parametrisation above is not all refusals: torch steps sparse gradients for SGD and
    Adagrad (torch's `_single_tensor_*` sparse branches), and the catalogue says so."""
    stepping = [e.name for e in ENTRIES.values() if e.torch_class and
                not isinstance(outcome(torch_class(e), {}), str)]
    assert stepping and all(ENTRIES[n].sparse for n in stepping), stepping


def test_adagrad_eps_zero_leaves_untouched_rows_alone():
    """torch's Adagrad reads only the touched coordinates (sparse_mask): at eps = 0 a row that
    no gradient touched has sum 0, and the dense step would divide 0 by 0 there."""
    weights, _ = run(torch_optimizer("adagrad"), {"eps": 0.0})
    assert torch.isfinite(weights).all()


# -- negative controls: each planted semantics must be caught against torch ---------------------

@pytest.mark.parametrize("name, kwargs, plant", [
    ("adagrad", {"eps": 0.0}, "dense"),  # the 0/0 of a never-touched row
    ("adagrad", {"lr_decay": 0.5}, "lr_decay"),  # the touched rows stepped with another lr
    ("sgd", {"momentum": 0.9}, "touched"),  # an untouched row's buffer would not move it
])
def test_planted_sparse_semantics_is_caught(monkeypatch, name, kwargs, plant):
    cls = torch_optimizer(name)
    if plant == "lr_decay":
        original = O._step_touched

        def skewed(kernel, p, grad, state, program, h):
            original(kernel, p, grad, state, program, dict(h, lr_decay=h["lr_decay"] * 1.5))
        monkeypatch.setattr(O, "_step_touched", skewed)
    else:  # the other mode of the two, for this entry
        monkeypatch.setattr(O.GeneratedOptimizer, "_sparse", lambda self, grad, h, fused:
                            grad.coalesce().to_dense() if plant == "dense" else grad.coalesce())
    assert differences(outcome(torch_class(ENTRIES[name]), kwargs), outcome(cls, kwargs))
