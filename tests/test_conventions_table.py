"""README's table of the frameworks' conventions is what optequiv computes.

Every row's call, catalogue spec and conventions are recomputed (derive.dialects.table: parsing
only). The torch column is checked by the engine too, more cheaply than the minutes that
`translate` takes over every candidate: an exact call is compared with the row's spec and must be
proven equivalent (a new symbol the call leaves free would make that undecided, so it is caught);
a "parts at step k" row's nearest call must be refuted at exactly step k.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from optequiv.derive.compare import compare
from optequiv.derive.dialects import FRAMEWORKS, parse
from optequiv.derive.dialects.table import call_text, conventions
from optequiv.derive.translate import candidates

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "### The frameworks' conventions, as optequiv computes them"


def readme_rows() -> list:
    section = README.read_text().split(HEADING, 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in rows]


def computed_calls() -> list:
    return [t for name, f in FRAMEWORKS.items() if name != "torch" for d in f.dialects
            if (t := call_text(f, d)) is not None]


def test_every_dialect_has_its_row_in_order():
    assert [row[0].strip("`") for row in readme_rows()] == computed_calls()


@pytest.mark.parametrize("row", readme_rows(), ids=lambda row: row[0].strip("`"))
def test_a_row_is_what_the_engine_computes(row):
    call, spec_text, differs, torch_call = row
    spec = parse(call.strip("`"))
    assert spec_text.strip("`") == str(spec)
    shown = ", ".join(f"`{d}`" for d in conventions(spec)) or "nothing"
    assert differs == shown
    exact = re.fullmatch(r"`(torch\.optim\.[^`]+)`", torch_call)
    nearest = re.fullmatch(r"none; nearest `([^`]+)` parts at step (\d+)", torch_call)
    if exact:
        assert compare(spec, parse(exact.group(1)), want_conditions=False).verdict == "proven"
    elif nearest:
        c = compare(spec, parse(nearest.group(1)), want_conditions=False)
        assert c.verdict == "refuted" and c.first_divergent_step == int(nearest.group(2))
    else:  # torch has no class with this state (Lion)
        assert torch_call.startswith("none: torch has no call whose rule keeps the state of")
        assert candidates(spec, "torch") == []


def test_negative_control_a_wrong_row_is_caught():
    """A planted wrong convention and a planted wrong step must fail the row check."""
    row = next(r for r in readme_rows() if r[0] == "`keras.AdamW(learning_rate=eta, weight_decay=w)`")
    wrong = [row[0], row[1], row[2].replace("`eps_added_to=sqrt_v`, ", ""), row[3]]
    with pytest.raises(AssertionError):
        test_a_row_is_what_the_engine_computes(wrong)
    late = [row[0], row[1], row[2], re.sub(r"step \d+", "step 3", row[3])]
    with pytest.raises(AssertionError):
        test_a_row_is_what_the_engine_computes(late)
