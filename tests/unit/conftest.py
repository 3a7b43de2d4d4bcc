"""Unit tests for the drp library (scripts/drp). Run with ``PYTHONPATH=scripts`` (or ``pythonpath`` in
pyproject.toml). Every test builds its own small synthetic data; nothing here touches the network
except a local HTTP server on 127.0.0.1 in test_download.py."""
