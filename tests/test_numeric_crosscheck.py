"""The cross-check matrix: the optimizer generated from each spec against torch.optim, every step.

Each case runs numeric.crosscheck: 200 steps of the harness problem (an MLP with a 0-dim
parameter, a quadratic, a parameter with no gradient on some steps, one whose first gradient
comes at step 5, two param groups, an lr schedule, momentum and weight_decay switched off and on
again, a restart from a state_dict at step 100), parameters and every state tensor compared
after every step against torch's loop, foreach and fused implementations.
Tolerances: numeric.metrics (float64 4096 eps = 9.1e-13 relative, float32 256 eps = 3.1e-5).
Negative controls plant wrong rules and wrong machinery; the same check must catch each.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import sympy as sp
import torch

from optequiv.derive import stages as S
from optequiv.derive.rules import build_rule
from optequiv.numeric import torch_optimizer
from optequiv.numeric.against_torch import crosscheck
from optequiv.numeric.harness import Scenario

CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="CUDA is not available (torch.cuda.is_available() is False)")
DTYPES = [torch.float64, torch.float32]


def _flag(value: bool) -> str:
    return "true" if value else "false"


def sgd_specs() -> list:
    out = []
    for mom, damp, nest, maxi, wd in itertools.product((0, 0.9), (0, 0.3), (False, True),
                                                       (False, True), (0, 0.01)):
        if nest and (mom == 0 or damp):
            continue  # torch rejects it (test_numeric_optimizer checks the message)
        out.append(f"sgd(lr=0.05, momentum={mom}, dampening={damp}, nesterov={_flag(nest)}, "
                   f"maximize={_flag(maxi)}, weight_decay={wd})")
    return out


def adam_specs() -> list:
    out = []
    for name, ams, maxi, wd, dec in itertools.product(("adam", "adamw"), (False, True),
                                                      (False, True), (0, 0.1), (False, True)):
        if name == "adamw" and dec:
            continue
        betas = "betas=(0.8, 0.99), eps=1e-6, " if ams == maxi else ""  # defaults elsewhere
        extra = f", decoupled_weight_decay={_flag(dec)}" if name == "adam" else ""
        out.append(f"{name}(lr=0.01, {betas}amsgrad={_flag(ams)}, maximize={_flag(maxi)}, "
                   f"weight_decay={wd}{extra})")
    return out


SPECS = sgd_specs() + adam_specs()


def short(spec: str) -> str:
    """A test id: the spec without spaces and with flags that are off left out."""
    return "".join(spec.split()).replace("nesterov=false,", "").replace("maximize=false,", "") \
        .replace("amsgrad=false,", "").replace(",decoupled_weight_decay=false", "")


def assert_agrees(report) -> None:
    """Every step compared agreed (whether every step was compared is asserted apart)."""
    assert report.agree, f"{report.spec}: {report.first_failing.first_mismatch} " \
                         f"(against {report.first_failing.reference})"


def assert_partial_only_by_torchs_late_parameter_bug(report) -> None:
    """torch 2.13's fused SGD with momentum raises when a parameter's first gradient comes late
    (step 5 of the scenario): then that comparison is partial, and the report must not pass."""
    partial = [c for c in report.comparisons if not c.complete]
    for c in partial:
        assert report.spec.startswith("sgd") and c.reference == "fused", c.to_json()
        assert c.raised["step"] == 5 and c.steps == 4 and c.raised["type"] == "TypeError"
        assert c.reference_error.startswith("step 5:")
    assert report.passed == (not partial) and report.complete == (not partial)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("spec", SPECS, ids=short)
def test_generated_optimizer_matches_torch(spec, dtype):
    report = crosscheck(spec, steps=200, dtype=dtype)
    assert_agrees(report)
    by_impl = {c.reference: c for c in report.comparisons}
    assert set(by_impl) == {"loop", "foreach", "fused"}, report.skipped
    for impl in ("loop", "foreach"):
        assert by_impl[impl].steps == 200
        # the stretch goal, pinned: the same kernels in the same order give the same bits
        assert by_impl[impl].max_ulp == 0, f"{impl}: {by_impl[impl].max_ulp} ulp"
    assert_partial_only_by_torchs_late_parameter_bug(report)
    if not by_impl["fused"].raised:
        assert by_impl["fused"].steps == 200


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("spec", [s for s in sgd_specs() if "momentum=0.9" in s][::2], ids=short)
def test_fused_sgd_over_all_steps_when_no_parameter_joins_late(spec, dtype):
    report = crosscheck(spec, steps=200, dtype=dtype, implementations=("fused",),
                        scenario=Scenario(late_from=1))
    assert_agrees(report)
    assert report.comparisons[0].steps == 200 and not report.comparisons[0].reference_error
    assert report.passed and report.left_out == ("loop", "foreach")


@CUDA
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("spec", SPECS[::3], ids=short)
def test_generated_optimizer_matches_torch_on_cuda(spec, dtype):
    report = crosscheck(spec, steps=200, dtype=dtype, device="cuda")
    assert_agrees(report)
    assert {c.reference for c in report.comparisons} >= {"loop", "foreach"}


# -- negative controls: planted wrong rules ------------------------------------------------------

def _stage(rule, name, fn):
    return replace(rule, stages=tuple(replace(s, fn=fn) if s.name == name else s
                                      for s in rule.stages))


def undampened(spec):
    def momentum(c, h):
        buf = c.state["buf"]
        return c.with_state(buf=c.u if buf is None else h["momentum"] * buf + c.u)
    return _stage(build_rule(spec), "momentum", momentum)


def eps_inside_sqrt(spec):
    def direction(c, h):
        t, second = c.state["t"], c.state.get("vmax", c.state["v"])
        m_hat = c.state["m"] / (1 - h["beta1"] ** t)
        return replace(c, u=m_hat / sp.sqrt(second / (1 - h["beta2"] ** t) + h["eps"]))
    return _stage(build_rule(spec), "adam_direction", direction)


def decay_moved(spec):
    """The decay stage on the other side of the moments: L2 becomes decoupled and back."""
    rule = build_rule(spec)
    names = rule.stage_names()
    if "decay" not in names:
        return rule
    stages = [s for s in rule.stages if s.name != "decay"]
    if names.index("decay") < names.index("moments"):
        at = [s.name for s in stages].index("adam_direction") + 1
        stages.insert(at, S.DECAY_DECOUPLED)
    else:
        stages.insert([s.name for s in stages].index("moments"), S.DECAY_L2)
    return replace(rule, stages=tuple(stages))


PLANTED = {
    "undampened buffer": ("sgd(lr=0.05, momentum=0.9, dampening=0.3)", undampened, 2),
    "eps inside the sqrt": ("adam(lr=0.01)", eps_inside_sqrt, 1),
    "eps inside the sqrt, amsgrad": ("adam(lr=0.01, eps=1e-6, amsgrad=true)", eps_inside_sqrt, 1),
    "L2 moved after the moments": ("adam(lr=0.01, weight_decay=0.1)", decay_moved, 1),
    "decoupled decay moved before the moments": ("adamw(lr=0.01, weight_decay=0.1)",
                                                 decay_moved, 1),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_negative_control_planted_rule_is_caught(bug, dtype):
    spec, plant, step = PLANTED[bug]
    assert_agrees(crosscheck(spec, steps=20, dtype=dtype, implementations=("loop",)))
    report = crosscheck(spec, steps=20, dtype=dtype, rule_for=plant,
                        implementations=("loop",))
    assert not report.agree, f"planted bug '{bug}' slipped through"
    comparison = report.comparisons[0]
    assert comparison.first_mismatch.step == step, str(comparison.first_mismatch)
    assert comparison.max_rel_error > 30 * comparison.rtol  # far outside, not a marginal call


# -- negative controls: planted wrong machinery ----------------------------------------------------

def planted_machinery(kind: str, spec: str):
    base = torch_optimizer(spec)

    class Planted(base):
        def step(self, closure=None):
            if kind == "a missing gradient treated as zero":
                for group in self.param_groups:
                    for p in group["params"]:
                        if p.grad is None:
                            p.grad = torch.zeros_like(p)
            if kind == "hyperparameters read once":
                for group in self.param_groups:
                    group.update({k: v for k, v in self.defaults.items() if k != "params"})
            return super().step(closure)

        def load_state_dict(self, state_dict):
            if kind == "state dropped on resume":
                state_dict = {**state_dict, "state": {}}
            super().load_state_dict(state_dict)

    return Planted


MACHINERY = {
    "a missing gradient treated as zero": "adamw(lr=0.01, weight_decay=0.1)",
    "hyperparameters read once": "sgd(lr=0.05, momentum=0.9, weight_decay=0.01)",
    "state dropped on resume": "adam(lr=0.01)",
}


@pytest.mark.parametrize("kind", sorted(MACHINERY))
def test_negative_control_planted_machinery_is_caught(kind, monkeypatch):
    import optequiv.numeric.against_torch as against

    spec = MACHINERY[kind]
    monkeypatch.setattr(against, "torch_optimizer",
                        lambda s, rule_for=None: planted_machinery(kind, spec))
    report = crosscheck(spec, steps=120, implementations=("loop",))
    assert not report.agree, f"planted machinery bug '{kind}' slipped through"


# -- a partial comparison never passes -------------------------------------------------------------

def raising_at(step: int, factory):
    """A torch implementation that raises at `step`, as torch's fused SGD does at step 5."""
    calls = [0]  # across rebuilds: the harness restarts every run from a checkpoint midway

    def make(params):
        opt = factory(params)
        inner = opt.step

        def step_(closure=None):
            calls[0] += 1
            if calls[0] == step:
                raise RuntimeError("planted: this kernel gives up")
            return inner(closure)
        opt.step = step_
        return opt
    return make


def test_a_reference_that_raises_cuts_the_comparison_short_and_fails_it():
    from optequiv.numeric.harness import side_by_side

    spec = "adam(lr=0.01)"
    adam = lambda ps: torch.optim.Adam(ps, lr=0.01)  # noqa: E731
    [whole] = side_by_side({"torch": adam, "generated": torch_optimizer(spec)},
                           [("generated", "torch")], steps=12)
    assert whole.passed and whole.complete and whole.steps == 12  # the control
    [cut] = side_by_side({"source": adam, "torch": raising_at(7, adam),
                          "generated": torch_optimizer(spec)},
                         [("generated", "torch")], steps=12)
    assert cut.agree and not cut.complete and not cut.passed
    assert cut.steps == 6 and cut.steps_requested == 12
    assert cut.raised == {"step": 7, "type": "RuntimeError",
                          "message": "planted: this kernel gives up"}
    data = cut.to_json()
    assert data["passed"] is False and data["agree"] is True
    assert (data["steps_compared"], data["steps_requested"]) == (6, 12)
    assert data["reference_error"] == "step 7: RuntimeError: planted: this kernel gives up"


def test_torchs_fused_sgd_bug_makes_the_report_partial_not_agreement():
    report = crosscheck("sgd(momentum=0.9, nesterov=true)", steps=200)
    assert report.agree and not report.complete and not report.passed
    assert_partial_only_by_torchs_late_parameter_bug(report)
    data = report.to_json()
    assert data["passed"] is False and data["complete"] is False and data["agree"] is True
    fused = data["implementations"]["fused"]
    assert (fused["steps_compared"], fused["steps_requested"]) == (4, 200)
    assert fused["raised"]["type"] == "TypeError" and fused["raised"]["message"]
    for impl in ("loop", "foreach"):
        assert data["implementations"][impl]["steps_compared"] == 200
        assert data["implementations"][impl]["raised"] is None
    left = crosscheck("sgd(momentum=0.9, nesterov=true)", steps=200,
                      implementations=("loop", "foreach"))
    assert left.passed and left.left_out == ("fused",)
    assert left.to_json()["left_out"] == {"fused": "on request (--skip)"}


def test_unknown_or_no_implementations_are_refused():
    from optequiv.derive.errors import UserError

    for bad in (("loop", "fusd"), ()):
        with pytest.raises(UserError, match="implementations must be some of loop, foreach"):
            crosscheck("adam", steps=2, implementations=bad)


def test_an_implementation_torch_lacks_is_reported_apart_not_as_incomplete():
    from optequiv.numeric.against_torch import crosscheck as run

    report = run("rmsprop(momentum=0.9)", steps=4)  # torch's RMSprop has no fused kernel
    assert report.passed and report.not_in_torch == ("fused",)
    assert set(report.to_json()["not_in_torch"]) == {"fused"}
    assert run("adam", steps=4).not_in_torch == ()
