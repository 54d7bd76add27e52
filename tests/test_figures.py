"""`optequiv plot`: each figure written as PNG and SVG, opened and checked for size and ink; the
numbers behind them checked against what the theorems say, with a planted bug caught."""
from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import numpy
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is the extra optequiv[plot]")

from matplotlib.image import imread  # noqa: E402

from optequiv.numeric.figures import data  # noqa: E402
from optequiv.numeric.figures.commands import register, run_plot  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("weight-decay-trajectories", "weight-decay-effective", "weight-decay-heavy-ball")


@pytest.fixture(scope="module")
def plotted(tmp_path_factory):
    out = tmp_path_factory.mktemp("plots")
    assert run_plot(argparse.Namespace(output=str(out))) == 0
    return out


def ink(path: Path) -> float:
    """The share of pixels that are not background white."""
    pixels = imread(path)[..., :3]
    return float((pixels.min(axis=2) < 0.9).mean())


@pytest.mark.parametrize("name", NAMES)
def test_each_figure_is_a_real_picture(plotted, name):
    png, svg = plotted / f"{name}.png", plotted / f"{name}.svg"
    image = imread(png)
    height, width = image.shape[:2]
    assert width >= 800 and height >= 450, (width, height)
    assert 0.02 < ink(png) < 0.6  # neither blank nor a solid block
    assert svg.read_text().lstrip().startswith("<?xml") and "<path" in svg.read_text()
    assert not [p for p in plotted.iterdir() if p.name.startswith(".")]  # atomic: no temp left


def test_negative_control_a_blank_picture_has_no_ink(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    fig.savefig(tmp_path / "blank.png", dpi=150)
    assert ink(tmp_path / "blank.png") < 0.02


def test_trajectories_settle_where_the_rules_say():
    # f = (theta - 2)^2/2. L2's fixed point solves (theta - 2) + lam*theta = 0: 2/(1 + lam) =
    # 4/3. Decoupled: the buffer settles at (theta - 2)/(1 - mu), and lam*theta + (theta -
    # 2)/(1 - mu) = 0 gives 2/(1 + lam*(1 - mu)) = 40/21
    l2, decoupled = (data.trajectory(s)[-1] for s in data.SGD_PAIR)
    assert abs(l2 - 4 / 3) < 1e-6 and abs(decoupled - 40 / 21) < 1e-6


def test_effective_decay_is_lambda_over_root_v_hat_and_falls_with_scale():
    values = data.effective_decay(numpy.logspace(-1, 1, 5), lam=0.01)
    assert numpy.all(numpy.diff(values["adam_l2"]) < 0)  # bigger gradients, less decay
    assert numpy.allclose(values["adamw"], 0.01)


def test_heavy_ball_roots_match_the_theorem():
    roots = data.heavy_ball_radius([0.0, 0.9], [1e-3, 1e-2], lr=0.1)
    x = 0.1 * roots["decays"]
    assert numpy.allclose(roots["decoupled"], 1 - x)  # exactly (1 - lr*lambda) per step
    assert numpy.allclose(roots["L2"][0], 1 - x)  # no momentum: the same
    # with momentum 0.9, L2 shrinks about 1/(1 - mu) = 10 times faster at small lr*lambda
    assert 9 < (1 - roots["L2"][1][0]) / x[0] < 11


def test_negative_control_a_planted_decay_shows_in_the_roots(monkeypatch):
    from optequiv.proofs.theorems import heavy_ball

    monkeypatch.setattr(heavy_ball, "DECOUPLED", heavy_ball.L2)  # plant: decoupled is L2
    roots = data.heavy_ball_radius([0.9], [1e-3], lr=0.1)
    assert not numpy.allclose(roots["decoupled"], 1 - 1e-4)


def test_plot_is_a_registered_command_with_help():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["optequiv.commands"]["plot"] == \
        "optequiv.numeric.figures.commands:register"
    assert "matplotlib" in " ".join(project["project"]["optional-dependencies"]["plot"])
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert parser.parse_args(["plot", "-o", "x"]).output == "x"


def test_derive_never_imports_matplotlib():
    for path in (ROOT / "derive").glob("*.py"):
        assert "matplotlib" not in path.read_text(), path


def test_optequiv_plot_through_the_entry_point(tmp_path):
    """The command as users run it, found through the optequiv.commands group (in a checkout
    whose installed metadata predates the plugin, a stand-in dist-info declares it)."""
    import os
    import subprocess
    import sys
    from importlib.metadata import entry_points

    env = dict(os.environ)
    if "plot" not in {ep.name for ep in entry_points(group="optequiv.commands")}:
        info = tmp_path / "site" / "optequiv_plot-0.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: optequiv-plot\n"
                                       "Version: 0.0\n")
        (info / "entry_points.txt").write_text(
            "[optequiv.commands]\nplot = numeric.figures.commands:register\n")
        env["PYTHONPATH"] = str(tmp_path / "site")
    out = tmp_path / "figures"
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", "plot", "-o", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}.{ext}" for n in NAMES for ext in ("png", "svg"))
    out.joinpath("x.png").write_bytes(b"")  # a file where a folder is asked for
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", "plot", "-o", str(out / "x.png")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a directory" in \
        proc.stderr


def test_the_same_figures_are_the_same_bytes(plotted, tmp_path):
    """Regenerated documents differ only where something changed: no date, and SVG element ids
    from a fixed salt. The control: without the salt, matplotlib's ids differ between two
    renders of one figure, so the comparison can fail."""
    import io

    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    assert run_plot(argparse.Namespace(output=str(tmp_path))) == 0
    for name in NAMES:
        for ext in ("png", "svg"):
            assert (plotted / f"{name}.{ext}").read_bytes() == \
                (tmp_path / f"{name}.{ext}").read_bytes(), f"{name}.{ext}"
    unsalted = []
    for _ in range(2):
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([0, 1], [1, 0])
        FigureCanvasAgg(fig)
        buffer = io.BytesIO()
        with matplotlib.rc_context({"svg.hashsalt": None}):
            fig.savefig(buffer, format="svg", metadata={"Date": None})
        unsalted.append(buffer.getvalue())
    assert unsalted[0] != unsalted[1]
