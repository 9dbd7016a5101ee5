"""The fault matrix on virtual boards: every step of a flash × every fault a board can inject.

Each case flashes a fresh virtual board that misbehaves once and checks the user's outcome:
a failure in words (or a flash the host rightly recovered), within a time bound, nothing left
behind, and a board that flashes right after. Goal: every case correct, none hung. The
engine is tests/helpers/faultmatrix.py, which the test suite runs too.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the tests package

from tests.helpers import faultmatrix

from run import Row, Section, markdown_table


def run(quick: bool) -> Section:
    """The whole matrix, quick or not: it is a count of correct cases, not a timing."""
    outcomes = faultmatrix.run_all()
    total = faultmatrix.counts(outcomes)
    options = faultmatrix.OPTIONS
    body = f"""\
Every meaningful pair of a step of a flash (a request of a phase, found by watching a clean
flash on the bus) and a fault the simulator injects, on a fresh ESP32-S2 board in ROM
download mode. Bounds: USB timeout {options.timeout_ms} ms, busy limit
{options.busy_limit_s:g} s, detach wait {options.detach_wait_s:g} s; a case that does not end
within {faultmatrix.bound_s():g} s counts as hung. Each cell says what is correct there (the
failure's kind, or "flashed"; "replug": the board is replugged before the next flash), then
✓ when every case in it was. The status column covers the {len(faultmatrix.ERRORS)} DFU
error statuses.

{faultmatrix.report(outcomes, markdown_table)}"""
    slowest = max(outcome.seconds for outcome in outcomes)
    rows = [
        Row("fault cases run", str(total["cases"])),
        Row("correct", str(total["correct"]), "all", total["correct"] == total["cases"]),
        Row("wrong", str(total["wrong"]), "0", total["wrong"] == 0),
        Row("hung", str(total["hung"]), "0", total["hung"] == 0),
        Row("cases needing a replug", str(total["replugged"])),
        Row("longest case", f"{slowest:.2f} s"),
    ]
    return Section("Fault matrix (virtual boards)", body, rows)
