"""In CI nothing may skip: the rule (tests/helpers/noskip.py) on a small suite of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TESTS = {
    "test_some.py": """
import pytest

def test_skips():
    pytest.skip("no widget on this machine")

@pytest.mark.skipif(True, reason="never here")
def test_skipped_by_mark():
    pass

@pytest.mark.xfail(reason="a known fault", strict=True)
def test_expected_to_fail():
    assert False

def test_passes():
    pass
""",
    "test_module.py": """
import pytest

pytest.skip("the whole module needs a widget", allow_module_level=True)
""",
}


def pytest_run(folder: Path, ci: bool, *files: str) -> tuple[int, str]:
    """pytest's exit code and output for ``files`` of TESTS, with the rule, in CI mode or not."""
    for name in files:
        (folder / name).write_text(TESTS[name])
    env = {key: value for key, value in os.environ.items() if key != "ESPDFU_CI"}
    env["PYTHONPATH"] = str(ROOT)
    if ci:
        env["ESPDFU_CI"] = "1"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "tests.helpers.noskip",
        "-p",
        "no:cacheprovider",
    ]
    result = subprocess.run(
        [*command, "-q", "-rA", "--rootdir", str(folder), str(folder)],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=60,
    )
    assert not result.stderr
    return result.returncode, result.stdout


def test_in_ci_a_skipped_test_fails_and_says_which_and_why(tmp_path: Path) -> None:
    code, out = pytest_run(tmp_path, True, "test_some.py")
    assert code == pytest.ExitCode.TESTS_FAILED
    for test, reason in [
        ("test_skips", "no widget on this machine"),
        ("test_skipped_by_mark", "never here"),
    ]:
        assert (
            f"test_some.py::{test} skipped ({reason}), and in CI (ESPDFU_CI=1) nothing may skip"
            in out
        )
    assert out.splitlines()[-1].startswith("1 failed, 1 passed, 1 xfailed, 1 error")  # in setup


def test_in_ci_a_skipped_module_fails_the_run(tmp_path: Path) -> None:
    code, out = pytest_run(tmp_path, True, "test_module.py")
    assert code == pytest.ExitCode.INTERRUPTED  # a collection error
    assert "test_module.py skipped (the whole module needs a widget), and in CI" in out


def test_elsewhere_a_skip_stays_a_skip(tmp_path: Path) -> None:
    code, out = pytest_run(tmp_path, False, *TESTS)
    assert code == pytest.ExitCode.OK
    assert out.splitlines()[-1].startswith("1 passed, 3 skipped, 1 xfailed")


def test_this_suite_runs_under_the_rule(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("tests.helpers.noskip")
