"""Property-based fuzzing of the spec language, the claims format and the command line (issue 13).

Hypothesis builds hostile input that follows the grammar closely enough to get past the first
check (optimizer names, torch's keys, arithmetic with huge literals, towers of powers and exp,
reserved and generated names, NaN and infinity spellings, control characters, TOML where chains),
runs the CLI in-process, and requires what the contract says: exit 0, 1 or 2, never a traceback
nor an internal error, and a refusal is one line on stderr. The bound on each run is the
command's own time budget ($OPTEQUIV_TIME_LIMIT, enforced in derive.budget): a run past it exits
2 with "gave up", which is allowed; a run that the budget cannot stop would hang the test, which
is the failure. The examples are few and small, so the module stays within about a minute.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optequiv.derive.cli import main

BUDGET = "3"  # seconds per command: the code's limit, not a test timeout
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

NAMES = st.sampled_from(["sgd", "adam", "adamw", "SGD", "rmsprop", ""])
KEYS = st.sampled_from(["lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize",
                        "betas", "eps", "amsgrad", "decoupled_weight_decay", "decay", "buffer",
                        "foreach", "lr "])
IDENTIFIERS = st.sampled_from(["eta", "eta_1", "eta_t", "lam", "mu", "x", "theta_0", "g_1",
                               "lr", "beta1", "nan", "inf", "Infinity", "true", "False", "E",
                               "exp", "t_0", "m_1", "_", "a" * 60])
NUMBERS = st.sampled_from(["0", "1", "2", "0.5", "1e-3", "1e400", "1e-400", "1e401", "10",
                           "1000", "9" * 40, "9" * 41, ".5", "1.", "0e0"])
FUNCTIONS = st.sampled_from(["sqrt", "abs", "min", "max", "exp", "log", "sign", "eval",
                             "__import__"])
JUNK = st.sampled_from(["^", "\n", "\x1b[31m", "\x00", "λ", ";", "'", '"', "[", "]", "{", "}",
                        "#", "\\", " ", "\t", "**", "//", ",", "=", "(", ")"])


def _expr(leaves):
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**"]), inner).map("".join),
            st.tuples(FUNCTIONS, inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(["min", "max"]), inner, inner)
            .map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"-{e}"),
            st.tuples(inner, JUNK).map("".join),
        ),
        max_leaves=8)


EXPRESSIONS = _expr(st.one_of(NUMBERS, IDENTIFIERS))
VALUES = st.one_of(EXPRESSIONS, st.tuples(EXPRESSIONS, EXPRESSIONS).map(lambda t: f"({t[0]}, {t[1]})"),
                   st.sampled_from(["true", "false", "l2", "decoupled", "independent", "after",
                                    "zero", "torch"]))
SPECS = st.one_of(
    st.tuples(NAMES, st.lists(st.tuples(KEYS, VALUES), max_size=4)).map(
        lambda t: t[0] + "(" + ", ".join(f"{k}={v}" for k, v in t[1]) + ")"),
    NAMES,
    st.text(max_size=40),
)


def contract(capsys, argv) -> int:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("optequiv: "), (argv, err)
    assert "\x1b" not in err, (argv, err)
    return code


@pytest.fixture(autouse=True)
def budget(monkeypatch):
    monkeypatch.setenv("OPTEQUIV_TIME_LIMIT", BUDGET)


@settings(max_examples=120, **SETTINGS)
@given(spec=SPECS, steps=st.sampled_from(["1", "2", "0", "65", "x", "-1"]),
       extra=st.lists(st.sampled_from([["--loop", "closed"], ["--from", "state"],
                                       ["--format", "latex"], ["--schedule", "eta"],
                                       ["--schedule", "lr,eta_1"]]), max_size=2))
def test_unroll_on_hostile_specs(capsys, spec, steps, extra):
    contract(capsys, ["unroll", spec, "--steps", steps, *sum(extra, [])])


@settings(max_examples=40, **SETTINGS)
@given(a=SPECS, b=SPECS, steps=st.sampled_from(["1", "2", "3"]),
       extra=st.lists(st.sampled_from([["--json"], ["--from", "state"], ["--schedule", "eta"]]),
                      max_size=2))
def test_compare_on_hostile_specs(capsys, a, b, steps, extra):
    contract(capsys, ["compare", a, b, "--steps", steps, *sum(extra, [])])


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


CLAIM_KEYS = st.sampled_from(["name", "spec", "start", "steps", "quantity", "equals", "expect",
                              "names", "where", "bogus"])
CLAIM_VALUES = {
    "name": st.text(max_size=30).map(_toml_string),
    "spec": SPECS.map(_toml_string),
    "start": st.sampled_from(['"start"', '"state"', '"later"', "1"]),
    "steps": st.sampled_from(["1", "2", "8", "9", "0", "-1", "true", '"2"', "1.5"]),
    "quantity": st.sampled_from(['"theta"', '"buf"', '"m"', '"v"', '"vmax"', '"t"', '"x"']),
    "equals": EXPRESSIONS.map(_toml_string),
    "expect": st.sampled_from(['"holds"', '"fails"', '"maybe"']),
    "names": st.sampled_from(['{ theta = "theta_0", grad = "g_1" }', '{ a = "b c" }', '"x"',
                              '{ theta = "theta_9" }', "{ exp = \"g_1\" }"]),
    "where": st.lists(st.tuples(st.sampled_from(["a0", "a1", "a2", "m_hat", "g_1", "exp"]),
                                EXPRESSIONS), max_size=4)
    .map(lambda defs: "{ " + ", ".join(f"{k} = {_toml_string(v)}" for k, v in dict(defs).items())
         + " }"),
    "bogus": st.just("1"),
}


@st.composite
def claims_files(draw):
    tables = []
    for _ in range(draw(st.integers(1, 2))):
        keys = draw(st.lists(CLAIM_KEYS, unique=True, min_size=3, max_size=9))
        keys = sorted(set(keys) | {"name", "spec", "equals", "expect"}) \
            if draw(st.booleans()) else keys
        body = "\n".join(f"{k} = {draw(CLAIM_VALUES[k])}" for k in keys)
        tables.append("[[claim]]\n" + body)
    text = "\n\n".join(tables) + "\n"
    if draw(st.integers(0, 9)) == 0:  # plain junk now and then
        text = draw(st.sampled_from(["", "[claim]\n", "claim = 1\n", "[[claim]\n", "\xff\n",
                                     "x = " + "[" * 3000 + "]" * 3000 + "\n"]))
    return text


@settings(max_examples=60, **SETTINGS)
@given(body=claims_files(), as_json=st.booleans())
def test_check_on_hostile_claims_files(capsys, tmp_path_factory, body, as_json):
    path = tmp_path_factory.mktemp("claims") / "claims.toml"
    path.write_bytes(body.encode("utf-8", "surrogatepass"))
    contract(capsys, ["check", str(path), *(["--json"] if as_json else [])])


@settings(max_examples=40, **SETTINGS)
@given(argv=st.lists(st.one_of(st.sampled_from(["list", "unroll", "compare", "check", "prove",
                                                "--json", "--steps", "--all", "-o", "--help",
                                                "--format", "latex", "docs", "--no-pdf", ""]),
                               st.text(max_size=10)), max_size=5))
def test_the_command_line_on_hostile_argument_lists(capsys, monkeypatch, tmp_path_factory, argv):
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # docs -o x writes here, nowhere else
    if "--help" in argv or "-h" in argv:  # argparse prints help and exits 0, unless an
        try:                                 # error comes first
            contract(capsys, argv)
        except SystemExit as done:
            assert done.code == 0
        return
    if "prove" in argv or "docs" in argv:  # the whole catalogue: minutes, not fuzz material
        argv = [a for a in argv if a not in ("prove", "docs")] or ["list"]
    contract(capsys, argv)
