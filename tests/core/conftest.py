"""Fixtures shared by the core tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"


@pytest.fixture
def vectors() -> Path:
    """ESP-IDF's own mkdfu test vectors, read from ../shared beside the checkout."""
    if not (VECTORS / "README.md").is_file():
        reason = f"the shared reference vectors are not beside this checkout ({VECTORS})"
        if os.environ.get("ESPDFU_REQUIRE_VECTORS"):
            pytest.fail(f"{reason}, and ESPDFU_REQUIRE_VECTORS is set (as in CI)")
        pytest.skip(reason)
    return VECTORS
