"""Dialects: other frameworks' calls parse to a catalogue spec with the framework's keywords,
positional order and defaults; the engine's verdicts on them; bad input is one line, exit 2."""
from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
from dataclasses import replace
import sys

import pytest
import sympy as sp

from optequiv.derive import compare
from optequiv.derive.dialects import FRAMEWORKS
from optequiv.derive.dialects.base import REQUIRED
from optequiv.derive.spec import parse_spec

ISSUE_EXAMPLES = (
    "optax.adamw(learning_rate=1e-3, weight_decay=1e-4)",
    "optax.chain(optax.add_decayed_weights(1e-4), optax.adam(1e-3))",
    "keras.AdamW(learning_rate=1e-3, weight_decay=0.004)",
    "keras.SGD(momentum=0.9)",
    "transformers.AdamW(lr=1e-3, correct_bias=true)",
    "tfa.AdamW(weight_decay=1e-4, learning_rate=1e-3)",
    "fastai.Adam(1e-3)", "timm.AdamW(corrected_weight_decay=True)", "bnb.AdamW()",
    "paddle.AdamW()", "mxnet.AdamW()", "torch.optim.AdamW(lr=1e-3)",
)



@pytest.mark.parametrize("text", ISSUE_EXAMPLES)
def test_issue_examples_parse_to_a_catalogueparse_spec(text):
    spec = parse_spec(text)
    assert spec.call == text
    assert parse_spec(str(spec)) == spec  # the catalogue spec it means, in optequiv's words


def test_chain_order_is_the_decay_convention():
    def decay(chain):
        return parse_spec(chain).decay
    assert decay("optax.chain(optax.add_decayed_weights(w), optax.adam(1e-3))") == "l2"
    assert decay("optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(w), "
                 "optax.scale_by_learning_rate(1e-3))") == "decoupled"
    spec = parse_spec("optax.chain(optax.adam(1e-3), optax.add_decayed_weights(-0.01))")
    assert (spec.decay, spec.given["weight_decay"]) == ("independent", sp.Rational(1, 100))
    assert parse_spec("optax.adamw(1e-3)") == parse_spec(
        "optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(1e-4), "
        "optax.scale_by_learning_rate(1e-3))")


def test_positional_order_and_defaults_are_the_frameworks():
    spec = parse_spec("optax.adam(0.1, 0.8, 0.9, 0.01)")
    assert spec.hyper(numeric=True)["beta2"] == sp.Rational(9, 10)
    assert spec.hyper(numeric=True)["eps"] == sp.Rational(1, 100)
    h = parse_spec("keras.AdamW()").hyper(numeric=True)
    assert (h["eps"], h["weight_decay"]) == (sp.Rational(1, 10**7), sp.Rational(4, 1000))
    # a required keyword left out is the entry's own unknown, as an omitted torch lr is
    assert parse_spec("optax.adam()").hyper()["lr"] == sp.Symbol("lr", nonnegative=True)


def _owner(framework, dialect):
    """The installed module that holds the call: the first of the framework's prefixes that
    imports and has it (keras.optimizers.AdamW, tensorflow_addons.optimizers.AdamW)."""
    for prefix in framework.prefixes:
        try:
            module = importlib.import_module(prefix)
        except ImportError:
            continue
        if hasattr(module, dialect.name):
            return getattr(module, dialect.name)
    return None


def _mismatches(framework) -> list:
    """(call, keyword) pairs whose name or default is not the installed package's own."""
    out = []
    for dialect in (d for d in framework.dialects if not d.variadic):
        fn = _owner(framework, dialect)
        if fn is None:
            out.append((dialect.name, None))
            continue
        params = inspect.signature(fn).parameters
        for k in dialect.keywords:
            real = params[k.name].default if k.name in params else "absent"
            if k.default is REQUIRED:
                same = real is inspect.Parameter.empty
            elif k.pair:
                same = isinstance(real, tuple) and tuple(map(float, k.default)) == real
            elif isinstance(k.default, str):
                same = isinstance(real, (int, float)) and float(k.default) == real
            else:
                same = k.default == real
            if not same:
                out.append((dialect.name, k.name))
    return out


@pytest.mark.parametrize("name", sorted(FRAMEWORKS))
def test_keywords_and_defaults_match_the_installed_framework(name):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    framework = FRAMEWORKS[name]
    pytest.importorskip(framework.installed, reason=f"{framework.installed} is not installed")
    assert _mismatches(framework) == []


def test_negative_control_a_wrong_default_is_found():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("keras", reason="keras is not installed")
    keras = FRAMEWORKS["keras"]
    adam = keras.dialect("Adam")
    wrong = replace(adam, keywords=tuple(replace(k, default="1e-8") if k.name == "epsilon" else k
                                         for k in adam.keywords))
    assert _mismatches(replace(keras, dialects=(wrong,))) == [("Adam", "epsilon")]


def test_keras_adamw_is_refuted_against_torch_adamw_by_eps_placement():
    r = compare(parse_spec("keras.AdamW(learning_rate=eta, weight_decay=w)"),
                "adamw(lr=eta, weight_decay=w2, eps=1e-7)")
    assert (r.verdict, r.first_divergent_step) == ("refuted", 1)
    fixed = compare(parse_spec("keras.AdamW(learning_rate=eta, weight_decay=w)"),
                    "adamw(lr=eta, weight_decay=w2, eps=1e-7, eps_added_to=sqrt_v)")
    assert fixed.verdict == "proven"
    assert fixed.mapping[sp.Symbol("w2", nonnegative=True)] == sp.Symbol("w", nonnegative=True)


def test_optax_adamw_maps_onto_torch_adamw_with_weight_decay_unchanged():
    r = compare(parse_spec("optax.adamw(learning_rate=eta, weight_decay=w)"),
                "adamw(lr=eta2, weight_decay=w2)")
    w, eta = sp.Symbol("w", nonnegative=True), sp.Symbol("eta", nonnegative=True)
    assert r.verdict == "proven"
    assert r.mapping[sp.Symbol("w2", nonnegative=True)] == w
    assert r.mapping[sp.Symbol("eta2", nonnegative=True)] == eta


def test_tfa_weight_decay_is_keras_weight_decay_over_lr():
    r = compare(parse_spec("tfa.AdamW(weight_decay=w, learning_rate=eta)"),
                parse_spec("keras.AdamW(learning_rate=eta2, weight_decay=w2)"))
    w, eta = sp.Symbol("w", nonnegative=True), sp.Symbol("eta", nonnegative=True)
    assert r.verdict == "proven"
    assert r.mapping[sp.Symbol("w2", nonnegative=True)] == w / eta


BAD = (
    ("keras.AdamW(lr=1e-3)", "got an unexpected keyword argument 'lr'; its keywords: "
     "learning_rate, weight_decay"),
    ("foo.Adam()", "unknown framework 'foo'"),
    ("optax.adamx(1e-3)", "optax has no optimizer 'adamx' modelled"),
    ("keras.SGD(0.1, 0.9, False, 0.1, 5)", "takes 4 positional arguments but 5 were given"),
    ("optax.adam(0.1, learning_rate=0.2)", "got multiple values for argument 'learning_rate'"),
    ("keras.Adam(amsgrad=1)", "amsgrad must be True or False"),
    ("optax.chain(keras.SGD())", "optax's chain takes optax transforms"),
    ("optax.adam(learning_rate=optax.sgd)", "is a call, not a value"),
    ("keras.Adam(learning_rate=-1)", "Invalid learning rate: -1"),
    ("optax.chain(optax.add_decayed_weights(0.1))", "one scale_by_learning_rate"),
)


@pytest.mark.parametrize("text, words", BAD)
def test_bad_dialect_input_is_one_line_and_exit_2(text, words):
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", "unroll", text, "--steps",
                           "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_every_command_takes_a_dialect(tmp_path):
    # paddle's AdamW is torch's (its kernel's eps*sqrt(1 - b2^t) on the raw sqrt(v) is eps on
    # sqrt(v_hat)): compare proves it, crosscheck runs it against torch.optim.AdamW
    dialect = "paddle.AdamW(learning_rate=eta, weight_decay=w)"
    proc = _run("compare", dialect, "adamw(lr=eta2, weight_decay=w2)", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["mapping"]["w2"] == "w"
    proc = _run("unroll", dialect, "--steps", "1")
    assert proc.returncode == 0 and "theta_1" in proc.stdout, proc.stderr
    proc = _run("crosscheck", "paddle.AdamW(learning_rate=0.01)", "--steps", "5")
    assert proc.returncode == 0 and "result: agree" in proc.stdout, proc.stdout + proc.stderr
    claims = tmp_path / "claims.toml"
    claims.write_text('[[claim]]\nname = "fastai SGD decays before the step"\n'
                      'spec = "fastai.SGD(lr=eta, wd=w)"\nsteps = 1\nquantity = "theta"\n'
                      'equals = "theta_0*(1 - eta*w) - eta*g_1"\nexpect = "holds"\n')
    proc = _run("check", str(claims))
    assert proc.returncode == 0, proc.stdout + proc.stderr
