"""Theorem: Keras 3's SGD momentum (the lr inside the buffer) is torch's at a constant lr only.

Keras 3 (keras/src/optimizers/sgd.py) and TF keep the step itself in the buffer, m = mu*m -
lr*g, w += m: Sutskever et al.'s v = mu*v + gamma*g with the sign kept in v. torch keeps the
gradients, b = mu*b + g, and scales the whole buffer by the lr in force. At a constant lr the two
are the same optimizer (m = -lr*b, computed by the induction); under a schedule every past
gradient keeps the lr of its own step in Keras and takes the current one in torch.
"""
from __future__ import annotations

import sympy as sp

from optequiv.derive import symbols as Y
from optequiv.derive.compare import compare
from optequiv.derive.derivation import Equation, Prose, label
from optequiv.derive.identity import zero_test
from optequiv.derive.narrate import comparison_blocks
from optequiv.derive.rules import build_rule
from optequiv.derive.spec import parse_spec
from optequiv.proofs.registry import PROVEN, REFUTED, Theorem, claim_divergent, \
    claim_equivalent, combine

TORCH = "sgd(lr=eta, momentum=mu)"
KERAS = "sgd(lr=eta, momentum=mu, buffer=lr_inside)"
TORCH_NESTEROV = "sgd(lr=eta, momentum=mu, nesterov=true)"
KERAS_NESTEROV = "sgd(lr=eta, momentum=mu, nesterov=true, buffer=lr_inside)"
KERAS_OWN = "sgd(lr=eta, momentum=nu, buffer=lr_inside)"
eta, mu, nu, r = Y.hyper("eta"), Y.hyper("mu"), Y.hyper("nu"), Y.hyper("r")


def _buffer_in_lr_units(c) -> str:
    """The induction's state correspondence is Keras's buffer = -lr*torch's buffer."""
    phi = c.induction.phi.get("buf") if c.induction is not None else None
    expected = -eta * Y.state("buf", "t-1")
    return PROVEN if phi is not None and zero_test(phi - expected).verdict == PROVEN else REFUTED


def build(theorem: Theorem):
    blocks, verdicts = [], []
    for index, (words, a, b) in enumerate((("heavy-ball momentum", TORCH, KERAS),
                                           ("Nesterov momentum", TORCH_NESTEROV,
                                            KERAS_NESTEROV))):
        c = compare(a, b)
        verdicts += [claim_equivalent(c, {}), _buffer_in_lr_units(c)]
        blocks.append(Prose(f"Part {index + 1}. Constant learning rate, {words}: torch's buffer "
                            "sums gradients, Keras's sums steps; the induction finds the "
                            "correspondence of the two buffers."))
        blocks += comparison_blocks(c, "torch", "Keras")
    c = compare(TORCH, KERAS, schedule=[eta])
    verdicts.append(claim_divergent(c, 2))
    blocks.append(Prose("Part 3. A learning rate $eta_k$ that changes every step (any "
                        "scheduler), the same $eta_k$ and $mu$ in both: the first step agrees, "
                        "the second does not."))
    blocks += comparison_blocks(c, "torch", "Keras")
    if c.difference is not None:
        # the term that parts them: the first gradient's share of the buffer at step 2, taken
        # at eta_1 by Keras and at eta_2 by torch
        term = mu * (Y.stepped(eta, 2) - Y.stepped(eta, 1)) * Y.grad(1)
        verdicts.append(zero_test(c.difference - term).verdict)
        blocks.append(Equation(label("theta^B_2 - theta^A_2"), term, c.difference,
                               "the first gradient's momentum share, at the lr of step 1 "
                               "(Keras) instead of the lr of step 2 (torch): zero exactly when "
                               "$mu = 0$ or $eta_2 = eta_1$"))
    else:
        verdicts.append(REFUTED)
    c = compare(TORCH, KERAS_OWN, schedule=[eta])
    verdicts.append(claim_divergent(c, 3))
    blocks.append(Prose("Part 4. Keras's momentum $nu$ free to be mapped: $nu = mu*eta_2/eta_1$ "
                        "repairs step 2, and step 3 then differs unless "
                        "$eta_1*eta_3 = eta_2^2$, a geometric schedule."))
    blocks += comparison_blocks(c, "torch", "Keras")
    if c.difference is not None:
        e1, e2, e3 = (Y.stepped(eta, k) for k in (1, 2, 3))
        factor = sp.cancel(c.difference * e1 / (mu * (e1 * e3 - e2**2)))
        free = not factor.free_symbols & {e1, e2, e3} and zero_test(factor).verdict == REFUTED
        verdicts.append(PROVEN if free else REFUTED)
        blocks.append(Equation(label("(theta^B_3 - theta^A_3)*eta_1/(mu*(eta_1*eta_3 - eta_2^2))"),
                               factor, c.difference * e1 / (mu * (e1 * e3 - e2**2)),
                               "free of the schedule and not zero: the gap at step 3 is "
                               "zero exactly when $eta_1*eta_3 = eta_2^2$ (or $mu = 0$)"))
    else:
        verdicts.append(REFUTED)
    verdict, shown = _geometric()
    verdicts.append(verdict)
    blocks.append(Prose("Part 5. A geometric schedule $eta_t = r*eta_{t-1}$ (torch's "
                        "ExponentialLR): Keras with momentum $nu = mu*r$ is torch with momentum "
                        "$mu$ at every step. Induction on the steps, with the relation "
                        "$buf^Keras_t = -eta_t*buf^torch_t$: it holds after step 1 (torch's "
                        "buffer is $g_1$, Keras's $-eta_1*g_1$), and one generic step of each "
                        "rule, at $eta_t = r*eta_{t-1}$, keeps it and gives the same "
                        "$theta_t$:"))
    blocks += shown
    blocks.append(Prose("Sutskever et al.'s momentum $v = mu*v + gamma*g$, $theta = theta - v$ "
                        "is Keras's buffer with the sign kept in $v$: the same statement holds "
                        "for it."))
    return theorem.derivation(combine(verdicts), blocks)


def _geometric() -> tuple:
    """(verdict, blocks): the base and the generic step of the induction for the geometric
    schedule, each a difference the engine's zero test decides."""
    rules = (build_rule(parse_spec(TORCH)), build_rule(parse_spec(KERAS_OWN)))
    previous, b = Y.stepped(eta, "t-1"), Y.state("buf", "t-1")
    hypers = ({"lr": eta, "momentum": mu, "dampening": 0, "weight_decay": 0},
              {"lr": eta, "momentum": mu * r, "dampening": 0, "weight_decay": 0})

    def steps(states, theta, g, lr):
        return [rule.step(state, theta, g, {k: sp.sympify(v).xreplace({eta: lr})
                                            for k, v in h.items()})
                for rule, state, h in zip(rules, states, hypers)]

    # base: step 1 from the fresh states, at eta_1; step: torch's buffer b, Keras's
    # -eta_{t-1}*b, at eta_t = r*eta_{t-1}
    first = Y.stepped(eta, 1)
    (st, tt), (sk, tk) = steps([r.initial_state("start") for r in rules], Y.theta(0),
                               Y.grad(1), first)
    checks = [("theta^Keras_1 - theta^torch_1", tk - tt),
              ("buf^Keras_1 + eta_1*buf^torch_1", sk["buf"] + first * st["buf"])]
    (st, tt), (sk, tk) = steps([{"buf": b}, {"buf": -previous * b}], Y.theta("t-1"),
                               Y.grad("t"), r * previous)
    checks += [("theta^Keras_t - theta^torch_t", tk - tt),
               ("buf^Keras_t + r*eta_{t-1}*buf^torch_t", sk["buf"] + r * previous * st["buf"])]
    blocks = [Equation(label(what), sp.expand(value), value,
                       "base, step 1" if what.endswith("_1") else "generic step")
              for what, value in checks]
    ok = all(zero_test(value).verdict == PROVEN for _, value in checks)
    return (PROVEN if ok else REFUTED), blocks


THEOREM = Theorem(
    name="keras-sgd-momentum",
    title="Keras SGD momentum (the lr inside the buffer) equals torch's only at a constant lr",
    claim="Keras 3's `SGD(learning_rate=eta, momentum=mu)` (Sutskever's $v = mu*v + gamma*g$) "
          "and torch's `SGD(lr=eta, momentum=mu)` take the same steps at every step when $eta$ "
          "is constant, heavy-ball and Nesterov, with Keras's buffer $= -eta$ times torch's; "
          "with a per-step $eta_k$ they agree at step 1 and differ from step 2 by "
          "$mu*(eta_2 - eta_1)*g_1$; with Keras's momentum $nu$ mapped, $nu = mu*eta_2/eta_1$ "
          "repairs step 2 only, and step 3 differs unless $eta_1*eta_3 = eta_2^2$; under a "
          "geometric schedule $eta_t = r*eta_{t-1}$, Keras with $nu = mu*r$ is torch at every "
          "step.",
    context="A recipe moved between Keras and torch keeps its momentum and its schedule; "
            "whether the runs stay the same depends on where each framework keeps the lr.",
    reference="keras/src/optimizers/sgd.py (Keras 3.15, update_step); Sutskever et al. "
              "(2013), On the importance of initialization and momentum in deep learning, eq. 1",
    specs=(TORCH, KERAS, TORCH_NESTEROV, KERAS_NESTEROV, KERAS_OWN),
    build=build,
)
