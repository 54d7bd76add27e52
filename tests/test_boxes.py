"""Refutations decided by an interval cover of the betas' box (derive.boxes), against an oracle.

The issue's cross-framework question, `compare 'keras.AdamW(learning_rate=eta, weight_decay=w)'
'adamw(lr=eta, weight_decay=w2)'`, leaves B's betas free inside square roots. The engine refutes
it at step 2 with a cover of [0, 1]^2. The oracle here is independent of derive: Keras 3's and
torch's documented AdamW written out in exact arithmetic, and a proof by hand that it checks:
  - step 1 forces eps_B = eps_K / sqrt(1 - beta2_K) and w2 = w (two gradients, two equations);
  - with g_1 = 0, torch's step 2 is eta*a*g/(g + c) for g > 0, a = sqrt(1 + b2)/(1 + b1),
    c = eps_B*sqrt(1 + b2): its values at g = 1 and g = 2 fix a and c (a linear system), so b2
    and then b1 are unique; the simulator confirms they fit, then shows that at g_1 = 1, g_2 = 0
    the two differ. No (b1, b2) exists, as the engine says.
"""
from __future__ import annotations

from fractions import Fraction

import mpmath
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from optequiv.derive import boxes
from optequiv.derive.compare import compare
from optequiv.derive.spec import parse_spec

R = sp.Rational
B1K, B2K, EPSK = R(9, 10), R(999, 1000), R(1, 10**7)  # keras.AdamW's defaults
EXAMPLE = ("keras.AdamW(learning_rate=eta, weight_decay=w)", "adamw(lr=eta, weight_decay=w2)")


def torch_adamw(lr, wd, b1, b2, eps, theta, grads):
    """torch.optim.AdamW as documented: decay, moments, bias-corrected ratio (exact: every
    input made a SymPy number, so no int / int turns into a float)."""
    lr, wd, b1, b2, eps, theta = map(sp.sympify, (lr, wd, b1, b2, eps, theta))
    grads = [sp.sympify(g) for g in grads]
    m = v = sp.S.Zero
    for t, g in enumerate(grads, 1):
        theta = theta * (1 - lr * wd)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        theta = theta - lr * (m / (1 - b1**t)) / (sp.sqrt(v / (1 - b2**t)) + eps)
    return theta


def keras_adamw(lr, wd, theta, grads, b1=B1K, b2=B2K, eps=EPSK):
    """Keras 3 AdamW (optimizers/adamw.py over adam.py): decay first, eps on the raw sqrt(v)."""
    lr, wd, b1, b2, eps, theta = map(sp.sympify, (lr, wd, b1, b2, eps, theta))
    grads = [sp.sympify(g) for g in grads]
    m = v = sp.S.Zero
    for t, g in enumerate(grads, 1):
        theta = theta - theta * wd * lr
        alpha = lr * sp.sqrt(1 - b2**t) / (1 - b1**t)
        m, v = m + (g - m) * (1 - b1), v + (g * g - v) * (1 - b2)
        theta = theta - m * alpha / (sp.sqrt(v) + eps)
    return theta


def zero(x) -> bool:
    return abs(sp.N(x, 80)) < sp.Float(10) ** -60


@pytest.fixture(scope="module")
def example():
    return compare(parse_spec(EXAMPLE[0]), EXAMPLE[1])


def test_the_issue_example_is_refuted_at_step_2_by_a_cover_of_the_betas(example):
    r = example.to_json()
    assert (r["verdict"], r["first_divergent_step"]) == ("refuted", 2)
    cert = r["certificate"]
    assert cert["prefix_mapping"] == {"eps": "sqrt(10)/1000000", "w2": "w"}
    assert sorted(cert["unknowns"]) == ["beta1", "beta2"] and "boxes cover it" in cert["why"]
    # the boxes tile [0, 1]^2: inside it, and their areas add up to 1 (bisection never overlaps)
    area = Fraction(0)
    for b in cert["boxes"]:
        (lo1, hi1), (lo2, hi2) = ([Fraction(x) for x in b["box"][n]] for n in ("beta1", "beta2"))
        assert 0 <= lo1 < hi1 <= 1 and 0 <= lo2 < hi2 <= 1
        assert isinstance(b["equation"], int) and b["equation"] >= 0
        area += (hi1 - lo1) * (hi2 - lo2)
    assert area == 1


def no_betas_exist(b1k, b2k, epsk) -> bool:
    """The oracle's proof (module docstring) that no betas, eps, w2 of torch's AdamW follow
    Keras' AdamW at (b1k, b2k, epsk) through step 2: True when it goes through."""
    eta, w = R(1, 10), R(1, 5)  # any admissible point of A refutes a constant mapping
    eps, w2 = sp.symbols("eps w2", positive=True)
    b1, b2 = sp.symbols("beta1 beta2", nonnegative=True)

    def keras(th, gs):
        return keras_adamw(eta, w, th, gs, b1k, b2k, epsk)
    # step 1 forces eps and w2
    step1 = [torch_adamw(eta, w2, b1, b2, eps, th, [1]) - keras(th, [1]) for th in (0, 1)]
    forced = sp.solve(step1, [eps, w2], dict=True)
    assert forced == [{eps: epsk / sp.sqrt(1 - b2k), w2: w}]
    e_b = forced[0][eps]
    # g_1 = 0: keras's step 2 at g = 1, 2 gives y = eta*a*g/(g + c): solve for a, c
    y1, y2 = (-keras(0, [0, g]) / eta for g in (1, 2))
    a, c = sp.symbols("a c")
    (sol,) = sp.solve([a - y1 * (1 + c), 2 * a - y2 * (2 + c)], [a, c], dict=True)
    s = sol[c] / e_b  # sqrt(1 + b2)
    assert zero(s**2 - 1)  # b2 = 0: its only value, then b1's
    b1_star = s / sol[a] - 1
    for g in (1, 2):  # the forced betas do fit g_1 = 0
        assert zero(torch_adamw(eta, w, b1_star, 0, e_b, 0, [0, g]) - keras(0, [0, g]))
    # ... and nothing else: at g = (1, 0) they part (or b1 is outside [0, 1) already)
    return not 0 <= sp.N(b1_star, 50) < 1 or \
        not zero(torch_adamw(eta, w, b1_star, 0, e_b, 0, [1, 0]) - keras(0, [1, 0]))


def test_the_oracle_agrees_that_no_betas_exist():
    assert no_betas_exist(B1K, B2K, EPSK)


@settings(max_examples=3, deadline=None)
@given(st.sampled_from([R(1, 2), R(4, 5), R(9, 10)]), st.sampled_from([R(9, 10), R(99, 100)]),
       st.sampled_from([R(1, 1000), R(1, 10**7)]))
def test_drawn_keras_adamw_betas_are_refuted_as_the_oracle_proves(b1k, b2k, epsk):
    a = (f"keras.AdamW(learning_rate=eta, weight_decay=w, beta_1={float(b1k)!r}, "
         f"beta_2={float(b2k)!r}, epsilon={float(epsk)!r})")
    r = compare(parse_spec(a), EXAMPLE[1], want_witness=False)
    assert (r.verdict, r.first_divergent_step) == ("refuted", 2)
    assert r.to_json()["certificate"].get("boxes")
    assert no_betas_exist(b1k, b2k, epsk)


def test_the_counterexample_replays_on_the_oracle(example):
    ce = example.counterexample
    h = {k: sp.sympify(v) for k, v in ce["hyperparameters"].items()}
    theta, grads_a, grads_b = sp.Rational(ce["theta_0"]), [], []
    assert ce["loss"] == "theta**2/2"
    ta = tb = theta
    for _ in range(ce["step"]):  # closed loop: the gradient of theta**2/2 is theta
        grads_a.append(ta)
        grads_b.append(tb)
        ta = keras_adamw(h["eta"], h["w"], theta, grads_a)
        tb = torch_adamw(h["eta"], h["w2"], h["beta1"], h["beta2"], h["eps"], theta, grads_b)
    assert zero(ta - sp.sympify(ce["theta_A"])) and zero(tb - sp.sympify(ce["theta_B"]))
    assert not zero(ta - tb)


def test_betas_that_do_map_are_found_not_refuted():
    r = compare("adamw(lr=eta, betas=(0.8, 0.9), weight_decay=w)", "adamw(lr=eta, weight_decay=w2)")
    assert r.verdict == "proven"
    assert {str(k): v for k, v in r.mapping.items()} == {"w2": sp.Symbol("w", nonnegative=True),
                                                         "beta1": R(4, 5), "beta2": R(9, 10)}


# -- the cover itself ----------------------------------------------------------------------------

x, y = sp.symbols("x y", nonnegative=True)


def test_a_common_zero_in_the_box_is_never_covered():
    # negative control: x = 1/4, y = 1/4 solves both, so no cover may exist
    assert boxes.cover([x - y, sp.sqrt(y) - R(1, 2)], [x, y], seconds=2) is None
    assert boxes.cover([x - y, sp.sqrt(y) - R(3, 2)], [x, y], seconds=2) is not None


def test_a_removable_zero_at_the_edge_is_cancelled_first():
    # (1 - y**2)/(1 - y) is 1 + y: tidy removes the 0/0 at y = 1, so the cover closes
    e = sp.sqrt((1 - y**2) / (1 - y)) - R(1, 2)
    assert boxes.refute([e], [y], {}) is not None


leaves = st.sampled_from([x, y, R(1, 3), R(-2, 7), R(5)])


@st.composite
def expressions(draw, depth=3):
    if depth == 0 or draw(st.booleans()):
        return draw(leaves)
    a, b = draw(expressions(depth=depth - 1)), draw(expressions(depth=depth - 1))
    return draw(st.sampled_from([a + b, a * b, sp.sqrt(a * a + b), sp.Abs(a - b), 1 / (a + 3)]))


def _interval(lo: Fraction, hi: Fraction):
    """[lo, hi] rounded outward, as derive.boxes builds its boxes."""
    iv = mpmath.iv
    return iv.mpf([(iv.mpf(lo.numerator) / lo.denominator).a,
                   (iv.mpf(hi.numerator) / hi.denominator).b])


small = st.fractions(0, 1, max_denominator=1000)


@settings(max_examples=150, deadline=None)
@given(expressions(), small, small, small.filter(lambda f: f > 0))
def test_an_interval_encloses_every_value_on_its_box(e, fx, fy, width):
    lo_x, lo_y = min(fx, 1 - width), min(fy, 1 - width)
    box = {x: _interval(lo_x, lo_x + width), y: _interval(lo_y, lo_y + width)}
    if e.has(sp.I):  # a constant root of a negative number: no real value anywhere
        return
    assert _encloses(e, box, lo_x, lo_y, width)


def _encloses(e, box, lo_x, lo_y, width) -> bool:
    """Whether e's interval on the box holds e's exact value at three points of the box."""
    try:
        enclosure = boxes.enclose(e, box)
    except boxes._NoRealValue:
        return True
    lo_x, lo_y, width = (sp.Rational(f.numerator, f.denominator) for f in (lo_x, lo_y, width))
    for tx, ty in ((0, 0), (R(1, 3), R(1, 2)), (1, 1)):
        px, py = lo_x + tx * width, lo_y + ty * width
        at = {x: px, y: py}
        value = e.xreplace(at)
        # a root of a negative radicand has no real value: the cover needs real points only
        if value.has(sp.zoo, sp.nan) or any(p.base.xreplace(at) < 0 for p in e.atoms(sp.Pow)
                                            if not p.exp.is_Integer):
            continue
        v = mpmath.mpf(sp.N(value, 40))
        if not enclosure.a - mpmath.mpf(10) ** -20 <= v <= enclosure.b + mpmath.mpf(10) ** -20:
            return False
    return True


def test_a_planted_wrong_interval_rule_is_caught(monkeypatch):
    # negative control: |.| taken as the identity makes |x - 1| on [0, 1] look like [-1, 0]
    real = boxes.enclose

    def planted(e, box, memo=None):
        if isinstance(e, sp.Abs):
            return real(e.args[0], box, memo)
        return real(e, box, memo)

    e, unit = sp.Abs(x - 1), Fraction(1)
    box = {x: _interval(Fraction(0), unit), y: _interval(Fraction(0), unit)}
    assert _encloses(e, box, Fraction(0), Fraction(0), unit)
    monkeypatch.setattr(boxes, "enclose", planted)
    assert not _encloses(e, box, Fraction(0), Fraction(0), unit)
