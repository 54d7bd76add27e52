"""Checks of one engine verdict on a pair of the catalogue's new families against the exact
simulator tests/exact_catalogue.py (written from torch's documented algorithms and the Lion
paper, never from derive's stages). The engine's answer is read in its JSON form (the contract
of `compare --json`); each check returns a list of problems, empty when the verdict passed, so
the negative controls can run them on planted results.

  check_proven          at random admissible points of A's symbols (inside valid_when; at A's
                        branch values with the certificate's branch mapping), with B's symbols
                        the mapping leaves free drawn too, B under the mapping is an optimizer
                        torch builds and both runs give the same theta_k and the same state
                        (every torch state key the two share: B's equal to the certificate's
                        state_map of A's, or to A's own where the map does not name it) at
                        steps 1..REPLAY_STEPS, on drawn gradient sequences, in exact arithmetic;
  check_counterexample  the counterexample's loss (a polynomial, differentiated here) run closed
                        loop at its exact point: theta_A_k != theta_B_k, both as reported, and
                        both optimizers are ones torch builds; where it names a `quantity` (an
                        output state both hold, ASGD's ax: the entry's State.output), that
                        state's value_A != value_B at step k instead, both as reported;
  check_prefix          the certificate's prefix mapping makes steps 1..k-1 coincide on drawn
                        inputs (B without own symbols: as given), theta and the output states;
  check_open_loop       B without own symbols: the certificate's exact open-loop point (g_1..g_k)
                        is admissible for A (torch builds it there) and separates step k (in
                        the certificate's `quantity`: theta or an output state);
  check_no_mapping      at the certificate's point, no admissible value of B's own symbols makes
                        steps 1..k coincide: exact equations from the simulator at drawn
                        gradient sequences, theta's and the output states' (square roots, max,
                        min and sign as new symbols bound
                        by polynomials, as tests/verdict_checks.py does for SGD/Adam), solved by
                        a Groebner basis, each of B's branch values a case of its own; a
                        candidate must survive a battery of exact runs. Where the equations are
                        not polynomial (a Piecewise, a power with an unknown exponent) or too
                        large, the refutation is counted as `refuted*`: its "no mapping" is the
                        engine's word only.
With start="state" (the engine's --from state) every run begins at a drawn mid-run state
(strategies_catalogue.random_state), the same for A and B, and a counterexample's state_0 is
read back through the entries' state names.
"""
from __future__ import annotations

import random
import re
from fractions import Fraction

import sympy as sp

import exact_catalogue as EC
import exact_torch as X
from strategies_catalogue import (positions, random_point, random_state, substitute, symbols_of,
                                  torch_refusal)
from strategies_specs import H, parse
from verdict_checks import (Simulator, _holds, _mapping, _Poly, gradient_of, replay_mapping,
                            search_no_mapping)

REPLAY_STEPS = 5


# -- exact runs -----------------------------------------------------------------------------------

def _simulate(config, theta0, grads, steps, ops, state0):
    """exact_catalogue.simulate, from torch's fresh state or from `state0` (torch keys; the keys
    the configuration does not hold are ignored), using the simulator's own one-step map."""
    if state0 is None:
        return EC.simulate(config, theta0, grads, steps, ops=ops)
    c = EC._in_arith(EC.normalize(config), ops)
    state = EC.initial_state(c, ops)
    for key in state:
        if key in state0:
            state[key] = int(state0[key]) if key == "step" else ops.num(state0[key])
    theta = ops.num(theta0)
    out = [(theta, dict(state))]
    for i in range(len(grads) if steps is None else steps):
        g = grads(theta) if callable(grads) else grads[i]
        state, theta = EC.step(c, state, theta, ops.num(g), ops)
        out.append((theta, dict(state)))
    return out


def trajectory(config: dict, theta0, grads, steps=None, state0=None) -> list:
    """[(theta_k, state_k)] in exact rationals where the run needs no square root or irrational
    power (Lion, Rprop, Adamax, ...), else mpmath at 100 digits (exact_torch.same's margin).
    ValueError where a drawn mid-run state leaves the reals (centered RMSprop's v < gavg^2 is
    no state torch reaches)."""
    try:
        out = _simulate(config, theta0, grads, steps, EC.FRACTION, state0)
    except TypeError:
        out = _simulate(config, theta0, grads, steps, EC.MP, state0)
    if any(getattr(theta, "imag", 0) != 0 for theta, _ in out):
        raise ValueError("the run leaves the reals")
    return out


def state_keys(A, B, named: dict) -> dict:
    """The engine's state_0 values (`v_0`: 1/2) keyed by torch's state keys of A's and B's
    entries."""
    from optequiv.derive.catalogue import ENTRIES

    keys = {}
    for c in (A, B):
        keys.update({s.name: s.key for s in ENTRIES[c["family"]].states})
    return {keys[n[:-2]]: parse(v) for n, v in named.items()
            if n.endswith("_0") and n[:-2] in keys}


def draw_state(A, B, rng, start):
    from optequiv.derive.catalogue import ENTRIES

    if start != "state":
        return None
    return random_state([ENTRIES[A["family"]], ENTRIES[B["family"]]], [A, B], rng)


def _exact(x):
    """x as a Fraction when it is an exact rational (Fraction, int, sympy Rational), else None."""
    if isinstance(x, (Fraction, int)):
        return Fraction(x)
    if isinstance(x, sp.Basic) and x.is_Rational:
        return Fraction(int(x.p), int(x.q))
    return None


def same(a, b) -> bool:
    """Exact equality of rationals; otherwise equality at 100 digits within exact_torch.same's
    margin (which refuses a difference it cannot decide)."""
    ea, eb = _exact(a), _exact(b)
    if ea is not None and eb is not None:
        return ea == eb
    return X.same(a, b, X.MP)


def _sympy(x):
    e = _exact(x)
    if e is not None:
        return sp.Rational(e.numerator, e.denominator)
    if isinstance(x, sp.Basic):
        return x
    return sp.Float(X.mpmath.nstr(x, 100), 100)


_GENERIC = re.compile(r"\b([A-Za-z][A-Za-z0-9]*)_\{t-1\}")


def state_map(raw: dict) -> dict:
    """B's state name -> (expression, {symbol: A's state name}) from the certificate's text
    (`buf_{t-1}/2`: A's buf at the same step, halved)."""
    out = {}
    for name, text in (raw or {}).items():
        names = set(_GENERIC.findall(text))
        symbols = {n: sp.Symbol(f"state__{n}") for n in names}
        expr = parse(_GENERIC.sub(lambda m: f"state__{m.group(1)}", text))
        expr = expr.xreplace({H(f"state__{n}"): s for n, s in symbols.items()})
        out[name] = (expr, {s: n for n, s in symbols.items()})
    return out


def _keys(family: str) -> dict:
    """state symbol name -> torch's key, from the catalogue entry (its declared names only)."""
    from optequiv.derive.catalogue import ENTRIES

    return {s.name: s.key for s in ENTRIES[family].states} if family in ENTRIES else {}


def output_keys(A, B) -> set:
    """torch's keys of the states either entry declares an output (State.output: ASGD's average
    ax): results in their own right, which must coincide as theta must wherever both hold them."""
    from optequiv.derive.catalogue import ENTRIES

    return {s.key for c in (A, B) if c["family"] in ENTRIES
            for s in ENTRIES[c["family"]].states if s.output}


def _outputs_differ(A, B, sa: dict, sb: dict) -> list:
    """The output keys both runs hold whose values differ."""
    return [key for key in sorted(output_keys(A, B) & set(sa) & set(sb))
            if not same(sa[key], sb[key])]


def _quantity_key(A, B, cx: dict) -> tuple:
    """(torch's key of the quantity a refutation names, a problem or None): None for theta."""
    quantity = cx.get("quantity", "theta")
    if quantity == "theta":
        return None, None
    key = {**_keys(A["family"]), **_keys(B["family"])}.get(quantity)
    if key is None or key not in output_keys(A, B):
        return None, f"the refutation's quantity {quantity!r} is not an output state"
    return key, None


def compare_states(A, B, sa: dict, sb: dict, phi: dict, values: dict, k: int) -> list:
    """Every torch state key both hold at step k: B's value is phi(A's) where the certificate maps
    it, else A's own."""
    keys_a, keys_b = _keys(A["family"]), _keys(B["family"])
    name_of_b = {v: n for n, v in keys_b.items()}
    problems = []
    for key in sorted(set(sa) & set(sb)):
        name = name_of_b.get(key)
        if name in phi:
            expr, uses = phi[name]
            at = {s: _sympy(sa[keys_a[n]]) for s, n in uses.items() if n in keys_a
                  and keys_a[n] in sa}
            if len(at) != len(uses):
                problems.append(f"step {k}: state_map of {name} reads a state A does not hold")
                continue
            want = expr.xreplace({**values, **at})
            if want.free_symbols:
                problems.append(f"step {k}: state_map of {name} leaves {want.free_symbols}")
                continue
            how = f"state_map {name} -> {expr}"
        else:
            want, how = _sympy(sa[key]), "A's own"
        if not same(want, sb[key]):
            problems.append(f"step {k}: state {key!r} of B is {sb[key]}, {how} gives {want}")
    return problems


# -- the checks -----------------------------------------------------------------------------------

def admissible_point(A, rng, valid_when=(), tries=60) -> dict | None:
    from optequiv.derive.catalogue import ENTRIES

    # the families' branch-switching keys (momentum 0: no buffer), from the entry where it exists
    switches = ENTRIES[A["family"]].switches if A["family"] in ENTRIES \
        else ("momentum", "weight_decay")
    for _ in range(tries):
        point = random_point(symbols_of(A), positions(A), rng, switches)
        if torch_refusal(substitute(A, point)) is None \
                and all(_holds(c, point) for c in valid_when):
            return point
    return None


def replay(A, B, mapping, rng, steps, valid_when=(), phi=None, branches=(), points=3,
           sequences=2, start="start") -> list:
    """B under `mapping` equals A exactly at steps 1..steps (theta, and the state when phi)."""
    states = None if phi is None else \
        (lambda sa, sb, values, k: compare_states(A, B, sa, sb, phi, values, k))
    return replay_mapping(SIMULATOR, A, B, mapping, rng, steps, start, points, sequences,
                          valid_when, branches, states)


def check_proven(A, B, r: dict, rng, start="start") -> list:
    if r.get("equivalent") is not True:
        return [f"verdict proven with equivalent={r.get('equivalent')!r}"]
    if r.get("mapping") is None:
        return ["proven without a mapping"]
    cert = r.get("certificate") or {}
    try:
        return replay(A, B, _mapping(r["mapping"]), rng, REPLAY_STEPS, r.get("valid_when") or [],
                      phi=state_map(cert.get("state_map")), branches=cert.get("branches"),
                      start=start)
    except ValueError as err:
        return [str(err)]


def check_counterexample(A, B, r: dict) -> list:
    cx = r.get("counterexample")
    if not cx:
        return ["refuted without a counterexample"]
    k = int(cx.get("step", -1))
    problems = [] if k == r.get("first_divergent_step") else [
        f"counterexample at step {k}, first_divergent_step {r.get('first_divergent_step')}"]
    grad = gradient_of(str(cx.get("loss")))
    if grad is None:
        return problems + [f"counterexample loss {cx.get('loss')!r} is not a polynomial in theta"]
    point = {H(n): parse(v) for n, v in cx.get("hyperparameters", {}).items()}
    unset = (symbols_of(A) | symbols_of(B)) - set(point)
    if unset:
        return problems + [f"counterexample leaves {sorted(map(str, unset))} unset"]
    a_num, b_num = substitute(A, point), substitute(B, point)
    for name, c in (("A", a_num), ("B", b_num)):
        if torch_refusal(c):
            problems.append(f"counterexample's {name} is not an optimizer torch builds: "
                            f"{torch_refusal(c)}")
    theta0 = parse(cx["theta_0"])
    state0 = state_keys(A, B, cx["state_0"]) if cx.get("state_0") is not None else None
    key, wrong = _quantity_key(A, B, cx)
    if wrong:
        return problems + [wrong]
    try:
        ta, sa = trajectory(a_num, theta0, grad, k, state0)[k]
        tb, sb = trajectory(b_num, theta0, grad, k, state0)[k]
    except ValueError as err:
        return problems + [f"counterexample: {err} (no state torch reaches)"]
    if key is None and same(ta, tb):
        problems.append(f"counterexample does not separate: theta_A_{k} = theta_B_{k} = {ta}")
    if key is not None and (key not in sa or key not in sb or same(sa[key], sb[key])):
        problems.append(f"counterexample does not separate: state {key!r} at step {k} is "
                        f"{sa.get(key)} and {sb.get(key)}")
    reported = [("theta_A", ta), ("theta_B", tb)]
    if key is not None:
        reported += [("value_A", sa.get(key)), ("value_B", sb.get(key))]
    for name, mine in reported:
        if name in cx and not same(parse(cx[name]), mine):
            problems.append(f"counterexample's {name} = {cx[name]}, simulator {mine}")
    return problems


def check_open_loop(A, B, r: dict, rng, start="start") -> list:
    """B without own symbols: the certificate's exact point (gradients g_1..g_k, theta_0 and A's
    symbols where the difference needs them; the rest drawn, as the difference does not read
    them) separates the open-loop runs at step k."""
    cert = r.get("certificate") or {}
    k = r.get("first_divergent_step")
    point = {n: parse(v) for n, v in (cert.get("point") or {}).items()}
    if symbols_of(B) - symbols_of(A) or not any(n.startswith("g_") for n in point):
        return []
    grads = [point.get(f"g_{j}", sp.Integer(1)) for j in range(1, k + 1)]
    theta0 = point.get("theta_0", sp.Integer(1))
    values = {s: v for s, v in point.items() if not re.match(r"^\w+_\d+$", s)}
    at = {**(admissible_point(A, rng) or {}), **{H(n): v for n, v in values.items()}}
    a_num, b_num = substitute(A, at), substitute(B, at)
    if torch_refusal(a_num):  # a difference outside torch's domain refutes nothing
        return [f"certificate's point {cert.get('point')} is not admissible for A: "
                f"{torch_refusal(a_num)}"]
    state0 = draw_state(a_num, b_num, rng, start)
    if state0 is not None:  # the point's own state values; the difference reads no others
        state0.update(state_keys(A, B, {n: v for n, v in cert["point"].items()}))
    key, wrong = _quantity_key(A, B, cert)
    if wrong:
        return [wrong]
    try:
        ta, sa = trajectory(a_num, theta0, grads, state0=state0)[k]
        tb, sb = trajectory(b_num, theta0, grads, state0=state0)[k]
    except ValueError as err:  # a square root of a negative: torch's NaN, not a difference
        return [f"certificate's point {cert.get('point')}: {err} (no state torch reaches)"]
    if key is None and same(ta, tb):
        return [f"certificate's point {cert.get('point')} does not separate step {k}: "
                f"theta_A = theta_B = {ta}"]
    if key is not None and same(sa[key], sb[key]):
        return [f"certificate's point {cert.get('point')} does not separate step {k}: "
                f"state {key!r} is {sa[key]} in both"]
    return []


def check_prefix(A, B, r: dict, rng, start="start") -> list:
    k = r.get("first_divergent_step")
    own = symbols_of(B) - symbols_of(A)
    cert = r.get("certificate") or {}
    if own and "prefix_mapping" not in cert:
        return ["refutation without a certificate's prefix_mapping"]
    return replay(A, B, _mapping(cert.get("prefix_mapping")), rng, k - 1, start=start)


def check_result(A, B, r: dict, steps: int, start="start", seed=0) -> tuple:
    """(problems, status): status is the verdict; `refuted*` where check_no_mapping could not
    decide; `refuted (no counterexample)` where B has no own symbols and the certificate's
    open-loop point, checked, is the only evidence (counted and reported, not a failure)."""
    rng = random.Random(seed)
    verdict = r.get("verdict")
    if verdict == "proven":
        return check_proven(A, B, r, rng, start), verdict
    if verdict == "refuted":
        k = r.get("first_divergent_step")
        if r.get("equivalent") is not False or not isinstance(k, int) or not 1 <= k <= steps:
            return [f"refuted with equivalent={r.get('equivalent')!r}, step {k!r}"], verdict
        open_loop = check_open_loop(A, B, r, rng, start)
        problems = check_counterexample(A, B, r) + check_prefix(A, B, r, rng, start) + open_loop
        more, status = check_no_mapping(A, B, r, rng, start)
        tag = "*" if status == "unknown" else ""
        point = (r.get("certificate") or {}).get("point") or {}
        if not r.get("counterexample") and status == "n/a" and not open_loop \
                and any(n.startswith("g_") for n in point):
            # the exact open-loop point separates step k in the simulator: the verdict is
            # shown, only the closed-loop counterexample the contract also asks for is missing
            problems.remove("refuted without a counterexample")
            tag = " (no counterexample)"
        return problems + more, verdict + tag
    if verdict in ("undecided", "supported"):
        return ([] if r.get("reason") else [f"{verdict} without a reason"]), verdict
    return [f"unknown verdict {verdict!r}"], verdict


# -- no mapping through step k (B's own symbols) -------------------------------------------------

def poly_arith(poly: _Poly) -> EC.Arith:
    """exact_catalogue's arithmetic for exact equations (verdict_checks._Poly): square roots and
    max of values not both numbers become new symbols bound by polynomial equations; so do min
    and sign (s**3 = s: a sign is -1, 0 or 1; which one is left to the verification by exact
    simulation). A branch whose condition the values do not decide stays a Piecewise, a power
    with an unknown exponent stays a power: the system is then not polynomial, and undecided."""
    def minimum(a, b):
        return -poly.max(-a, -b)

    def sign(x):
        x = sp.sympify(x)
        if x.is_number and not x.free_symbols:
            return sp.sign(x)
        s = sp.Symbol(f"_g{len(poly.equations)}", real=True)
        poly.equations.append(s ** 3 - s)
        return s

    return EC.Arith("poly", X._sympy, poly.sqrt, poly.max, minimum, sign,
                    lambda b, e: X._sympy(b) ** X._sympy(e), X._sympy_zero,
                    lambda a, b: sp.Ne(a, b), EC._sym_pick, EC._lerp, lambda x: x)


def no_mapping_at(A, B, point, unknowns, k, rng, n_sequences=2, seconds=6.0,
                  start="start") -> tuple:
    """verdict_checks.search_no_mapping on the catalogue's simulator: each of B's branch values
    (an unknown standing only at B's entry's switches, momentum or weight_decay, set to 0) a
    case of its own, a candidate checked on 16 more exact runs."""
    return search_no_mapping(SIMULATOR, A, B, point, unknowns, k, start, rng, n_sequences,
                             battery=16, seconds=seconds)


def _branch(B, where, unknowns) -> list:
    from optequiv.derive.catalogue import ENTRIES

    switches = ENTRIES[B["family"]].switches if B["family"] in ENTRIES else ()
    return [u for u in unknowns if where.get(u) and all(key in switches for _, key in where[u])]


def _runs(A, B, theta0, grads, steps, state0):
    return trajectory(A, theta0, grads, steps, state0), \
        trajectory(B, theta0, grads, steps, state0), same


SIMULATOR = Simulator(
    substitute=substitute, symbols_of=symbols_of, positions=positions, random_point=random_point,
    admissible_point=lambda A, rng, valid_when: admissible_point(A, rng, valid_when),
    refusal=torch_refusal, draw_state=draw_state, runs=_runs,
    poly_runs=lambda c, theta0, grads, state0, poly: _simulate(c, theta0, grads, None,
                                                              poly_arith(poly), state0),
    outputs=lambda A, B: sorted(output_keys(A, B)),
    branch=_branch, failures=(ZeroDivisionError, ValueError), undecidable=(TypeError, ValueError),
    nonnegative=True)


def check_no_mapping(A, B, r: dict, rng, start="start") -> tuple:
    """(problems, status) at the certificate's point (symbols it leaves out drawn): 'none'
    confirmed, 'found' contradicted, 'unknown'; 'n/a' when B has no symbols of its own (the
    counterexample is then the whole proof)."""
    k = r.get("first_divergent_step")
    unknowns = symbols_of(B) - symbols_of(A)
    if not unknowns:
        return [], "n/a"
    cert = r.get("certificate") or {}
    problems = [] if "point" in cert else ["refutation without a certificate's point"]
    given = {H(n): parse(v) for n, v in (cert.get("point") or {}).items()}
    given = {s: v for s, v in given.items() if s in symbols_of(A)}
    point = {**(admissible_point(A, rng) or {}), **given}
    if torch_refusal(substitute(A, point)):
        problems.append(f"certificate's point {cert.get('point')} is not admissible for A")
        return problems, "unknown"
    status, detail = no_mapping_at(A, B, point, sorted(unknowns, key=str), k, rng, start=start)
    if status == "found":
        problems.append(f"at {point}, B's {detail} make steps 1..{k} coincide: not refuted at "
                        f"step {k}")
    return problems, status
