"""Unit tests for the drp library (scripts/drp). Run with ``PYTHONPATH=scripts`` (or ``pythonpath`` in
pyproject.toml). Every test builds its own small synthetic data; nothing here touches the network
except a local HTTP server on 127.0.0.1 in test_download.py."""

import pytest  # noqa: E402

from fixture_fold import single_threaded_torch  # noqa: E402


@pytest.fixture(scope="module")
def torch_single_thread():
    """For modules that train torch models: one thread, and torch's process-wide state restored after."""
    with single_threaded_torch():
        yield
