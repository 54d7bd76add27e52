"""Turn the engine's results into derivation blocks: the recurrences side by side, each step's
difference, the induction or the divergence, the certificate, the witness. Every displayed
equality carries the value it stands for, so derive.derivation checks it. The theorems and
`compare --format latex|markdown` both print comparisons through these blocks (derive.printers);
`compare`'s plain text is derive.explain's."""
from __future__ import annotations

import sympy as sp

from . import symbols as Y
from .compare import Comparison
from .derivation import Derivation, Equation, Inequality, Prose, Recurrence, label
from .explain import size
from .identity import simplest
from .latex import MathError, math_latex
from .rules import build_rule
from .trace import Assign, trace

SHOW = 160  # distinct operations above which a difference is described, not displayed


def parts(items, a_title: str, b_title: str) -> tuple:
    """A theorem made of parts, each (introduction, comparison, judge): the blocks (a heading and
    the comparison's derivation per part) and each part's verdict as judged against its claim."""
    blocks, verdicts = [], []
    for intro, comparison, judge in items:
        verdicts.append(judge(comparison))
        blocks.append(Prose(f"Part {len(verdicts)}. {intro}"))
        blocks += comparison_blocks(comparison, a_title, b_title)
    return blocks, verdicts


def recurrence(spec, title: str) -> Recurrence:
    return Recurrence(f"{title}: `{spec}`", trace(build_rule(spec), spec.hyper()))


def _mapping_words(mapping: dict) -> str:
    if not mapping:
        return "with no change of symbols"
    return "with " + ", ".join(f"${k} = {v}$" for k, v in
                                 sorted(mapping.items(), key=lambda kv: str(kv[0])))


def _difference(k: int, value: sp.Expr, reason: str, quantity: str = "theta"):
    """theta's difference at step k, or an output state's (ASGD's ax) where that is what parts."""
    q = quantity
    lhs = label(f"{q}^B_{k} - {q}^A_{k}")
    shown = simplest(value) if size(value) <= SHOW else None
    if shown is None:
        return Prose(f"At step {k} the difference ${q}^B_{k} - {q}^A_{k}$ is an expression "
                     f"with {size(value)} distinct operations ({reason}).")
    return Equation(lhs, shown, value, reason)


def comparison_blocks(c: Comparison, a_title: str = "A", b_title: str = "B") -> list:
    blocks = [recurrence(c.a, a_title), recurrence(c.b, b_title)]
    unknowns = Y.by_name(c.b.symbols() - c.a.symbols())
    start = ("torch's initial state ($t = 1$ on the first step, buffers created lazily)"
             if c.start == "start" else "a general mid-run state ($theta_0, buf_0, m_0, v_0, ...$)")
    blocks.append(Prose(
        f"Both runs start from {start} and see the same gradients $g_1, g_2, ...$ (open loop: as "
        "long as the iterates agree, they are evaluated at the same points). Every stage acts on "
        "one coordinate at a time, so one scalar coordinate suffices. "
        + (f"Symbols that appear only in {b_title} and may be mapped to expressions of "
           f"{a_title}'s: {', '.join(f'${u}$' for u in unknowns)}." if unknowns else
           f"{b_title} uses no symbol of its own, so no mapping is sought.")))
    if c.schedule:
        blocks.append(Prose("Per-step (scheduled) symbols, a new value at every step: "
                            + ", ".join(f"${s}$ (written ${s}_k$ at step $k$)"
                                        for s in c.schedule)))
    for record in c.trail:
        last = record is c.trail[-1]
        if last and c.verdict == "refuted":
            break
        blocks.append(_difference(record.k, record.difference, "open loop, before any mapping"))
        if record.solutions:
            steps = "Step 1 coincides" if record.k == 1 else f"Steps 1..{record.k} coincide"
            blocks.append(Prose(f"{steps} for all $theta_0$ and gradients exactly "
                                f"{_mapping_words(record.solutions[0])}."))
    if c.verdict == "proven":
        blocks += _induction_blocks(c, a_title, b_title)
    elif c.verdict == "refuted":
        blocks += _divergence_blocks(c, a_title, b_title)
    elif c.verdict == "supported":
        blocks.append(Prose("The induction step holds at every random high-precision point "
                            "tried, but SymPy found no symbolic proof: numerically supported, "
                            "not proven."))
        blocks += _induction_blocks(c, a_title, b_title)
    else:
        blocks.append(Prose(f"Undecided after {c.steps_checked} steps: no divergence and no "
                            "induction proof."))
    return blocks


def _induction_blocks(c: Comparison, a_title: str, b_title: str) -> list:
    proof = c.induction
    out = [Prose(f"Induction over the steps {_mapping_words(c.mapping)}. Take a generic step $t$ "
                 "from a joint state in which $theta$ agrees and "
                 + ("the state that $theta$ depends on corresponds as "
                    + ", ".join(f"${n}^B = {v}$" for n, v in proof.phi.items())
                    if proof.phi else "there is no state that $theta$ depends on")
                 + f". One step of each rule gives ({b_title}'s state written through the "
                   "correspondence):")]
    # what one step computes is shown as a recurrence, not as an equation: it is the rules'
    # output itself, and a check of it against itself would prove nothing; the checked claims
    # are the differences that follow
    out.append(Recurrence("", [
        Assign(label("theta^A_t"), proof.theta_a, f"one step of {a_title}"),
        Assign(label("theta^B_t"), proof.theta_b, f"one step of {b_title}")]))
    for what, diff, verdict in proof.checks:
        base = "(base)" in what
        base_name, _, index = what.replace(" (base)", "").rpartition("_")
        lhs = label(f"{base_name}^B_{index} - {base_name}^A_{index}")
        out.append(Equation(lhs, sp.Integer(0), diff,
                            "base case, after the first step" if base else "induction step"))
    out.append(Prose("The relation holds after the first step and is preserved by every step, "
                     "so the two trajectories coincide at every step $t$, for every loss."))
    if c.valid_when:
        model = f", or optequiv's model of {c.a.entry.class_name} does not hold " \
            f"({c.a.entry.model_reason})" if c.a.entry.model_constraints else ""
        out.append(Prose("Valid only when " + " and ".join(formula(w) for w in c.valid_when)
                         + f": elsewhere no mapping leaves {b_title} an optimizer torch would "
                         f"build{model}."))
    return out


def formula(value, limit: int = 240) -> str:
    """A SymPy value for prose: math where the prose formula language reads its str() (and it
    is short enough to print), code otherwise."""
    text = str(value)
    if len(text) <= limit:
        try:
            math_latex(text)
            return f"${text}$"
        except MathError:
            pass
    return f"`{text}`" if len(text) <= limit else f"`{text[:limit]} ...`"


def _certificate_blocks(c: Comparison) -> list:
    """Why no mapping makes the first steps coincide, in a form a reader can check."""
    cert = c.certificate or {}
    words = []
    if cert.get("why"):
        words.append(f"Certificate: {cert['why']}")
    if cert.get("point"):
        words.append("at " + ", ".join(f"${k} = {v}$" for k, v in cert["point"].items()))
    every = cert.get("equations", [])
    equations = every[:4]
    # the first four need not be the inconsistent ones: say that the system is all of them
    more = f" and {len(every) - 4} more (the certificate's JSON has them)" if len(every) > 4 else ""
    if equations:
        words.append("the equations " + ", ".join(formula(f"{e} = 0") for e in equations)
                     + more + " have no solution" if cert.get("unknowns") else
                     "where the difference is " + ", ".join(formula(e) for e in equations))
    return [Prose("; ".join(words) + ".")] if words else []


def _divergence_blocks(c: Comparison, a_title: str, b_title: str) -> list:
    k = c.first_divergent_step
    record = c.trail[-1]
    previous = c.trail[-2].solutions[0] if len(c.trail) > 1 and c.trail[-2].solutions else {}
    q = c.quantity
    parted = record.difference if q == "theta" else record.outputs[q]
    out = [_difference(k, parted.xreplace(previous),
                       f"open loop, {_mapping_words(previous)}" if previous else "open loop", q)]
    if q != "theta":
        out.append(Prose(f"$theta$ itself coincides at step {k}; the output state ${q}$ "
                         f"({c.b.entry.state(q).meaning}) is a result of {b_title} as $theta$ "
                         "is, so its difference counts."))
    if Y.by_name(c.b.symbols() - c.a.symbols()):
        out.append(Prose(f"No constant mapping of {b_title}'s symbols makes steps 1..{k} "
                         "coincide: the equations that would make this difference vanish for "
                         "all $theta_0$ and gradients have no solution. The first divergent step "
                         f"is {k}."))
    else:
        out.append(Prose(f"With no symbol of {b_title}'s own to map, this difference is not "
                         "identically zero (it is non-zero at an exact point, below). The first "
                         f"divergent step is {k}."))
    out += _certificate_blocks(c)
    if c.conditions:
        out.append(Prose("They do coincide at every step (each condition proven by a full "
                         f"comparison) when {a_title}'s hyperparameters satisfy: " + "; or ".join(
                             ", ".join(f"${s} = {v}$" for s, v in cond.items())
                             for cond in c.conditions) + "."))
    if c.counterexample and c.witness:
        ce = c.counterexample
        hyper = ", ".join(f"${s} = {v}$" for s, v in ce["hyperparameters"].items())
        out.append(Prose("Witness (exact arithmetic, closed loop): loss "
                         f"$f(theta) = {ce['loss']}$, "
                         f"$theta_0 = {ce['theta_0']}$, {hyper}."))
        q = ce.get("quantity", "theta")
        out.append(Inequality(label(f"{q}^A_{k}"), label(f"{q}^B_{k}"), c.witness[0],
                              c.witness[1], f"both runs on $f$, exact, step {k}"))
    return out


def comparison_derivation(c: Comparison) -> Derivation:
    """One comparison as a document of its own (`compare --format latex|markdown`)."""
    claim = (f"`{c.b}` traces the same trajectory as `{c.a}` at every step, for every loss, "
             "under some constant mapping of its own symbols.")
    notes = [Prose(n) for n in c.notes]
    return Derivation("compare", f"`{c.a}` versus `{c.b}`", claim, [str(c.a), str(c.b)],
                      c.verdict, comparison_blocks(c) + notes)
