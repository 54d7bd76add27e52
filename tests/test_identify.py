"""numeric.testing.identify and `optequiv identify`: real optimizers named by their spec, with
the hyperparameters fitted exactly, and the nearest spec where none matches.

The references are real: torch.optim's classes and third-party libraries (pytorch-optimizer,
torch-optimizer, lion-pytorch, transformers; each skips with a reason where it is not installed). Negative
controls: optimizers with a planted bug match nothing, and the nearest names what differs.
"""
from __future__ import annotations

import inspect
import json

import pytest
import torch
from hypothesis import given, settings, strategies as st

from optequiv.derive.cli import main
from optequiv.derive.errors import UserError
from optequiv.derive.spec import parse_spec
from optequiv.numeric import torch_optimizer
from optequiv.numeric.testing import SpecMismatch, assert_matches_spec, identify


def _library(name):
    return pytest.importorskip(name, reason=f"{name} is not installed (pip install "
                                            "'optequiv[test]' installs it)")


def same(a: str, b: str) -> bool:
    """Two spec texts name the same optimizer at the same values (defaults written or not)."""
    x, y = parse_spec(a), parse_spec(b)
    return x.name == y.name and x.hyper(numeric=True) == y.hyper(numeric=True) and \
        all(x.flag(f) == y.flag(f) for f in x.entry.flags) and \
        all(getattr(x, k) == getattr(y, k) for k in x.entry.all_choices)


def names(found, spec: str) -> bool:
    return any(same(m, spec) for m in found.matches)


# -- torch.optim --------------------------------------------------------------------------------

def test_torch_adamw_is_named_with_its_values_and_each_match_is_verified():
    factory = lambda params: torch.optim.AdamW(params, lr=3e-4, weight_decay=0.1)  # noqa: E731
    found = identify(factory)
    assert "adamw(lr=0.0003, weight_decay=0.1)" in found.matches
    assert found.nearest is None
    for spec in found.matches:  # the contract: numeric, accepted by torch_optimizer, passing
        torch_optimizer(spec)
        assert_matches_spec(factory, spec)
    assert found.to_json() == {"matches": found.matches, "nearest": None}


@pytest.mark.parametrize("factory, spec", [
    (lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.95)), "adam(lr=0.01, betas=(0.8, 0.95))"),
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
     "sgd(lr=0.1, momentum=0.9, weight_decay=0.0001, nesterov=true)"),
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),  # two values at 0
     "sgd(lr=0.1, momentum=0.9, nesterov=true)"),
    (lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.1),
     "sgd(lr=0.05, momentum=0.8, dampening=0.1)"),
    (lambda p: torch.optim.RMSprop(p, momentum=0.5, centered=True),
     "rmsprop(momentum=0.5, centered=true)"),
    (lambda p: torch.optim.Adagrad(p, lr_decay=0.01), "adagrad(lr_decay=0.01)"),
    (lambda p: torch.optim.NAdam(p), "nadam()"),
    (lambda p: torch.optim.Rprop(p), "rprop()"),
], ids=["adam-betas", "sgd-nesterov", "sgd-nesterov-no-decay", "sgd-dampening", "rmsprop-centered", "adagrad", "nadam",
        "rprop"])
def test_torch_classes_are_named(factory, spec):
    found = identify(factory)
    assert names(found, spec), found


def test_float32_probes_are_fitted_too():
    """In float32 the observation is rounded: the fit chases the rounding, and the values are
    rounded jointly to what reproduces the probes within float32's tolerance."""
    found = identify(lambda p: torch.optim.AdamW(p, lr=3e-4, weight_decay=0.1),
                     dtype=torch.float32)
    assert "adamw(lr=0.0003, weight_decay=0.1)" in found.matches


LRS = st.sampled_from([1e-3, 3e-4, 0.01, 0.05])
RATES = st.sampled_from([0.8, 0.9, 0.95, 0.99, 0.999])


@settings(max_examples=4)
@given(lr=LRS, beta1=RATES, beta2=RATES, wd=st.sampled_from([0.0, 0.01, 0.1]),
       amsgrad=st.booleans())
def test_drawn_adamw_hyperparameters_are_fitted(lr, beta1, beta2, wd, amsgrad):
    found = identify(lambda p: torch.optim.AdamW(p, lr=lr, betas=(beta1, beta2),
                                                 weight_decay=wd, amsgrad=amsgrad))
    flag = ", amsgrad=true" if amsgrad else ""
    assert names(found, f"adamw(lr={lr}, betas=({beta1}, {beta2}), weight_decay={wd}{flag})"), \
        found
    if wd == 0:  # then it is Adam as well
        assert names(found, f"adam(lr={lr}, betas=({beta1}, {beta2}){flag})"), found


@settings(max_examples=3)
@given(lr=LRS, momentum=st.sampled_from([0.5, 0.9, 0.99]),
       wd=st.sampled_from([0.0, 1e-4, 0.01]))
def test_drawn_sgd_hyperparameters_are_fitted(lr, momentum, wd):
    found = identify(lambda p: torch.optim.SGD(p, lr=lr, momentum=momentum, weight_decay=wd))
    assert names(found, f"sgd(lr={lr}, momentum={momentum}, weight_decay={wd})"), found


def test_known_values_are_kept_and_unknown_keys_refused():
    found = identify(lambda p: torch.optim.AdamW(p, lr=3e-4, weight_decay=0.1),
                     hyper={"lr": 3e-4, "betas": (0.9, 0.999)})
    assert "adamw(lr=0.0003, weight_decay=0.1)" in found.matches
    # a known value that is wrong: the fit cannot reach the optimizer, nothing matches
    wrong = identify(lambda p: torch.optim.AdamW(p, lr=3e-4, weight_decay=0.1),
                     hyper={"lr": 1e-3})
    assert not wrong.matches and wrong.nearest is not None
    with pytest.raises(UserError, match="unknown key 'learning_rate'"):
        identify(lambda p: torch.optim.AdamW(p), hyper={"learning_rate": 1e-3})


# -- third-party libraries ------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, spec", [
    ({}, "adamw(lr=0.01, eps=1e-06, weight_decay=0.1, eps_added_to=sqrt_v, decay=after)"),
    # without bias correction eps sits on sqrt(v) = sqrt(v_hat): one key fewer
    ({"correct_bias": False},
     "adamw(lr=0.01, eps=1e-06, weight_decay=0.1, bias_correction=off, decay=after)"),
])
def test_transformers_adamw_is_named_two_conventions_from_torch(kwargs, spec):
    import warnings

    transformers = _library("transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the 4.x class is deprecated
        found = identify(lambda p: transformers.AdamW(p, lr=1e-2, weight_decay=0.1, **kwargs))
    assert names(found, spec), found


def test_lion_pytorch_is_named():
    lion_pytorch = _library("lion_pytorch")
    found = identify(lambda p: lion_pytorch.Lion(p, lr=3e-4, weight_decay=0.1))
    assert "lion(lr=0.0003, weight_decay=0.1)" in found.matches


@pytest.mark.parametrize("make, spec, hyper", [
    (lambda po, p: po.Lion(p, lr=1e-3, weight_decay=0.01), "lion(lr=0.001, weight_decay=0.01)",
     None),
    (lambda po, p: po.SGDW(p, lr=0.01, momentum=0.9, weight_decay=0.01),
     "sgd(lr=0.01, momentum=0.9, weight_decay=0.01, decay=decoupled)", None),
    (lambda po, p: po.AdaDelta(p), "adadelta()", None),
    (lambda po, p: po.AdamW(p, lr=1e-3, weight_decay=0.05), "adamw(weight_decay=0.05)", None),
    # Tiger is Lion with one rate for both betas; seen only through signs, the probes pin the
    # rates to an interval, so they are given (the values one knows from the constructor)
    (lambda po, p: po.Tiger(p), "lion(lr=0.001, betas=(0.965, 0.965), weight_decay=0.01)",
     {"betas": (0.965, 0.965)}),
], ids=["Lion", "SGDW", "AdaDelta", "AdamW", "Tiger"])
def test_pytorch_optimizer_classes_are_named(make, spec, hyper):
    po = _library("pytorch_optimizer")
    found = identify(lambda p: make(po, p), hyper=hyper)
    assert names(found, spec), found


def test_torch_optimizer_qhadam_is_adam_and_its_state_does_not_decide():
    to = _library("torch_optimizer")
    found = identify(lambda p: to.QHAdam(p))  # nus=(1, 1): Adam exactly
    assert names(found, "adam()"), found


def test_unmodelled_optimizers_get_a_sensible_nearest():
    to = _library("torch_optimizer")
    # AggMo averages several momentum buffers (kept as a dict under torch's key): the nearest
    # is SGD with momentum, and the harness compares it without a TypeError
    aggmo = identify(lambda p: to.AggMo(p))
    assert not aggmo.matches and parse_spec(aggmo.nearest.spec).name == "sgd"
    assert parse_spec(aggmo.nearest.spec).hyper(numeric=True)["momentum"] > 0
    assert aggmo.nearest.first_mismatch["step"] == 1
    # torch-optimizer's SGDW subtracts lr*weight_decay (not times theta): SGD with momentum
    sgdw = identify(lambda p: to.SGDW(p, lr=0.01, momentum=0.9, weight_decay=0.01))
    assert not sgdw.matches and parse_spec(sgdw.nearest.spec).name == "sgd"
    yogi = identify(lambda p: to.Yogi(p))  # additive second moment: no entry
    assert not yogi.matches and yogi.nearest.first_mismatch is not None


def test_a_per_group_step_count_is_found_by_the_check_not_the_probes():
    """pytorch-optimizer's AdaMax counts steps per group: on the probes (a gradient at every
    step) it is Adamax exactly; the check's missing gradient tells torch's count from the
    group's, so it matches step_counter=per_group and not torch's Adamax."""
    po = _library("pytorch_optimizer")
    found = identify(lambda p: po.AdaMax(p))
    assert found.matches == ["adamax(lr=0.001, step_counter=per_group)"]
    assert found.checked["adamax(lr=0.001)"]["tensor"] == "quad"  # the one that skips steps


# -- negative controls: planted bugs ------------------------------------------------------------

class DecaysIdle(torch.optim.AdamW):
    """Planted bug: AdamW that also decays a parameter on a step where it has no gradient."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None and self.state.get(p):
                    p.mul_(1 - group["lr"] * group["weight_decay"])
        return super().step(closure)


class BothDecays(torch.optim.Adam):
    """Planted bug: Adam with L2 decay that decays decoupled as well."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
        return super().step(closure)


def test_control_unplanted_adamw_subclass_matches():
    found = identify(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1))
    assert "adamw(lr=0.01, weight_decay=0.1)" in found.matches


def test_planted_idle_decay_matches_nothing_and_the_nearest_names_the_missing_gradient():
    found = identify(lambda p: DecaysIdle(p, lr=1e-2, weight_decay=0.1))
    assert not found.matches
    near = found.nearest
    assert near.spec == "adamw(lr=0.01, weight_decay=0.1)" and near.probe_error < 1e-12
    assert near.first_mismatch["tensor"] == "quad"
    assert "`quad` had no gradient" in near.first_mismatch["scenario"]
    assert "adamw(lr=0.01, weight_decay=0.1)" in found.checked


def test_planted_double_decay_matches_nothing_and_the_nearest_is_adams():
    found = identify(lambda p: BothDecays(p, lr=1e-2, weight_decay=0.1))
    assert not found.matches
    near = parse_spec(found.nearest.spec)
    assert near.name in ("adam", "adamw") and near.hyper(numeric=True)["weight_decay"] > 0
    assert found.nearest.first_mismatch["step"] == 1
    assert set(found.to_json()["nearest"]) >= {"spec", "first_mismatch", "axis", "difference"}


# -- one convention beyond the pool: refitted along each known axis --------------------------------
# The pool holds torch's conventions and one key away. An optimizer whose convention the pool
# lacks stands here for one two keys away: the pool is cut of every raw-sqrt(v) eps, and the
# optimizer is Keras-style Adam (eps on sqrt(v)), generated by optequiv and checked elsewhere
# against Keras itself (tests/test_frameworks.py).

KERAS_STYLE = "adam(lr=0.01, eps=1e-3, eps_added_to=sqrt_v)"


@pytest.fixture
def pool_without_raw_eps(monkeypatch):
    from optequiv.numeric import identify as module

    real = module.candidates
    monkeypatch.setattr(module, "candidates", lambda hyper=None: [
        c for c in real(hyper) if _raw_eps(c.template) is False])


def _raw_eps(spec) -> bool | None:
    """Whether the spec's eps is added to the raw sqrt(v); None where it has no such key."""
    if "eps_added_to" not in spec.entry.all_choices:
        return False
    return spec.choice("eps_added_to") == "sqrt_v"


class Drifts:
    """A generated optimizer plus a drift no spec models (p += size*tanh(p) after each step)."""

    def __init__(self, spec: str, size: float):
        self.cls, self.size = torch_optimizer(spec), size

    def __call__(self, params):
        opt, size = self.cls(params), self.size
        step = opt.step

        def drifting(closure=None):
            out = step(closure)
            with torch.no_grad():
                for group in opt.param_groups:
                    for p in group["params"]:
                        p.add_(torch.tanh(p), alpha=size)
            return out
        opt.step = drifting
        return opt


def test_a_convention_beyond_the_pool_is_found_by_refitting(pool_without_raw_eps):
    found = identify(lambda p: torch_optimizer(KERAS_STYLE)(p))
    assert any(_raw_eps(parse_spec(m)) for m in found.matches)
    assert all(parse_spec(m).hyper(numeric=True)["eps"] == pytest.approx(1e-3)
               for m in found.matches)


def test_a_difference_along_a_known_axis_is_named(pool_without_raw_eps):
    found = identify(Drifts(KERAS_STYLE, 1e-10))
    assert not found.matches
    near = found.nearest
    assert near.axis == "eps_added_to" and "eps_added_to=sqrt_v" in near.variant
    assert near.refit_error * 10 <= near.probe_error
    assert near.first_divergent_step == 1 and near.difference
    assert "the difference is along eps_added_to" in str(found)


def test_control_a_drift_along_no_axis_names_none(pool_without_raw_eps):
    # negative control: torch's own Adam with the same drift: no variant explains it
    found = identify(Drifts("adam(lr=0.01, eps=1e-3)", 1e-10))
    assert not found.matches and found.nearest.axis is None
    assert found.nearest.refits and min(found.nearest.refits.values()) * 10 > \
        found.nearest.probe_error


def test_spec_mismatch_carries_the_first_mismatch():
    with pytest.raises(SpecMismatch) as caught:
        assert_matches_spec(lambda p: BothDecays(p, lr=1e-2, weight_decay=0.1),
                            "adam(lr=0.01, weight_decay=0.1)")
    assert caught.value.mismatch.step == 1 and isinstance(caught.value, AssertionError)


# -- the command line ---------------------------------------------------------------------------

def cli(capsys, *argv):
    code = main(["identify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_names_torch_adamw_in_json_and_exits_0(capsys):
    code, out, err = cli(capsys, "torch.optim:AdamW", "--kwargs",
                         '{"lr": 3e-4, "weight_decay": 0.1}', "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"matches", "nearest"} and data["nearest"] is None
    assert "adamw(lr=0.0003, weight_decay=0.1)" in data["matches"]


@pytest.fixture
def planted_module(tmp_path, monkeypatch):
    # the planted class above, as a module of its own that the CLI imports by name
    (tmp_path / "planted_optim.py").write_text("import torch\n\n\n" + inspect.getsource(BothDecays))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "planted_optim"


def test_cli_exits_1_with_the_nearest_when_nothing_matches(capsys, planted_module):
    code, out, err = cli(capsys, f"{planted_module}:BothDecays", "--kwargs",
                         '{"lr": 0.01, "weight_decay": 0.1}', "--json")
    assert code == 1, err
    data = json.loads(out)
    assert data["matches"] == [] and parse_spec(data["nearest"]["spec"]).name in ("adam", "adamw")
    code, out, _ = cli(capsys, f"{planted_module}:BothDecays", "--kwargs",
                       '{"lr": 0.01, "weight_decay": 0.1}')
    assert code == 1 and "matches: none" in out and "first mismatch: step 1" in out


@pytest.mark.parametrize("argv, said", [
    (["no_such_module_here:X"], "cannot import no_such_module_here"),
    (["torch.optim:NoSuchClass"], "torch.optim has no attribute 'NoSuchClass'"),
    (["torch.optim"], "expected MODULE:ATTR"),
    (["os:system('x')"], "expected MODULE:ATTR"),
    (["torch.optim:AdamW", "--kwargs", "{lr: 1}"], "--kwargs: not JSON"),
    (["torch.optim:AdamW", "--kwargs", "[1, 2]"], "--kwargs: expected a JSON object"),
    (["torch.optim:AdamW", "--kwargs", '{"lr": -1}'], "raised ValueError: Invalid learning rate"),
    (["torch.optim:AdamW", "--kwargs", '{"nope": 1}'], "raised TypeError"),
    (["torch.optim:AdamW", "--hyper", '{"learning_rate": 1}'], "unknown key 'learning_rate'"),
], ids=["no-module", "no-attribute", "no-colon", "not-a-name", "bad-json", "not-an-object",
        "constructor-raises", "bad-keyword", "bad-hyper"])
def test_cli_bad_input_is_one_line_and_exit_2(capsys, argv, said):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and said in err and "Traceback" not in err
