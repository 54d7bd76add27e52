"""The figures as PNG and SVG, written atomically (derive.atomic): matplotlib's object API
(no pyplot, no global state), the Agg canvas, one function per figure."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from optequiv.derive.atomic import write_atomic

from . import data

DPI = 150


@dataclass(frozen=True)
class Rendered:
    name: str  # file stem: NAME.png and NAME.svg
    caption: str  # prose for the documents (formulas between dollars)
    png: Path
    svg: Path
    width: float  # fraction of the text width in the article


def _save(fig: Figure, out: Path, name: str, caption: str) -> Rendered:
    FigureCanvasAgg(fig)
    paths = []
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        # the same figure, the same bytes: no date, and SVG ids from a fixed salt (matplotlib
        # draws them at random otherwise), so regenerated documents diff only where they changed
        with rc_context({"svg.hashsalt": "optequiv"}):
            fig.savefig(buffer, format=fmt, dpi=DPI, bbox_inches="tight",
                        metadata={"Date": None} if fmt == "svg" else None)
        paths.append(write_atomic(out / f"{name}.{fmt}", buffer.getvalue()))
    return Rendered(name, caption, *paths, width=min(1.0, fig.get_figwidth() / 8.5))


def trajectories(out: Path) -> Rendered:
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    loss = data.LOSS
    for ax, (title, (l2, decoupled)) in zip(fig.subplots(1, 2), (
            ("SGD with momentum 0.9: " + r"$\gamma = 0.05$, $\lambda = 0.5$", data.SGD_PAIR),
            ("Adam / AdamW: " + r"$\gamma = 0.05$, $\lambda = 0.5$", data.ADAM_PAIR))):
        for spec, style, label in ((l2, "-", "L2 (coupled)"), (decoupled, "--", "decoupled")):
            ax.plot(data.trajectory(spec), style, lw=1.6, label=label)
        ax.axhline(loss["theta_star"], color="0.5", lw=0.8, ls=":", label="minimum of $f$")
        ax.set(title=title, xlabel="step $t$", ylabel=r"$\theta_t$")
        ax.title.set_fontsize(10)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(r"Same loss $f(\theta) = \frac{1}{2}(\theta - 2)^2$ and coefficients: "
                 "L2 and decoupled decay settle at different points", fontsize=10)
    caption = ("Trajectories $theta_t$ of the generated optimizers on $f(theta) = (theta - 2)^2/2$ "
               "from $theta_0 = 0$: L2 (solid) against decoupled decay (dashed) with the same "
               "coefficients, `sgd(lr=0.05, momentum=0.9, weight_decay=0.5)` and "
               "`adam(lr=0.05, weight_decay=0.5)` against their `decay=decoupled` and "
               "`adamw` twins. With momentum, decoupled decay settles nearer the minimum; for "
               "Adam, AdamW's decay is not divided by $sqrt(v_hat) + eps$.")
    return _save(fig, out, "weight-decay-trajectories", caption)


def effective_decay(out: Path) -> Rendered:
    scales = numpy.logspace(-4, 1, 26)
    values = data.effective_decay(scales, lam=0.01)
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.loglog(values["scales"], values["adam_l2"], "o-", ms=3,
              label=r"Adam + L2: $\lambda/(\sqrt{\hat v}+\epsilon)$")
    ax.loglog(values["scales"], values["adamw"], "--", label=r"AdamW: $\lambda$")
    ax.set(xlabel="gradient scale of the coordinate", ylabel="effective decay per unit lr",
           title=r"Decay each coordinate gets, $\lambda = 0.01$, after 200 steps")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", lw=0.3, color="0.85")
    caption = ("Effective decay per coordinate, $lam/(sqrt(v_hat) + eps)$ read from Adam + L2's "
               "own state after 200 steps, against AdamW's constant $lam$, for coordinates whose "
               "gradients have different scales: L2 decays the coordinates with large gradients "
               "least (for the smallest ones $v_hat$ is dominated by $lam*theta$ itself).")
    return _save(fig, out, "weight-decay-effective", caption)


def heavy_ball(out: Path) -> Rendered:
    mus = (0.0, 0.5, 0.9, 0.99)
    # lr*lambda from 1e-5 to 0.3 (lr = 0.1): below 1 - mu for the momenta shown but 0.5, where
    # the theta and buffer roots of decoupled decay would meet
    decays = numpy.logspace(-4, numpy.log10(3), 120)
    roots = data.heavy_ball_radius(mus, decays, lr=0.1)
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.subplots()
    x = roots["lr"] * roots["decays"]
    for i, mu in enumerate(mus):
        line, = ax.loglog(x, 1 - roots["L2"][i], "-", lw=1.5, label=rf"L2, $\mu = {mu:g}$")
        ax.loglog(x, 1 - roots["decoupled"][i], "--", lw=1.2, color=line.get_color(),
                  label="decoupled, every $\\mu$" if i == len(mus) - 1 else None)
    ax.set(xlabel=r"$\gamma\lambda$", ylabel=r"per-step shrink $1 - |z|_{\max}$",
           title="Heavy ball, gradient off: L2 (solid) and decoupled (dashed)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", lw=0.3, color="0.85")
    caption = ("Heavy ball with the gradient off: the per-step shrink $1 - abs(z)$ of $theta$, "
               "with $z$ the largest characteristic root (of the step's matrix, from the "
               "symbolic rules) among the modes that torch's start excites, against "
               "$lr*weight_decay$, for L2 (solid) and decoupled decay (dashed, one line for every "
               "momentum) at four momenta. L2 shrinks by about "
               "$lr*weight_decay/(1 - momentum)$ until its roots turn complex, and then only by "
               "$1 - sqrt(momentum)$; decoupled decay shrinks by exactly $lr*weight_decay$.")
    return _save(fig, out, "weight-decay-heavy-ball", caption)


FIGURES = (trajectories, effective_decay, heavy_ball)


def render_all(out) -> list:
    """Every figure into the folder `out`; the list of what was written, in order."""
    out = Path(out)
    return [make(out) for make in FIGURES]
