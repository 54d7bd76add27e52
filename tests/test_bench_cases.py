"""The optimizer benchmark's cases and its torch-ops reference for an entry torch has no class for
(no timing here: figures live in BENCHMARKS.md)."""
from __future__ import annotations

import math

import pytest
import torch

import exact_catalogue as C
from optequiv.benchmarks.cases import CASES, gpt2_shapes, representative
from optequiv.benchmarks.references import TorchOpsLion, torch_sides
from optequiv.derive.catalogue import ENTRIES
from optequiv.derive.spec import parse_spec


def test_every_entry_has_a_case_with_its_switches_on():
    assert set(CASES) == set(ENTRIES)
    for name, text in CASES.items():
        spec = parse_spec(text)
        assert spec.name == name
        values = spec.hyper(numeric=True)
        for switch in ENTRIES[name].switches:
            if switch in ENTRIES[name].own:  # another framework's key: torch's class is the
                assert values[switch] == 0, (text, switch)  # reference only at its default
                continue
            assert values[switch] != 0, (text, switch)  # the branch holding the most state
    assert CASES["sgd"] == "sgd(momentum=0.9, weight_decay=0.1)"  # torch's momentum is 0
    assert CASES["adamw"] == "adamw()"  # its default weight_decay is not 0 already


def test_representative_leaves_defaults_alone_without_switches():
    entry = ENTRIES["adam"]
    assert representative(entry) == "adam(weight_decay=0.1)"


def test_gpt2_small_shapes():
    shapes = gpt2_shapes()
    assert len(shapes) == 148
    assert sum(math.prod(s) for s in shapes) == 124_439_808  # GPT-2 small's published count
    assert shapes[0] == (50257, 768) and shapes[1] == (1024, 768)
    assert len(gpt2_shapes(quick=True)) == 148


def test_torch_sides_of_a_torch_class_are_its_implementations():
    params = lambda: [torch.nn.Parameter(torch.zeros(3))]  # noqa: E731
    opts, label = torch_sides(parse_spec(CASES["adam"]), params)
    assert label == "torch.optim.Adam"
    assert {n: o.defaults["foreach"] for n, o in opts.items() if n != "torch_fused"} \
        == {"torch_loop": False, "torch_foreach": True}
    assert opts["torch_fused"].defaults["fused"] is True


LION = [{"family": "lion", "lr": 0.01, "betas": (0.5, 0.9), "weight_decay": 0.1},
        {"family": "lion", "lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0}]


def _run_lion(config, foreach, swap=False):
    b1, b2 = config["betas"]
    if swap:  # planted bug: the two betas exchanged
        b1, b2 = b2, b1
    p = torch.nn.Parameter(torch.tensor([0.5, -1.25, 2.0, 0.0], dtype=torch.float64))
    opt = TorchOpsLion([p], lr=config["lr"], beta1=b1, beta2=b2,
                       weight_decay=config["weight_decay"], foreach=foreach)
    out = []
    for grad in GRADS:
        p.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        out.append((p.detach().tolist(), opt.state[p]["exp_avg"].tolist()))
    return out


GRADS = [[0.3, -0.2, 0.1, 0.0], [-0.5, -0.1, 0.2, 0.4], [0.05, 0.3, -0.6, -0.1]]


def _mismatches(ours, config):
    trace = C.simulate(config, [0.5, -1.25, 2.0, 0.0], GRADS, ops=C.FLOAT64)[1:]
    bad = []
    for k, ((theta, m), (want, state)) in enumerate(zip(ours, trace), 1):
        for got, exp in zip(theta + m, list(want) + list(state["exp_avg"])):
            if got != pytest.approx(float(exp), rel=1e-12, abs=1e-15):
                bad.append((k, got, float(exp)))
    return bad


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("config", LION)
def test_torch_ops_lion_is_the_paper_algorithm(config, foreach):
    """Against tests/exact_catalogue.py's Lion (written from the paper, independently)."""
    assert _mismatches(_run_lion(config, foreach), config) == []


@pytest.mark.parametrize("foreach", [False, True])
def test_torch_ops_lion_negative_control(foreach):
    assert _mismatches(_run_lion(LION[0], foreach, swap=True), LION[0]) != []
