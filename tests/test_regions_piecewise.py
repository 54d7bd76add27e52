"""Piecewise rules are decided by splitting into regions, never by sampling (derive.regions)."""
import sympy as sp

from optequiv.derive.regions import coincide, regions

X, Y = sp.Symbol("x", real=True), sp.Symbol("y", real=True)
MU = sp.Symbol("mu", positive=True)
P = sp.Piecewise


def test_a_piecewise_difference_zero_on_every_region_is_proven():
    assert coincide(P((X, X > 0), (-X, True)) - sp.Abs(X)).verdict == "proven"
    # the same three-way switch written in another order (Rprop's eta factor)
    a = P((2, X * Y > 0), (sp.Rational(1, 2), X * Y < 0), (1, True))
    b = P((sp.Rational(1, 2), X * Y < 0), (1, sp.Eq(X * Y, 0)), (2, True))
    assert coincide(a - b).verdict == "proven"
    # ASGD's copy while mu == 1 is the average's formula at mu = 1: proven on the equality
    copy = P((X, sp.Eq(MU, 1)), (Y + MU * (X - Y), True))
    assert coincide(copy - (Y + MU * (X - Y))).verdict == "proven"


def test_each_branch_holds_where_every_earlier_one_fails():
    # the second condition (x > -1) overlaps the first; the first wins on x > 0
    f = P((1, X > 0), (2, X > -1), (3, True))
    pieces = {value: conds for value, conds in regions(f)}
    assert set(pieces) == {1, 2, 3}
    assert ("ge", -X) in pieces[2] and ("gt", X + 1) in pieces[2]
    # an empty region (x > 0 and x <= 0) is pruned, not left undecided
    g = P((1, X > 0), (2, X <= 0)) - P((1, X > 0), (2, True))
    assert coincide(g).verdict == "proven"


def test_a_difference_on_a_rare_region_is_refuted_with_an_exact_witness():
    # non-zero only at x == 0: no random point lands there; the equality is solved instead
    d = P((1, sp.Eq(X, 0)), (0, True))
    v = coincide(d)
    assert v.verdict == "refuted" and v.point == {X: 0} and d.xreplace(v.point) == 1
    far = P((X, X > 1000), (0, True))  # beyond every sampled magnitude
    v = coincide(far)
    assert v.verdict == "refuted" and v.point[X] > 1000 and far.xreplace(v.point) != 0
    # ASGD's copy against an average off by one part in 10^9 while mu != 1
    bad = P((X, sp.Eq(MU, 1)), (Y + MU * (X - Y) * (1 + sp.Rational(1, 10**9)), True))
    v = coincide(bad - (Y + MU * (X - Y)))
    assert v.verdict == "refuted" and (bad - (Y + MU * (X - Y))).xreplace(v.point) != 0


def test_a_condition_that_is_no_relational_is_not_split():
    flag = sp.Symbol("flag")
    assert regions(P((X, flag), (0, True))) is None
