"""Settings shared by the whole test suite.

Hypothesis profiles: "ci" (the default) has no deadline, since timings on a shared
2-core machine are noisy, and a moderate number of examples; "dev" is quicker and
"thorough" searches harder. Choose one with HYPOTHESIS_PROFILE=dev, for example.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import settings

pytest_plugins = ("tests.helpers.noskip",)

settings.register_profile("ci", deadline=None, max_examples=200, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.register_profile("thorough", deadline=None, max_examples=2_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def missing(reason: str) -> None:
    """Skip a test that needs something this machine lacks (in CI a skip fails: noskip)."""
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """The path of a command the test needs (see missing())."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (bash .ci/setup installs it as root)")
    assert path is not None
    return path
