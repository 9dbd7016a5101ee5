"""The real-USB tier runs only where setup.sh has prepared the guest (see docs/real-usb.md)."""

from __future__ import annotations

import pytest

from tests.conftest import missing
from tests.realusb.harness import unavailable


@pytest.fixture(scope="session")
def realusb() -> None:
    """Skip (on a user's machine) or fail (in CI) when QEMU or the guest is not ready."""
    reason = unavailable()
    if reason is not None:
        missing(f"the real-USB guest cannot run: {reason}")
