"""Every step of a flash × every fault a virtual board can inject: each case must end correctly.

What "correct" means for each case is :func:`tests.helpers.faultmatrix.expect`.
"""

from __future__ import annotations

import threading

import pytest

from espdfu.flashing.flasher import FlashOptions, FlashResult
from espdfu.usb.protocol import Request
from tests.helpers import faultmatrix
from tests.helpers.fakeusbfs import use_usbfs
from tests.helpers.faultmatrix import ACTIONS, ERRORS, Case, Stage

CASES = faultmatrix.cases()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_fault_at_any_step_ends_as_it_should(case: Case) -> None:
    outcome = faultmatrix.run_case(case)
    assert outcome.verdict == "correct", outcome.explain()


def test_the_matrix_covers_every_step_and_every_fault() -> None:
    assert {case.point.stage for case in CASES} == set(Stage)
    assert {case.fault.action for case in CASES} == set(ACTIONS)
    statuses = {case.fault.status for case in CASES if case.fault.action == "status"}
    assert statuses == set(ERRORS)
    requests = {case.point.request for case in CASES}
    assert requests == {Request.DETACH, Request.GETSTATUS, Request.CLRSTATUS, Request.DNLOAD}
    in_only = {case.point.request for case in CASES if case.fault.action in ("garbage", "short")}
    assert in_only == {Request.GETSTATUS}
    assert len({case.id for case in CASES}) == len(CASES)


def test_a_host_that_does_not_retry_is_caught() -> None:
    case = next(c for c in CASES if c.point.stage is Stage.FIRST and c.fault.action == "stall")
    outcome = faultmatrix.run_case(case, FlashOptions(retries=0, detach_wait_s=0.3))
    assert outcome.verdict == "wrong"
    assert "1 attempts instead of 2" in outcome.problems


def test_a_case_that_does_not_end_in_its_bound_counts_as_hung() -> None:
    release = threading.Event()

    def stuck() -> FlashResult:
        release.wait(10)
        raise RuntimeError("released")

    result, seconds, problem = faultmatrix.bounded(stuck, 0.05)
    release.set()
    assert (result, problem) == (None, faultmatrix.HUNG)
    assert seconds < 10


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_fault_at_any_step_ends_as_it_should_on_the_usbfs_route(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on the route Linux takes: its requests, and its own loop for runs of blocks."""
    use_usbfs(monkeypatch)
    outcome = faultmatrix.run_case(case)
    assert outcome.verdict == "correct", outcome.explain()
