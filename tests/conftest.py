"""Test-wide settings."""
from __future__ import annotations

import pytest
from hypothesis import settings

# No timed assertions: hypothesis's default 200 ms deadline fails a test when the machine is
# busy, not when the code is wrong. Every drawn test runs without one.
settings.register_profile("optequiv", deadline=None)
settings.load_profile("optequiv")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tests' tensors are tiny: OpenMP hand-off between threads costs more than the work
    (about 18x here), and pytest-xdist already gives each worker a core. Restored afterwards."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
