"""A pytest fixture for numeric.testing.assert_matches_spec.

Enable it with `pytest_plugins = ["optequiv.numeric.pytest_plugin"]` in your top-level conftest.py, or
`pytest -p optequiv.numeric.pytest_plugin`; then

    def test_my_optimizer(assert_matches_spec):
        assert_matches_spec(lambda params: MySGD(params, lr=0.1, momentum=0.9),
                            "sgd(lr=0.1, momentum=0.9)")
"""
import pytest


@pytest.fixture
def assert_matches_spec():
    """numeric.testing.assert_matches_spec(factory, spec, *, steps=20, dtype=torch.float64,
    device="cpu", seed=0)."""
    from .testing import assert_matches_spec as check

    return check
