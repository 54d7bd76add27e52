"""The catalogue in the documents: each modelled optimizer's step, one stage per line, as its
catalogue entry's rule computes it (derive.trace), for torch's defaults and for each flag and
switch turned on. Nothing is typed by hand: an entry added to the catalogue gets its page."""
from __future__ import annotations

from fractions import Fraction

from optequiv.derive.catalogue import ENTRIES, NOT_MODELLED
from optequiv.derive.derivation import Derivation, Prose, Recurrence
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import make_spec
from optequiv.derive.symbols import hyper as hyper_symbol
from optequiv.derive.trace import trace

INTRO = ("Each optimizer of the catalogue as optequiv models it, one stage per line, from a "
         "general state at step $t$ ($u$ is the update direction). The recurrences are printed "
         "from the same rules that the proofs and the generated optimizers use.")


def variants(entry) -> list:
    """Specs to display: weight decay on (as a symbol); then the switches whose torch default
    is 0 (momentum) on as well; then each flag turned on with them, one at a time."""
    base = {}
    if entry.has("weight_decay"):
        base["weight_decay"] = hyper_symbol("weight_decay")
    out = [make_spec(entry.name, base)]
    switched = {name: hyper_symbol(name) for name in entry.switches
                if name != "weight_decay" and name not in entry.own
                and Fraction(entry.scalar(name).default) == 0}
    if switched:
        base = {**base, **switched}
        out.append(make_spec(entry.name, base))
    for flag, default in entry.flags.items():  # a flag such as nesterov needs its switch on
        if flag != "maximize" and not default:
            out.append(make_spec(entry.name, {**base, flag: True}))
    # optequiv's own conventions (another framework's), one at a time: each numeric key on,
    # each other value of a choice key, with a flag on where it alone would change nothing
    # (a max over v_hat needs amsgrad)
    others = [{key: hyper_symbol(key)} for key in entry.own if key in entry.switches]
    others += [{key: value} for key, values in entry.choices.items() for value in list(values)[1:]]
    for change in others:
        for flags in [{}] + [{f: True} for f, d in entry.flags.items() if not d]:
            spec = make_spec(entry.name, {**base, **flags, **change})
            if _shape(spec) != _shape(make_spec(entry.name, {**base, **flags})):
                out.append(spec)
                break
    return out


def _shape(spec) -> tuple:
    rule = build_rule(spec)
    return rule.stages, rule.state_names, tuple(rule.initial_state().items())


def page(entry) -> Derivation:
    torch_name = f"`{entry.torch_class}`" if entry.torch_class else "no torch class"
    d = Derivation(f"catalogue-{entry.name}", f"{entry.class_name} ({torch_name})",
                   f"The update rule of `{entry.name}`, as modelled from {entry.reference}.",
                   [str(s) for s in variants(entry)], "")
    for spec in variants(entry):
        d.add(Recurrence(f"`{spec}`", trace(build_rule(spec), spec.hyper())))
    return d


def pages() -> list:
    out = [page(e) for e in ENTRIES.values()]
    if NOT_MODELLED:
        out[-1].add(Prose("Not modelled, since they are not element-wise first-order rules: " +
                          "; ".join(f"{name} ({why})" for name, why in NOT_MODELLED.items()) +
                          "."))
    return out
