"""Every generated optimizer against torch.optim over torch's own test configurations (optim_db):
every catalogue entry with a torch class, every configuration torch's tests construct it with,
every implementation both have (torch's loop against ours by default, foreach against foreach,
fused against fused), float64, every parameter and every state entry compared after every step
(numeric.optim_db). New entries are picked up from the catalogue with no change here.

Configurations the generated optimizer refuses on purpose (capturable=True, differentiable=True)
are skipped with its message, after checking that it does refuse them. Negative controls plant
bugs through rule_for= (the step scaled by 1 + 1e-6; each state entry's update perturbed by
1e-6 relative) and show the same cross-check catches each one, naming the right tensor. float32
is compared with torch's CPU loop in ulp (the figures are in `optequiv bench`). The CUDA variants
run the same checks on "cuda", and skip with the reason where there is no GPU.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import pytest
import sympy as sp
import torch

from optequiv.derive.errors import UserError
from optequiv.derive.rules import build_rule
from optequiv.derive.stages import Stage
from optequiv.numeric import optim_db as D
from optequiv.numeric.metrics import tolerance
from optequiv.numeric.optimizer import torch_optimizer

CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="CUDA is not available (torch.cuda.is_available() is False)")
DEVICES = ("cpu", "cuda")
ENTRIES = D.entries()


def _marks(device):
    return (CUDA,) if device == "cuda" else ()


def _id(*parts) -> str:
    return "-".join(re.sub(r"[^\w.]+", "_", str(p)).strip("_") for p in parts)


def configurations():
    out = []
    for device in DEVICES:
        for entry in ENTRIES:
            for optim_input in D.inputs(entry, device):
                pairs = D.pairs(entry, device)
                # a configuration refused on purpose is refused whatever the implementation
                for impl, theirs in pairs[:1] if D.refused(optim_input.kwargs) else pairs:
                    out.append(pytest.param(entry, optim_input, impl, theirs, device,
                                            marks=_marks(device),
                                            id=_id(device, entry.name, optim_input.desc,
                                                   impl if impl == theirs else f"{impl}_vs_{theirs}")))
    return out


def _refuses(entry, optim_input, why, device) -> None:
    """The generated optimizer does refuse the configuration, with the message given."""
    p = torch.nn.Parameter(torch.zeros(2, device=device))
    with pytest.raises(UserError, match=re.escape(why)):
        torch_optimizer(entry.name)([p], **optim_input.kwargs)


def agreeing(entry, optim_input, impl, device, **kw):
    """The comparison over the whole run; where torch's own implementation raised part way (its
    fused SGD on a parameter whose first gradient comes late), the part it ran must agree, and
    the run is repeated with every parameter stepped from the first step."""
    comparison = D.check(entry, optim_input, impl, device=device, **kw)
    if comparison.raised:
        assert comparison.agree, f"before torch raised: {comparison.first_mismatch}"
        assert comparison.steps >= 1
        comparison = D.check(entry, optim_input, impl, device=device,
                             scenario=replace(D.SCENARIO, late_from=1), **kw)
    return comparison


@pytest.mark.parametrize("entry, optim_input, impl, theirs, device", configurations())
def test_generated_optimizer_matches_torch_on_its_own_test_configurations(entry, optim_input,
                                                                        impl, theirs, device):
    why = D.refused(optim_input.kwargs)
    if why:
        _refuses(entry, optim_input, why, device)
        pytest.skip(f"{why} (on purpose: no CUDA-graph or autograd-through-the-step variant)")
    comparison = agreeing(entry, optim_input, impl, device, reference=theirs)
    assert comparison.passed, (f"{entry.name} {optim_input.kwargs} {impl} vs {theirs}: "
                               f"{comparison.first_mismatch} {comparison.reference_error or ''}")
    assert comparison.steps == D.STEPS
    assert comparison.rtol == tolerance(torch.float64)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_catalogue_implementations_are_torchs(entry):
    assert D.disagreement(entry) is None
    assert D.pairs(entry, "cpu")[0] == ("loop", "loop")
    # where torch's foreach computes other numbers than its loop (ASGD), ours is held to the loop
    own = {"foreach"} if entry.foreach_differs else set()
    assert {theirs for _, theirs in D.pairs(entry, "cpu")} == set(entry.implementations) - own
    assert D.inputs(entry, "cpu"), f"optim_db has no configuration for {entry.torch_class}"


def test_every_torch_entry_is_checked():
    names = {p.values[0].name for p in configurations()}
    assert names == {e.name for e in ENTRIES} and {"sgd", "adam", "adamw"} <= names


def test_missing_expecttest_is_one_clear_line(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_expecttest(name, *args, **kwargs):
        if name == "expecttest":
            raise ImportError("No module named 'expecttest'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_expecttest)
    with pytest.raises(UserError) as error:
        D.inputs(ENTRIES[0])
    assert "pip install expecttest" in str(error.value) and "\n" not in str(error.value)


# -- negative controls: bugs planted through rule_for= ---------------------------------------------

PERTURB = sp.Rational(1, 10**6)


@dataclass(frozen=True)
class Planted:
    """The entry's own rule with one last stage: the step scaled by 1 + 1e-6 (target "step"),
    or one state entry's new value scaled by 1 + 1e-6 and moved by 1e-9 (target: its name), so
    that a zero entry moves too. Hashable: the programs are cached by it."""

    target: str

    def __call__(self, structure):
        rule = build_rule(structure)
        return replace(rule, stages=rule.stages + (Stage("planted", self.plant, "a planted bug"),))

    def plant(self, c, h):
        if self.target == "step":
            return replace(c, theta=c.theta_prev + (c.theta - c.theta_prev) * (1 + PERTURB))
        value = c.state.get(self.target)
        if value is None:
            return c
        return c.with_state(**{self.target: value * (1 + PERTURB) + PERTURB / 1000})


def _holding(entry, key, device):
    """The first configuration ours accepts whose torch state holds `key` after a step."""
    for optim_input in D.inputs(entry, device):
        if D.refused(optim_input.kwargs):
            continue
        p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64, device=device))
        p.grad = torch.full_like(p, 0.5)
        opt = D.info(entry).optim_cls([p], **optim_input.kwargs)
        opt.step()
        if key in opt.state[p]:
            return optim_input
    return None


def controls():
    out = []
    for device in DEVICES:
        for entry in ENTRIES:
            pairs = D.pairs(entry, device)
            for target in ("step",) + tuple(s.name for s in entry.states):
                for impl, theirs in pairs if target == "step" else pairs[:1]:
                    out.append(pytest.param(entry, target, impl, theirs, device,
                                            marks=_marks(device),
                                            id=_id(device, entry.name, target, impl)))
    return out


@pytest.mark.parametrize("entry, target, impl, theirs, device", controls())
def test_negative_control_planted_bug_is_caught(entry, target, impl, theirs, device):
    key = "step" if target == "step" else entry.state(target).key
    optim_input = D.inputs(entry, device)[0] if target == "step" else _holding(entry, key, device)
    if optim_input is None:
        pytest.skip(f"no configuration of optim_db makes torch's {entry.torch_class} hold "
                    f"state[{key!r}]")
    assert agreeing(entry, optim_input, impl, device, reference=theirs).passed  # unplanted
    comparison = agreeing(entry, optim_input, impl, device, reference=theirs,
                          rule_for=Planted(target))
    assert not comparison.agree, f"planted bug ({target} perturbed) slipped through"
    assert comparison.max_rel_error > 30 * comparison.rtol  # far outside, not a marginal call
    if target != "step":  # the perturbed entry is the first tensor to differ
        assert f"state[{key!r}]" in comparison.first_mismatch.tensor, comparison.first_mismatch


# -- float32: distance to torch's CPU loop, in ulp -------------------------------------------------

# observed over every configuration (sgd, adam, adamw, and rmsprop from its branch; 8 steps):
# ours by default and with foreach=True is torch's loop bit for bit (0 ulp), the bound. The
# fused C kernel rounds apart by up to 2.4 eps normwise (rmsprop), bounded at 8. Its elementwise
# ulp count is reported, not bounded: it reaches hundreds at entries near 0 that are the
# difference of larger terms (rmsprop's `late` at step 8: 767 ulp, normwise 1.6 eps)
ULP_BOUND = {"loop": 0, "foreach": 0}
EPS_BOUND = {"loop": 0, "foreach": 0, "fused": 8}
# entries whose generated loop is not yet bit for bit with torch's (the goal): why, and the
# normwise bound observed over optim_db's configurations (float32, 8 steps), with a margin
NOT_BITWISE = {
    "radam": ("torch rounds each tensor product of bias_corrected_exp_avg * lr * adaptive_lr * "
              "rect (m / bc1 first); SymPy folds the scalars into one addcdiv value (3 ulp seen)",
              2),
    "adadelta": ("SymPy folds delta**2 into (acc + eps)*g**2/(v + eps), where torch squares "
                 "delta (64 ulp seen)", 6),
}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_float32_ulp_distance_to_torch_loop(entry):
    rows = D.ulp_figures([entry])
    assert [r["implementation"] for r in rows] == [impl for impl, _ in D.pairs(entry, "cpu")]
    for r in rows:
        assert r["configurations"] > 0
        assert r["within_tolerance"] == r["configurations"], r
        if entry.name in NOT_BITWISE and r["implementation"] != "fused":
            assert r["max_rel_error_eps"] <= NOT_BITWISE[entry.name][1], r
            continue
        assert r["max_ulp"] <= ULP_BOUND.get(r["implementation"], float("inf")), r
        assert r["max_rel_error_eps"] <= EPS_BOUND[r["implementation"]], r


def test_bench_table_has_a_row_per_entry_and_implementation():
    from optequiv.benchmarks.ulp import ulp_section

    rows = D.ulp_figures(ENTRIES[:1], steps=2)
    text = ulp_section(rows)
    body = [line for line in text.splitlines() if line.startswith(f"| {ENTRIES[0].name} |")]
    shown = [line.split("|")[2].strip() for line in body]
    assert shown == [{"loop": "default"}.get(i, i) for i, _ in D.pairs(ENTRIES[0])]
    assert "Not measured: expecttest is missing." in ulp_section(
        [{"case": "ulp", "not_measured": "expecttest is missing"}])
