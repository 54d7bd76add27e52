"""numeric.variants: a spec's nearest variants (one convention away, derived from derive.spec's
keys, never from a list of optimizer names) and the proof that a variant is the spec itself at
given values."""
from __future__ import annotations

import pytest

from optequiv.derive.rules import build_rule
from optequiv.derive.spec import CHOICES, FLAGS, KEYS, parse_spec, with_changes
from optequiv.numeric.variants import nearest_variants, same_optimizer_at

SPECS = ["sgd(lr=0.1)", "sgd(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01)",
         "sgd(lr=0.1, momentum=0.9, nesterov=true)", "adam(lr=0.01)",
         "adam(lr=0.01, weight_decay=0.1, decoupled_weight_decay=true)",
         "adamw(lr=1e-4, weight_decay=0.1)", "adamw(amsgrad=true)"]


def conventions(spec) -> dict:
    return {key: spec.flag(key) if key in FLAGS else spec.choice(key)
            for key in KEYS[spec.name] if key in FLAGS or key in CHOICES}


def differing(a, b) -> list:
    ca, cb = conventions(a), conventions(b)
    return [k for k in ca if ca[k] != cb[k]]


@pytest.mark.parametrize("text", SPECS)
def test_each_variant_is_one_convention_away_and_another_rule(text):
    spec = parse_spec(text)
    variants = nearest_variants(spec)
    assert variants, text
    own = build_rule(spec)
    for v in variants:
        changed = differing(spec, v)
        # one convention; adam's decoupled_weight_decay is decay= spelt another way
        assert len(changed) == 1 or set(changed) == {"decay", "decoupled_weight_decay"}, \
            (str(v), changed)
        assert v.hyper(numeric=True) == spec.hyper(numeric=True)
        assert {k: x for k, x in v.given.items() if k not in FLAGS and k not in CHOICES} == \
            {k: x for k, x in spec.given.items() if k not in FLAGS and k not in CHOICES}
        rule = build_rule(v)
        assert (rule.stages, rule.state_names, rule.initial_state()) != \
            (own.stages, own.state_names, own.initial_state())


def test_every_other_value_of_every_convention_key_appears_where_it_changes_the_rule():
    spec = parse_spec("adamw(lr=1e-4, weight_decay=0.1)")
    variants = nearest_variants(spec)
    choices = spec.entry.all_choices  # CHOICES is the union's last word, not adamw's
    assert {v.decay for v in variants if differing(spec, v) == ["decay"]} == \
        set(choices["decay"]) - {spec.decay}
    assert {v.decay_scale for v in variants if differing(spec, v) == ["decay_scale"]} == \
        set(choices["decay_scale"]) - {spec.decay_scale}
    flipped = {differing(spec, v)[0] for v in variants
               if differing(spec, v) not in (["decay"], ["decay_scale"])}
    # every flag, and every other choice key one of whose values is another rule here
    # (adamw's amsgrad_max_of changes nothing without amsgrad)
    own = build_rule(spec).stages
    changing = {k for k in KEYS["adamw"] if k in choices and k not in ("decay", "decay_scale")
                and any(build_rule(with_changes(spec, **{k: value})).stages != own
                        for value in choices[k])}
    assert flipped == {k for k in KEYS["adamw"] if k in FLAGS} | changing


def test_conventions_that_change_nothing_or_that_torch_refuses_are_left_out():
    # weight_decay 0: every decay= is the same rule; momentum 0: no buffer, and no nesterov
    assert all(differing(parse_spec("sgd(lr=0.1)"), v) == ["maximize"]
               for v in nearest_variants("sgd(lr=0.1)"))
    assert not any("decay" in differing(parse_spec("adam(lr=0.01)"), v)
                   for v in nearest_variants("adam(lr=0.01)"))


def test_same_optimizer_at_proves_identity_and_refuses_differences():
    assert same_optimizer_at("adamw(lr=0.01)", "adamw(lr=0.01)")  # the control
    # a zero buffer without dampening starts at the first gradient, as torch's does
    assert same_optimizer_at("sgd(lr=0.1, momentum=0.9)", "sgd(lr=0.1, momentum=0.9, buffer=zero)")
    assert not same_optimizer_at("sgd(lr=0.1, momentum=0.9, dampening=0.5)",
                                 "sgd(lr=0.1, momentum=0.9, dampening=0.5, buffer=zero)")
    assert not same_optimizer_at("adamw(lr=1e-4, weight_decay=0.1)",
                                 "adamw(lr=1e-4, weight_decay=0.1, decay=after)")
    assert not same_optimizer_at("adamw(lr=0.01)", "adamw(lr=0.01, amsgrad=true)")


def test_same_optimizer_at_keeps_the_scheduled_lr_symbolic():
    # lr-scaled decay 0.1 at lr 0.01 is lr-independent decay 1e-3, but only while lr is 0.01
    scaled, independent = "adamw(lr=0.01, weight_decay=0.1)", \
        "adamw(lr=0.01, weight_decay=1e-3, decay=independent)"
    assert same_optimizer_at(scaled, independent, varying=())
    assert not same_optimizer_at(scaled, independent)
