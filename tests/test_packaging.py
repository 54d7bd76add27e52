"""The project's own contracts: the README's commands are what CI runs; the symbolic core
works without torch."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quickstart() -> list:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\s*(pip install .+)$", section, flags=re.M)


def test_readme_quickstart_is_two_commands_and_ci_runs_the_second():
    commands = quickstart()
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1].strip() in [line.strip() for line in ci]


def test_symbolic_core_runs_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from optequiv.derive import compare\n"
            "r = compare('sgd(weight_decay=lam)', 'sgd(weight_decay=lam2, decay=decoupled)')\n"
            "assert r.equivalent is True\n"
            "import optequiv.proofs\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_installed_under_one_name(tmp_path):
    """The install puts optequiv.* into site-packages, never the generic names derive, numeric,
    proofs or benchmarks (run from outside the repository, where its folders are not on the
    path)."""
    code = ("import importlib.util, optequiv, optequiv.derive, optequiv.numeric, optequiv.proofs\n"
            "print([n for n in ('derive', 'numeric', 'proofs', 'benchmarks')"
            " if importlib.util.find_spec(n)])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
