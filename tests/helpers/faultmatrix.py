"""The fault matrix: every step of a flash × every fault a virtual board can inject.

Each case flashes a fresh virtual board that misbehaves once, at one request of one phase, and
checks what a user would get: a failure in words — or a flash the host rightly recovered —
within a time bound, with no thread, file or claimed interface left behind, and a board that
flashes right after (replugged first when the fault left it off the bus or stuck busy).

    .venv/bin/python -m tests.helpers.faultmatrix

The board's clock is real but its delays are a millisecond or two, so poll timeouts, USB
timeouts and the busy limit are all waited out for real, with small bounds.
"""

from __future__ import annotations

import enum
import functools
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from espdfu.files.dfufile import FlashFile
from espdfu.flashing.flasher import Failure, FlashOptions, FlashResult, flash
from espdfu.sim import (
    Fault,
    FaultAction,
    SimBackend,
    SimBus,
    TimeModel,
    VirtualBoard,
    VirtualSerial,
)
from espdfu.usb.protocol import Ending, Request, Status
from espdfu.usb.transport import Usb
from tests.helpers.boardworld import KIB, image, image_files, world

SPEC = "esp32s2"
"""A board in ROM download mode, so that a flash goes through every phase, DETACH included."""
TIME = TimeModel(
    request_s=0.0,
    erase_ms_per_sector=1.0,
    manifest_ms=1.0,
    busy_poll_ms=1.0,
    reenumerate_s=0.0,
)
OPTIONS = FlashOptions(detach_wait_s=0.3, timeout_ms=100, busy_limit_s=0.1)
SLACK_S = 2.0
"""Added to a case's bound: the flasher's look at the bus after a failed request (0.5 s), and
a loaded machine."""
FILES = image_files(seed=6, app_size=KIB)
AFTER_FILES = image_files(seed=7, app_size=KIB)
"""What the follow-up flash writes: other bytes, so that it shows in the flash."""
IMAGE = image(SPEC, FILES)
AFTER_IMAGE = image(SPEC, AFTER_FILES)
ACTIONS: tuple[FaultAction, ...] = (
    "unplug",
    "stall",
    "timeout",
    "status",
    "busy",
    "garbage",
    "short",
)
ERRORS = tuple(status for status in Status if status is not Status.OK)


class Stage(enum.Enum):
    """Where in a flash a fault strikes."""

    DETACH = "detach"
    BACK = "re-enumeration"
    """The first request once the board is back in DFU mode."""
    CLEAR = "clearing an error"
    """CLRSTATUS of a board that came back in dfuERROR."""
    FIRST = "first block"
    MIDDLE = "middle block"
    LAST = "last block"
    END = "zero-length end"
    MANIFEST = "manifestation"

    @property
    def before_data(self) -> bool:
        """Whether the board has confirmed no data yet, so the host may retry from scratch."""
        return self in (Stage.DETACH, Stage.BACK, Stage.CLEAR, Stage.FIRST)


@dataclass(frozen=True)
class Point:
    """One request of a flash: the ``nth`` ``request`` since the board was plugged in."""

    stage: Stage
    request: Request
    nth: int
    setup: tuple[Fault, ...] = ()
    """Faults that bring the board to this request."""

    def __str__(self) -> str:
        return f"{self.stage.value} · {self.request.name} #{self.nth}"


@dataclass(frozen=True)
class Expected:
    """What is correct for a case."""

    failure: Failure | None
    """None: the flash must end "flashed", with the image really in flash."""
    words: tuple[str, ...] = ()
    """What the failure's message must say."""
    attempts: int = 1
    replug: bool = False
    """The fault leaves the board off the bus or stuck busy: a user replugs it."""
    ending: Ending = Ending.IDLE

    def __str__(self) -> str:
        if self.failure is None:
            text = "board gone, flashed" if self.ending is Ending.VANISHED else "flashed"
            text += " after a retry" if self.attempts > 1 else ""
        else:
            text = self.failure.name.lower().replace("_", " ")
        return text + (", replug" if self.replug else "")


@dataclass(frozen=True)
class Case:
    point: Point
    fault: Fault

    @property
    def expected(self) -> Expected:
        return expect(self.point, self.fault)

    def __str__(self) -> str:
        status = f" {self.fault.status.label}" if self.fault.action == "status" else ""
        return f"{self.point} × {self.fault.action}{status}"

    @property
    def id(self) -> str:
        """A name in plain ASCII, for test ids."""
        point, fault = self.point, self.fault
        status = f"-{fault.status.label}" if fault.action == "status" else ""
        stage = point.stage.name.lower()
        return f"{stage}-{point.request.name}{point.nth}-{fault.action}{status}"


@dataclass
class Outcome:
    case: Case
    seconds: float
    bound_s: float
    result: FlashResult | None = None
    hung: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "hung" if self.hung else "wrong" if self.problems else "correct"

    def explain(self) -> str:
        got = self.result.message if self.result else "nothing"
        return (
            f"{self.case}: {self.verdict} in {self.seconds:.2f} s (bound {self.bound_s:g} s); "
            f"expected {self.case.expected}; got {got!r}; " + "; ".join(self.problems)
        )


# --- which cases ------------------------------------------------------------------------------


def expect(point: Point, fault: Fault) -> Expected:
    """What the host must make of ``fault`` at ``point``.

    Before the board confirmed any data, one automatic retry from scratch is right, and it
    succeeds for a fault that fires once; once data is confirmed, a flash must fail and say
    why, and where. A board stuck busy stays so until it is reset or replugged, so that is
    not retried; an unplugged board stays away.
    """
    stage, action, request = point.stage, fault.action, point.request.name
    where = "while finishing" if stage in (Stage.END, Stage.MANIFEST) else "at byte"
    if action == "unplug":
        if stage is Stage.DETACH:
            return Expected(Failure.LOST, ("did not come back in DFU mode",), 2, replug=True)
        if stage is Stage.MANIFEST:
            # All data was confirmed: a board that resets itself here is one of DFU's ends.
            return Expected(None, replug=True, ending=Ending.VANISHED)
        retried = 2 if stage.before_data else 1  # the retry finds no board
        return Expected(Failure.VANISHED, ("vanished", where), retried, replug=True)
    if action == "busy":  # not retried: only a reset ends it
        return Expected(Failure.TIMEOUT, ("stayed busy", where), replug=True)
    if action == "status" and stage in (Stage.BACK, Stage.CLEAR):
        return Expected(None)  # a stale error is cleared before the download starts
    if stage.before_data:
        return Expected(None, attempts=2)
    if action == "stall":
        return Expected(Failure.STALL, (f"refused a {request} request", "STALL", where))
    if action == "timeout":
        return Expected(Failure.TIMEOUT, (f"did not answer a {request} request", where))
    if action == "status":
        status = fault.status
        return Expected(Failure.DEVICE_STATUS, (status.label, status.meaning, where))
    if action == "garbage":
        return Expected(Failure.PROTOCOL, ("unknown codes", where))
    return Expected(Failure.PROTOCOL, ("bytes instead of 6", where))


def faults_at(point: Point) -> Iterator[Fault]:
    """The faults that exist at ``point``: garbage and short replies only for IN requests,
    nothing about DFU states for DETACH (a runtime interface has none)."""
    for action in ACTIONS:
        if action in ("garbage", "short") and point.request is not Request.GETSTATUS:
            continue
        if action in ("status", "busy") and point.request is Request.DETACH:
            continue
        statuses = ERRORS if action == "status" else (Status.UNKNOWN,)
        for status in statuses:
            yield Fault(action, point.request, point.nth, status)


class _Analyser(SimBackend):
    """A USB analyser on the virtual bus: the DFU class requests, in order."""

    def __init__(self, bus: SimBus) -> None:
        super().__init__(bus)
        self.seen: list[Request] = []

    def ctrl_transfer(
        self,
        dev_handle: Any,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array[int],
        timeout: int,
    ) -> int:
        if bmRequestType & 0x60 == 0x20:  # class requests
            self.seen.append(Request(bRequest))
        return super().ctrl_transfer(
            dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout
        )


@functools.cache
def points() -> tuple[Point, ...]:
    """Every point of a clean flash, found by watching one on the bus."""
    bus = SimBus.from_spec(SPEC, time=TIME)
    analyser = _Analyser(bus)
    (path,) = bus.boards
    result = flash(
        Usb(analyser, "analysed virtual board", VirtualSerial(bus)), path, IMAGE, options=OPTIONS
    )
    if not result.ok:
        raise RuntimeError(f"a clean flash failed: {result.message}")
    numbered: list[tuple[Request, int]] = []
    counts: Counter[Request] = Counter()
    for request in analyser.seen:
        counts[request] += 1
        numbered.append((request, counts[request]))

    def status_after(index: int) -> int:
        return next(n for r, n in numbered[index + 1 :] if r is Request.GETSTATUS)

    dnloads = [i for i, (r, _) in enumerate(numbered) if r is Request.DNLOAD]
    *blocks, end = dnloads
    if len(blocks) < 3 or numbered[0][0] is not Request.DETACH:
        raise RuntimeError(f"unexpected flash: {analyser.seen[:4]} and {len(blocks)} blocks")
    back = Point(Stage.BACK, Request.GETSTATUS, 1)
    found = [
        Point(Stage.DETACH, Request.DETACH, 1),
        back,
        Point(Stage.CLEAR, Request.CLRSTATUS, 1, setup=(Fault("status", Request.GETSTATUS, 1),)),
    ]
    for stage, block in (
        (Stage.FIRST, blocks[0]),
        (Stage.MIDDLE, blocks[len(blocks) // 2]),
        (Stage.LAST, blocks[-1]),
    ):
        found += [
            Point(stage, Request.DNLOAD, numbered[block][1]),
            Point(stage, Request.GETSTATUS, status_after(block)),
        ]
    found += [
        Point(Stage.END, Request.DNLOAD, numbered[end][1]),
        Point(Stage.MANIFEST, Request.GETSTATUS, status_after(end)),
    ]
    if counts[Request.GETSTATUS] != status_after(end):  # a board that manifests visibly
        found.append(Point(Stage.MANIFEST, Request.GETSTATUS, counts[Request.GETSTATUS]))
    return tuple(found)


def cases() -> list[Case]:
    """Every meaningful (point, fault) pair."""
    return [Case(point, fault) for point in points() for fault in faults_at(point)]


# --- running one case -------------------------------------------------------------------------


def bound_s(options: FlashOptions = OPTIONS) -> float:
    """The longest a case may take: every wait the host may make, on every attempt."""
    waits = options.detach_wait_s + options.timeout_ms / 1000 + 2 * options.busy_limit_s
    return (options.retries + 1) * waits + SLACK_S


def run_case(case: Case, options: FlashOptions = OPTIONS) -> Outcome:
    """Flash a fresh board with ``case``'s fault, judge it, then flash the board again."""
    w = world(SPEC, TIME)
    (path,) = w.paths
    board = w.board(path)
    board.faults.extend((*case.point.setup, case.fault))
    expected = case.expected
    threads, files = set(threading.enumerate()), _open_files()
    bound = bound_s(options)
    result, seconds, problem = bounded(lambda: flash(w.usb, path, IMAGE, options=options), bound)
    outcome = Outcome(case, seconds, bound, result, hung=problem == HUNG)
    if outcome.hung:
        return outcome  # the job still runs: the board is not ours to use again
    if problem:
        outcome.problems.append(problem)
    if result is not None:
        outcome.problems += _judge(expected, result, board)
    outcome.problems += _leftovers(board, threads, files)
    if expected.replug:
        board.replug()
    after, _, problem = bounded(lambda: flash(w.usb, path, AFTER_IMAGE, options=options), bound)
    if after is None or not after.ok or not _in_flash(board, AFTER_FILES):
        got = after.message if after else problem
        outcome.problems.append(f"the board did not flash right after: {got}")
    return outcome


def _judge(expected: Expected, result: FlashResult, board: VirtualBoard) -> list[str]:
    problems = []
    if result.attempts != expected.attempts:
        problems.append(f"{result.attempts} attempts instead of {expected.attempts}")
    if expected.failure is None:
        if not result.ok:
            problems.append("the flash failed")
        elif result.ending is not expected.ending:
            problems.append(f"it ended as {result.ending}, not {expected.ending}")
        if not _in_flash(board, FILES):
            problems.append("the image is not in flash")
        return problems
    error = result.error
    if error is None:
        return [*problems, "a flash that should have failed was reported as flashed"]
    if error.kind is not expected.failure:
        problems.append(f"failure {error.kind.name} instead of {expected.failure.name}")
    problems += [
        f"the message lacks {word!r}" for word in expected.words if word not in error.message
    ]
    if not error.hint:
        problems.append("no hint says what to do")
    return problems


def _leftovers(board: VirtualBoard, threads: set[threading.Thread], files: int | None) -> list[str]:
    problems = [f"thread {t.name} left running" for t in threading.enumerate() if t not in threads]
    after = _open_files()
    if files is not None and after is not None and after > files:
        problems.append(f"{after - files} file handles left open")
    present = board.enumeration()
    if present is not None and present.claims:
        problems.append(f"interfaces {sorted(present.claims)} left claimed")
    return problems


HUNG = "hung"


def bounded(
    action: Callable[[], FlashResult], bound: float
) -> tuple[FlashResult | None, float, str]:
    """Run ``action`` in a worker thread for at most ``bound`` seconds.

    Returns its result, the seconds it took, and what went wrong ("" if nothing, HUNG if it
    did not end in time).
    """
    results: list[FlashResult] = []
    errors: list[str] = []

    def work() -> None:
        try:
            results.append(action())
        except Exception as error:  # a flash must never raise: record it as a wrong case
            errors.append(f"flash raised {type(error).__name__}: {error}")

    worker = threading.Thread(target=work, name="faultmatrix-case", daemon=True)
    start = time.monotonic()
    worker.start()
    worker.join(bound)
    seconds = time.monotonic() - start
    if worker.is_alive():
        return None, seconds, HUNG
    return (results[0] if results else None), seconds, (errors[0] if errors else "")


def _in_flash(board: VirtualBoard, files: list[FlashFile]) -> bool:
    return all(board.read_flash(f.address, len(f.data)) == f.data for f in files)


def _open_files() -> int | None:
    """File descriptors this process has open (None where /proc does not tell)."""
    fds = Path("/proc/self/fd")
    return len(list(fds.iterdir())) if fds.is_dir() else None


# --- the table --------------------------------------------------------------------------------


def run_all(chosen: Sequence[Case] | None = None) -> list[Outcome]:
    return [run_case(case) for case in (cases() if chosen is None else chosen)]


def counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    verdicts = Counter(outcome.verdict for outcome in outcomes)
    return {
        "cases": len(outcomes),
        "correct": verdicts["correct"],
        "wrong": verdicts["wrong"],
        "hung": verdicts["hung"],
        "replugged": sum(outcome.case.expected.replug for outcome in outcomes),
    }


def grid(outcomes: Sequence[Outcome]) -> tuple[list[str], list[list[str]]]:
    """One row per point, one column per fault: what is correct there, and whether it was.

    The status column covers every DFU error status: its count says how many.
    """
    headers = ["Step", *ACTIONS]
    cells: dict[tuple[Point, str], list[Outcome]] = {}
    for outcome in outcomes:
        cells.setdefault((outcome.case.point, outcome.case.fault.action), []).append(outcome)
    rows = []
    for point in dict.fromkeys(outcome.case.point for outcome in outcomes):
        row = [str(point)]
        for action in ACTIONS:
            found = cells.get((point, action), [])
            row.append(_cell(found) if found else "—")
        rows.append(row)
    return headers, rows


def _cell(found: list[Outcome]) -> str:
    bad = [outcome for outcome in found if outcome.verdict != "correct"]
    many = f" ×{len(found)}" if len(found) > 1 else ""
    mark = f"✗ {len(bad)} {bad[0].verdict}" if bad else "✓"
    return f"{found[0].case.expected}{many} {mark}"


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [headers, ["---"] * len(headers), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


Table = Callable[[Sequence[str], Sequence[Sequence[str]]], str]


def report(outcomes: Sequence[Outcome], table: Table = markdown) -> str:
    """The table, the counts and every case that was not correct, in Markdown."""
    total = counts(outcomes)
    slowest = max(outcomes, key=lambda outcome: outcome.seconds)
    text = [
        table(*grid(outcomes)),
        "",
        f"Cases run: {total['cases']}; correct: {total['correct']}; wrong: {total['wrong']}; "
        f"hung: {total['hung']}; replugged before the next flash: {total['replugged']}. "
        f"Longest case: {slowest.seconds:.2f} s ({slowest.case}), bound {slowest.bound_s:g} s.",
    ]
    text += [f"- {outcome.explain()}" for outcome in outcomes if outcome.verdict != "correct"]
    return "\n".join(text)


def main() -> int:
    outcomes = run_all()
    print(report(outcomes))
    total = counts(outcomes)
    return 0 if total["correct"] == total["cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
