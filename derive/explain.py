"""Plain-text explanations of `unroll` and `compare` results, for the command line.

Expressions are printed with SymPy's str(), the same strings `--json` reports, so that what a
reader copies from the text can be pasted into a claim or a spec.
"""
from __future__ import annotations

import sympy as sp

from . import symbols as Y
from .compare import Comparison
from .identity import simplest
from .latex import latex, latex_names
from .rules import build_rule
from .unroll import Unrolled

SHOW_LIMIT = 150  # operations above which a composed expression is summarised, not printed
EXPAND_TERMS = 120  # terms above which an expanded theta_k is not printed (nor computed)



def _named(spec) -> str:
    """A framework's call as the user wrote it, then the catalogue spec it is (derive.dialects)."""
    call = getattr(spec, "call", "")
    return f"{call} = {spec}" if call else str(spec)

def size(expr) -> int:
    """Operations in an expression, counting shared subtrees once (a DAG count): the composed
    Adam iterates repeat theta_{k-1} inside themselves, and a tree count would explode."""
    seen, stack, count = set(), [expr], 0
    while stack:
        node = stack.pop()
        if not isinstance(node, sp.Basic) or node in seen:
            continue
        seen.add(node)
        if node.args:
            count += 1
            stack.extend(node.args)
    return count


def printed_size(expr) -> int:
    """Operations in an expression as str() prints it: shared subtrees once per use (a tree
    count, which for a composed iterate grows exponentially with k where the DAG count grows
    linearly). Decides what is printed: a DAG of 60 operations can print as megabytes."""
    memo, stack = {}, [(expr, False)] if isinstance(expr, sp.Basic) else []
    while stack:  # iterative: a composed iterate nests deeper than Python's recursion limit
        node, ready = stack.pop()
        if node in memo:
            continue
        if not node.args:
            memo[node] = 0
        elif ready:
            memo[node] = min(1 + sum(memo[a] for a in node.args), 10**9)
        else:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in memo)
    return memo.get(expr, 0)


def _expansions(u: Unrolled) -> dict:
    """k -> theta_k expanded and collected by theta_0, the initial state and g_1 ... g_k, for
    the steps where it is a polynomial of at most EXPAND_TERMS terms. It is stepped through the
    recurrence, expanding each step's small formula of the previous step's expanded values:
    expanding the composed tree instead costs exponential time in k (SGD with momentum and
    decay: 58 s at 14 steps). The term count grows with k (about k**3/6 with momentum), so the
    expansion stops at the first step past the limit, before any step costs more."""
    free = [Y.theta(0)] + [v for v in u.initial.values() if isinstance(v, sp.Symbol)]
    current = {"theta": Y.theta(0), **u.initial}
    out = {}
    for step in u.steps:
        free.append(Y.grad(step.k))
        swap = {Y.theta(step.k - 1): current["theta"]}
        swap.update({Y.state(n, step.k - 1): v for n, v in current.items()
                     if n != "theta" and v is not None})
        nxt = {}
        for name, formula in step.recurrence.items():
            if formula is None or not sp.sympify(formula).is_polynomial(*swap):
                return out
            nxt[name] = sp.expand(sp.sympify(formula).xreplace(swap))
            if len(sp.Add.make_args(nxt[name])) > EXPAND_TERMS:
                return out
        current = nxt
        if not current["theta"].is_polynomial(*free):
            return out
        collected = sp.collect(current["theta"], free, evaluate=False)
        out[step.k] = sp.Add(*[sp.factor(c) * (1 if t == 1 else t) for t, c in collected.items()])
    return out


def describe_rule(unrolled: Unrolled) -> str:
    return " -> ".join(unrolled.rule.stage_names())


def unroll_text(u: Unrolled) -> str:
    spec = u.rule.spec
    loop = ("open loop: g_k are free symbols" if u.loop == "open"
            else "closed loop: g_k = grad_f(theta_{k-1}) for an unknown loss f")
    origin = ("torch's initial state (t = 1 on the first step, buffers created lazily)"
              if u.start == "start" else "a general mid-run state " +
              ", ".join(str(v) for v in u.initial.values() if v is not None))
    lines = [f"unroll {_named(spec)}", f"  stages: {describe_rule(u)}", f"  from {origin}",
             f"  {loop}; one scalar coordinate (every stage is element-wise)"]
    if u.schedule:
        lines.append("  per-step hyperparameters: " + ", ".join(f"{s} -> {s}_k" for s in u.schedule))
    expansions = _expansions(u) if u.loop == "open" else {}
    for step in u.steps:
        lines.append(f"step {step.k}:")
        for name, value in step.recurrence.items():
            if name == "theta":
                continue
            lines.append(f"  {name}_{step.k} = {value}")
        lines.append(f"  theta_{step.k} = {step.recurrence['theta']}")
        if u.loop == "open":
            expanded = expansions.get(step.k)
            if expanded is not None:
                lines.append(f"  theta_{step.k} = {expanded}    (in theta_0 and the gradients)")
            elif printed_size(step.theta) <= SHOW_LIMIT:
                lines.append(f"  theta_{step.k} = {step.theta}    (composed)")
            else:
                lines.append(f"  (composed theta_{step.k} has {size(step.theta)} distinct "
                             "operations; the recurrence above is exact)")
    return "\n".join(lines)


def _unroll_rows(u: Unrolled) -> list:
    from .printers import broken_rows

    pairs = [(Y.theta(step.k) if name == "theta" else Y.state(name, step.k), value)
             for step in u.steps for name, value in step.recurrence.items()]
    names = latex_names(set().union(*(sp.sympify(v).free_symbols for _, v in pairs)))
    return [row for target, value in pairs
            for row in broken_rows(latex(target, names), "=", value,
                                   lambda e: latex(e, names))]


def unroll_latex(u: Unrolled) -> str:
    """The recurrence of every step as one align* (long right-hand sides broken)."""
    return "\\begin{align*}\n" + " \\\\\n".join(_unroll_rows(u)) + "\n\\end{align*}"


def unroll_markdown(u: Unrolled) -> str:
    """The same as a Markdown page: what was unrolled, then one display-math block."""
    from .printers import prose_markdown

    loop = ("open loop: the gradients $g_k$ are free symbols" if u.loop == "open" else
            "closed loop: $g_k = nabla f(theta_{k-1})$ for an unknown loss $f$")
    origin = ("torch's initial state" if u.start == "start" else "a general mid-run state")
    head = (f"Unrolled `{u.rule.spec}` for {len(u.steps)} step(s) from {origin}, {loop}; "
            f"stages: {', '.join(u.rule.stage_names())}.")
    return (prose_markdown(head) + "\n\n$$\n\\begin{aligned}\n" + " \\\\\n".join(_unroll_rows(u))
            + "\n\\end{aligned}\n$$\n")


def _mapping_text(mapping: dict) -> str:
    if not mapping:
        return "the identity (no symbol of B needs mapping)"
    return ", ".join(f"{k} -> {v}" for k, v in sorted(mapping.items(), key=lambda kv: str(kv[0])))


def _short(expr) -> str:
    if printed_size(expr) > SHOW_LIMIT:
        return f"(an expression with {size(expr)} distinct operations)"
    return str(expr)


def compare_text(c: Comparison) -> str:
    lines = [f"A: {_named(c.a)}", f"B: {_named(c.b)}"]
    unknowns = Y.by_name(c.b.symbols() - c.a.symbols())
    lines.append("symbols only in B (to be mapped to expressions of A's): " +
                 (", ".join(map(str, unknowns)) if unknowns else "none"))
    if c.schedule:
        lines.append("per-step (scheduled) symbols: " + ", ".join(map(str, c.schedule)))
    origin = "torch's initial state" if c.start == "start" else "a general state"
    lines.append(f"from {origin}, open loop (g_k free)")
    lines.append("")
    for record in c.trail:
        diff = simplest(record.difference) if printed_size(record.difference) <= SHOW_LIMIT \
            else record.difference
        lines.append(f"step {record.k}: theta_B - theta_A = {_short(diff)}")
        if record.solutions:
            steps = "step 1 coincides" if record.k == 1 else f"steps 1..{record.k} coincide"
            lines.append(f"  {steps} under: {_mapping_text(record.solutions[0])}")
        else:
            steps = "step 1" if record.k == 1 else f"steps 1..{record.k}"
            lines.append(f"  no mapping makes {steps} coincide")
    lines.append("")
    if c.verdict == "proven":
        lines.append(f"EQUIVALENT for every step (proven by induction); mapping: "
                     f"{_mapping_text(c.mapping)}")
        lines += _valid_when_lines(c)
        lines += _induction_lines(c)
    elif c.verdict == "refuted":
        lines.append(f"NOT EQUIVALENT: first divergent step {c.first_divergent_step}")
        q = c.quantity
        if q != "theta":  # an output state parts while theta agrees (ASGD's average ax)
            lines.append(f"  what differs: {c.certificate['divergence']}")
        lines.append(f"  difference {q}_B - {q}_A at step {c.first_divergent_step}: "
                     f"{_short(c.difference)}")
        lines += _certificate_lines(c)
        if c.conditions:
            lines.append("  they coincide (proven, every step) when: " + "; ".join(
                ", ".join(f"{k} = {v}" for k, v in cond.items()) for cond in c.conditions))
        else:
            lines.append("  none of the restrictions tried (a symbol of A at 0, a root of the "
                         "difference's factors, a constant schedule) makes them coincide")
        if c.counterexample:
            ce = c.counterexample
            hyper = ", ".join(f"{k} = {v}" for k, v in ce["hyperparameters"].items())
            state = "".join(f", {k} = {v}" for k, v in ce.get("state_0", {}).items())
            lines.append(f"  counterexample (exact): loss f(theta) = {ce['loss']}, theta_0 = "
                         f"{ce['theta_0']}{state}, {hyper}")
            lines.append(f"    theta_A_{ce['step']} = {ce['theta_A']} (~{ce['theta_A_float']:.12g})")
            lines.append(f"    theta_B_{ce['step']} = {ce['theta_B']} (~{ce['theta_B_float']:.12g})")
            if "quantity" in ce:
                lines.append(f"    {ce['quantity']}_A_{ce['step']} = {ce['value_A']}")
                lines.append(f"    {ce['quantity']}_B_{ce['step']} = {ce['value_B']}")
    elif c.verdict == "supported":
        lines.append("NUMERICALLY SUPPORTED, NOT PROVEN: the induction step holds at every random "
                     f"high-precision point tried but has no symbolic proof; mapping: "
                     f"{_mapping_text(c.mapping)}")
        lines += _valid_when_lines(c)
        lines += _induction_lines(c)
    else:
        lines.append(f"UNDECIDED after {c.steps_checked} steps: {c.reason or 'no reason given'}")
    lines.append("")
    lines += [f"note: {n}" for n in c.notes]
    return "\n".join(lines)


def _valid_when_lines(c: Comparison) -> list:
    if not c.valid_when:
        return ["  valid for every admissible value of A's hyperparameters"]
    model = c.a.entry.model_reason if c.a.entry.model_constraints else ""
    return ["  valid only when " + " and ".join(map(str, c.valid_when)) +
            " (elsewhere no mapping leaves B an optimizer torch would build" +
            (", or optequiv's model does not hold: see the notes" if model else "") + ")"]


def _certificate_lines(c: Comparison) -> list:
    """Why no mapping makes steps 1..k coincide, in a form a reader can check."""
    cert = c.certificate or {}
    out = []
    if cert.get("prefix_mapping"):
        steps = c.first_divergent_step - 1
        out.append(f"  steps 1..{steps} coincide under " +
                   ", ".join(f"{k} -> {v}" for k, v in cert["prefix_mapping"].items()))
    if cert.get("why"):
        out.append(f"  certificate: {cert['why']}")
    if cert.get("point"):
        out.append("    at " + ", ".join(f"{k} = {v}" for k, v in cert["point"].items()))
    for eq in cert.get("equations", [])[:6]:
        out.append(f"    {_short_text(eq)} = 0")
    return out


def _short_text(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + " ..."


def _induction_lines(c: Comparison) -> list:
    proof = c.induction
    out = []
    if proof.phi:
        out.append("  state correspondence: " + ", ".join(
            f"{k}^B = {v}" for k, v in proof.phi.items()))
    ignored = [n for n in build_rule(c.b).state_names if n not in proof.relevant]
    if ignored:
        out.append("  state of B that neither theta nor an output depends on (left out of the "
                   "induction): "
                   + ", ".join(ignored))
    out.append(f"  generic step A: theta_t = {proof.theta_a}")
    out.append(f"  generic step B: theta_t = {proof.theta_b}")
    for what, diff, verdict in proof.checks:
        shown = 0 if verdict == "proven" else _short(diff)
        out.append(f"  {what}: B - A = {shown}  [{verdict}]")
    return out
