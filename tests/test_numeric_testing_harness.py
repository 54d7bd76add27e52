"""assert_matches_spec on real optimizers' habits: state kept in another layout or with another
meaning under torch's key, and the scenario's parts (missing gradients, a late parameter, the lr
schedule, the restart) switched off to isolate a cause. Each case has its negative control: the
same optimizer is caught where the check is asked to judge what differs.
"""
from __future__ import annotations

import pytest
import torch

from optequiv.numeric.testing import assert_matches_spec


class DictBufferSGD(torch.optim.Optimizer):
    """SGD with momentum whose state['momentum_buffer'] is a dict of buffers by momentum (as
    torch-optimizer's AggMo keeps it): float() of it was a TypeError in the harness."""

    def __init__(self, params, lr, momentum):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                bufs = self.state[p].setdefault("momentum_buffer", {})
                m = group["momentum"]
                buf = bufs.get(m)
                bufs[m] = buf = p.grad.clone() if buf is None else buf.mul_(m).add_(p.grad)
                p.add_(buf, alpha=-group["lr"])


class CorrectedMomentAdam(torch.optim.Adam):
    """torch's Adam, with state['exp_avg'] replaced after each step by the bias-corrected first
    moment: the parameters are Adam's exactly, the key holds another quantity (the QHAdam case)."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                s = self.state.get(p)
                if s and "raw" in s:
                    s["exp_avg"] = s.pop("raw")
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                s = self.state.get(p)
                if s and "exp_avg" in s:
                    t = float(s["step"])
                    s["raw"] = s["exp_avg"]
                    s["exp_avg"] = s["raw"] / (1 - group["betas"][0] ** t)

    def state_dict(self):  # a restart keeps the raw moment where Adam reads it
        out = super().state_dict()
        for s in out["state"].values():
            if "raw" in s:
                s["exp_avg"] = s.pop("raw")
        return out


class DecaysWithoutGradient(torch.optim.Optimizer):
    """SGD with L2, except that a parameter without a gradient still shrinks by (1 - lr*wd):
    torch skips it. Only the scenario's missing gradients can show it."""

    def __init__(self, params, lr, weight_decay):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    p.mul_(1 - lr * wd)
                else:
                    p.add_(p.grad + wd * p, alpha=-lr)


class ForgetfulMomentum(torch.optim.SGD):
    """torch's SGD whose checkpoint leaves the momentum buffers out: only a restart shows it."""

    def state_dict(self):
        out = super().state_dict()
        out["state"] = {}
        return out


class ConstantLrSGD(torch.optim.Optimizer):
    """SGD that reads its lr once, at construction: only the lr schedule shows it."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})
        self.lr = lr

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-self.lr)


def test_a_dict_under_torchs_key_is_no_type_error_and_the_parameters_decide():
    check = assert_matches_spec(lambda ps: DictBufferSGD(ps, lr=0.1, momentum=0.9),
                                "sgd(lr=0.1, momentum=0.9)")
    assert any("not comparable: dict vs Tensor" in n for n in check.state_notes), check
    assert "not comparable: dict vs Tensor" in str(check)


def test_a_dict_under_torchs_key_fails_where_that_key_is_asked_for():
    with pytest.raises(AssertionError, match=r"state\['momentum_buffer'\].*not comparable"):
        assert_matches_spec(lambda ps: DictBufferSGD(ps, lr=0.1, momentum=0.9),
                            "sgd(lr=0.1, momentum=0.9)",
                            state={"momentum_buffer": "momentum_buffer"})


def test_another_meaning_under_torchs_key_is_noted_not_failed():
    check = assert_matches_spec(lambda ps: CorrectedMomentAdam(ps, lr=0.01), "adam(lr=0.01)")
    [note] = [n for n in check.state_notes if "holds another quantity" in n]
    assert "from step 1, state['exp_avg']" in note


def test_another_meaning_is_caught_where_the_state_map_asks_for_it():
    """The negative control: the same optimizer, with exp_avg judged."""
    with pytest.raises(AssertionError, match=r"first mismatch at step 1, state\['exp_avg'\]"):
        assert_matches_spec(lambda ps: CorrectedMomentAdam(ps, lr=0.01), "adam(lr=0.01)",
                            state={"exp_avg": "exp_avg"})


def test_a_state_map_compares_the_entry_under_your_key():
    class Renamed(torch.optim.SGD):
        def step(self, closure=None):
            for s in self.state.values():
                if "buf" in s:
                    s["momentum_buffer"] = s.pop("buf")
            super().step(closure)
            for s in self.state.values():
                s["buf"] = s.pop("momentum_buffer")
    factory = lambda ps: Renamed(ps, lr=0.1, momentum=0.9)  # noqa: E731
    assert_matches_spec(factory, "sgd(lr=0.1, momentum=0.9)", state={"momentum_buffer": "buf"})
    with pytest.raises(AssertionError, match=r"state\['velocity'\].*missing"):
        assert_matches_spec(factory, "sgd(lr=0.1, momentum=0.9)",
                            state={"momentum_buffer": "velocity"})


def test_parameters_only_mode_leaves_state_out():
    check = assert_matches_spec(lambda ps: CorrectedMomentAdam(ps, lr=0.01), "adam(lr=0.01)",
                                state="params")
    assert check.state_notes == []


# -- the scenario's parts: the message names the part at the first mismatch; switched off, the
#    optimizer passes, which isolates the cause

@pytest.mark.parametrize("factory, spec, said, switch", [
    (lambda ps: DecaysWithoutGradient(ps, lr=0.1, weight_decay=0.1), "sgd(lr=0.1, weight_decay=0.1)",
     "`late` has had no gradient yet", {"missing_grads": False, "late_param": False}),
    (lambda ps: ForgetfulMomentum(ps, lr=0.1, momentum=0.9), "sgd(lr=0.1, momentum=0.9)",
     "restarted from a state_dict checkpoint (after step 10)", {"restart": False}),
    (lambda ps: ConstantLrSGD(ps, lr=0.1), "sgd(lr=0.1)",
     "the first step with the lr changed by the schedule", {"schedule": False}),
], ids=["missing-gradient", "restart", "schedule"])
def test_the_scenario_part_is_named_and_switching_it_off_isolates_it(factory, spec, said, switch):
    with pytest.raises(AssertionError) as caught:
        assert_matches_spec(factory, spec)
    assert said in str(caught.value)
    assert_matches_spec(factory, spec, **switch)


def test_a_missing_gradient_is_named_at_its_step():
    """quad has no gradient at step 2 (late is given one from step 1 here)."""
    with pytest.raises(AssertionError, match=r"at step 2, quad \(`quad` had no gradient at "
                                             r"step 2[;)]"):
        assert_matches_spec(lambda ps: DecaysWithoutGradient(ps, lr=0.1, weight_decay=0.1),
                            "sgd(lr=0.1, weight_decay=0.1)", late_param=False)


def test_the_error_is_relative_to_the_tensors_scale_in_eps_not_ulp_across_zero():
    with pytest.raises(AssertionError) as caught:
        assert_matches_spec(lambda ps: torch.optim.SGD(ps, lr=0.1), "sgd(lr=0.2)")
    text = str(caught.value)
    assert " eps)" in text and "ulp" not in text


def test_the_nearest_variant_yours_matches_is_named():
    with pytest.raises(AssertionError, match=r"it matches adamw\(lr=0.01, weight_decay=0.1, "
                                             r"decay=l2\) instead"):
        assert_matches_spec(lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
                            "adamw(lr=0.01, weight_decay=0.1)")


@pytest.mark.parametrize("kwargs, said", [
    ({"state": "everything"}, "state must be"), ({"state": {"exp_avg": 3}}, "state must be"),
    ({"restart": "no"}, "restart must be True or False"),
    ({"missing_grads": None}, "missing_grads must be True or False")])
def test_bad_options_are_refused(kwargs, said):
    with pytest.raises(ValueError, match=said):
        assert_matches_spec(torch.optim.SGD, "sgd(lr=0.1)", **kwargs)
