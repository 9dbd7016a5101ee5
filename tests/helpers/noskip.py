"""The no-skip rule, made mechanical: with ESPDFU_CI set (what CI sets), a test that skips fails.

A skip hides a test that did not run; on a developer's machine that is a fair answer to a
missing tool, in CI it would be a green run that proved nothing. The failure names the test
and gives the skip's reason. An expected failure (xfail) is a result, not a skip: it stays.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

CI_ENV = "ESPDFU_CI"


def _failed_if_skipped(report: pytest.TestReport | pytest.CollectReport, what: str) -> None:
    if not (os.environ.get(CI_ENV) and report.skipped) or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = f"{what} skipped ({reason}), and in CI ({CI_ENV}=1) nothing may skip"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _failed_if_skipped(report, item.nodeid)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _failed_if_skipped(report, collector.nodeid)
    return report
