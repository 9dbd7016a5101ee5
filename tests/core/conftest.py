"""Fixtures shared by the core tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import missing

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"


@pytest.fixture
def vectors() -> Path:
    """ESP-IDF's own mkdfu test vectors, read from ../shared beside the checkout."""
    if not (VECTORS / "README.md").is_file():
        reason = f"the shared reference vectors are not beside this checkout ({VECTORS})"
        missing(reason)
    return VECTORS
