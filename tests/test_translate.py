"""translate: the call in another framework that reproduces a spec, computed by the engine (a
proven equivalence and its mapping), or the nearest call with its first divergent step."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sympy as sp

from optequiv.derive.translate import translate

eta, w = sp.Symbol("eta", nonnegative=True), sp.Symbol("w", nonnegative=True)



def test_lr_independent_decay_is_torch_weight_decay_over_lr():
    r = translate("adamw(lr=eta, weight_decay=w, decay=independent)", "torch")
    # AdamW, or Adam(decoupled_weight_decay=True), which is the same class in torch 2.13
    assert r.exact and r.call.startswith("torch.optim.Adam") and "weight_decay=w/eta" in r.call
    assert r.mapping["weight_decay"] == w / eta and r.mapping["lr"] == eta


def test_tfa_adamw_is_keras_with_weight_decay_over_lr():
    r = translate("tfa.AdamW(weight_decay=w, learning_rate=eta)", "keras")
    assert r.exact and r.call.startswith("keras.")
    assert r.mapping["weight_decay"] == w / eta


def test_optax_adamw_is_torch_adamw_with_weight_decay_unchanged():
    r = translate("optax.adamw(learning_rate=eta, weight_decay=w)", "torch")
    assert r.exact and r.call == "torch.optim.AdamW(lr=eta, weight_decay=w)"


def test_adam_with_l2_is_an_optax_chain():
    r = translate("sgd(lr=eta, momentum=mu, weight_decay=w)", "optax")
    assert r.exact
    assert r.call == "optax.chain(optax.add_decayed_weights(w), optax.sgd(eta, momentum=mu))"


def test_decay_after_the_step_maps_exactly_at_a_constant_lr():
    # bitsandbytes' CUDA AdamW decays the updated parameter: torch's AdamW with
    # lr' = eta*(1 - eta*w), weight_decay' = w/(1 - eta*w) reproduces it, where eta*w < 1
    r = translate("bnb.AdamW(lr=eta, weight_decay=w)", "torch")
    assert r.exact
    assert sp.simplify(r.mapping["lr"] - eta * (1 - eta * w)) == 0
    assert sp.simplify(r.mapping["weight_decay"] - w / (1 - eta * w)) == 0
    assert [str(c) for c in r.valid_when] == ["eta*w < 1"]


def test_keras_sgd_momentum_is_torchs_at_a_constant_lr():
    r = translate("keras.SGD(learning_rate=eta, momentum=mu)", "torch")
    assert (r.exact, r.call) == (True, "torch.optim.SGD(lr=eta, momentum=mu)")


def test_no_exact_call_names_the_nearest_and_where_it_parts():
    r = translate("adamw(lr=eta, weight_decay=w, eps_added_to=sqrt_v, eps=1e-5, "
                  "betas=(0.9, 0.99))", "fastai")
    assert not r.exact
    # fastai's betas are these; its eps, mapped as eps/sqrt(1 - beta2), makes step 1 agree (the
    # engine proves that no betas make step 2 agree: derive.boxes)
    assert r.call == "fastai.Adam(lr=eta, eps=1/10000, wd=w)"
    assert r.first_divergent_step == 2 and r.difference != 0


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "optequiv.derive", "translate", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_json_keys_and_exit_status():
    proc = _cli("adamw(lr=eta, weight_decay=w, decay=independent)", "--to", "torch", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"exact", "call", "mapping", "first_divergent_step", "difference"} <= set(data)
    assert data["exact"] is True and data["mapping"]["weight_decay"] == "w/eta"


@pytest.mark.parametrize("args, words", [
    (("adamw(lr=eta)", "--to", "torch", "--schedule", "k"), "--schedule names k"),
    (("adamw()", "--to", "jaxx"), "unknown framework"),
    (("adamw(lr=", "--to", "torch"), "invalid spec"),
    (("keras.AdamW(lr=1e-3)", "--to", "torch"), "unexpected keyword argument 'lr'"),
    (("adamw()",), "--to"),
])
def test_cli_bad_input_is_one_line_exit_2(args, words):
    proc = _cli(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr


def test_under_a_schedule_lr_independent_decay_has_no_torch_call():
    # pytorch #38853: torch's decay is lr*weight_decay, so lr-independent decay needs
    # weight_decay = w/eta_k, which changes with the schedule: no constant call reproduces it
    eta_1 = sp.Symbol("eta_1", nonnegative=True)
    r = translate("adamw(lr=eta, weight_decay=w, decay=independent)", "torch", schedule=[eta])
    assert not r.exact and r.first_divergent_step == 2
    assert r.mapping["weight_decay"] == w / eta_1


def test_keras_sgd_parts_from_torch_under_a_schedule():
    r = translate("keras.SGD(learning_rate=eta, momentum=mu)", "torch", schedule=[eta])
    assert not r.exact and r.call.startswith("torch.optim.SGD(") and r.difference != 0


def test_an_exact_call_names_what_a_missing_gradient_does_differently():
    """optax steps a parameter without a gradient on zeros, torch skips it: the symbolic rules
    agree (every step has a gradient), and the translation says where they still differ."""
    r = translate("optax.adamw(learning_rate=eta, weight_decay=w)", "torch")
    assert r.exact and r.numeric_only == {"missing_grad": ("zeros", "skip")}
    assert r.to_json()["numeric_only"] == {"missing_grad": {"spec": "zeros", "call": "skip"}}
    same = translate("adamw(lr=eta, weight_decay=w)", "torch")
    assert same.exact and same.numeric_only == {}


def test_a_symbol_the_proof_leaves_free_takes_the_framework_default():
    # keras.SGD without momentum: torch's dampening acts on no buffer, so any value reproduces it
    r = translate("keras.SGD(learning_rate=eta, weight_decay=w)", "torch")
    assert r.exact and r.call == "torch.optim.SGD(lr=eta, weight_decay=w)"


def test_keras_adamw_nearest_torch_call_maps_eps_and_its_difference_is_the_printed_calls():
    r = translate("keras.AdamW(learning_rate=eta, weight_decay=w)", "torch")
    assert not r.exact and r.call == "torch.optim.AdamW(lr=eta, eps=sqrt(10)/1000000, weight_decay=w)"
    assert r.first_divergent_step == 2  # no betas make step 2 agree (derive.boxes' cover)
    # the betas the call leaves at torch's defaults are those defaults in the difference too
    assert {s.name for s in r.difference.free_symbols} <= {"eta", "w", "theta_0", "g_1", "g_2"}
