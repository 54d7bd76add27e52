"""What a new user meets first: --version, help on every option, `list`, numpy_step's state."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy
import pytest

from optequiv.derive.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "optequiv.derive", *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr


def options_without_help(parser: argparse.ArgumentParser, prog: str = "optequiv") -> list:
    """Every argument of the parser and of its sub-parsers, recursively, that --help would
    print with no explanation."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                missing += options_without_help(child, f"{prog} {name}")
            continue
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        if not (action.help or "").strip():
            missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_of_every_command_has_help():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"compare", "unroll", "list", "prove", "docs", "check", "crosscheck", "bench"} <= \
        set(commands.choices)
    assert options_without_help(parser) == []


def test_negative_control_an_option_without_help_is_found():
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers()
    sub.add_parser("cmd").add_argument("--quiet", action="store_true")
    assert options_without_help(parser) == ["optequiv cmd --quiet"]


def test_version_is_the_package_version():
    rc, out, _ = run("--version")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert rc == 0 and out.strip() == f"optequiv {version}"


def test_list_separates_torch_keys_and_prints_defaults_as_typed():
    rc, out, _ = run("list")
    assert rc == 0 and "(0.9, 0.999)" in out and "['0.9'" not in out
    # one block per entry: its unindented header line and the indented lines below it
    blocks = re.split(r"\n(?=\S)", out)
    for family in [b for b in blocks if "semantics)" in b.splitlines()[0]
                   or "no torch.optim class" in b.splitlines()[0]]:
        torch_part, _, own_part = family.partition("optequiv's own keys")
        torch_keys = [line.split()[0] for line in torch_part.splitlines()[2:] if line.strip()]
        assert "lr" in torch_keys and "decay" not in torch_keys and "buffer" not in torch_keys
        # the decay conventions are offered wherever torch has a weight_decay (not Rprop)
        assert ("    decay " in own_part) == ("weight_decay" in torch_keys)
    rc, out, _ = run("list", "--json")
    data = json.loads(out)
    assert data["sgd"]["keys"]["buffer"]["torch_key"] is False
    assert data["adam"]["keys"]["betas"]["typed"] == "(0.9, 0.999)"
    assert data["adam"]["keys"]["amsgrad"]["torch_key"] is True


def test_numpy_step_takes_none_as_an_empty_state():
    from optequiv.numeric import numpy_step

    theta, grad = numpy.array([1.0, -2.0]), numpy.array([0.5, 0.25])
    for spec in ("adam(lr=1e-2)", "sgd(lr=0.1, momentum=0.9)"):
        step = numpy_step(spec)
        from_none = step(None, theta, grad)
        from_init = step(step.init(theta), theta, grad)
        assert numpy.array_equal(from_none[1], from_init[1])
        assert from_none[0].keys() == from_init[0].keys()
    with pytest.raises(TypeError, match="state must be a dict"):
        numpy_step("adam")([0.0], theta, grad)


def test_readme_documents_the_options_people_ask_about():
    readme = (ROOT / "README.md").read_text()
    assert "--fused" in readme and "--no-pdf" in readme and "--version" in readme
    assert "refuted" in readme.split("## What it finds")[1].split("\n## ")[0]


def test_readme_catalogue_table_is_the_catalogue():
    """README's table of the catalogue lists every entry, its torch class and torch's state
    keys, and names every optimizer that is not modelled (a new entry must be added there)."""
    from pathlib import Path

    from optequiv.derive.catalogue import ENTRIES, NOT_MODELLED

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("### The catalogue", 1)[1].split("\n#", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines()
            if line.startswith("| `")}
    assert set(rows) == set(ENTRIES)
    for name, e in ENTRIES.items():
        assert (e.torch_class or "none") in rows[name]
        assert all(f"`{s.key}`" in rows[name] for s in e.states)
    assert all(f"`{name}`" in section for name in NOT_MODELLED)
