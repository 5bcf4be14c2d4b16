"""The third-party toy backend (tests/toy_plugin) passes the backend contract suite, flat and two-table."""

import pytest

from synth_assets.testing import BackendContract


@pytest.mark.usefixtures("toy_plugin")
class TestMarginalsBackend(BackendContract):
    backend = "marginals"
