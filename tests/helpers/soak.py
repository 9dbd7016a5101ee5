"""The workbench under load, shared by tests/core/test_soak.py and benchmarks/bench_soak.py.

Two runs of the real Workbench (monitor, watchdog watcher, flash jobs) on virtual boards:

- :func:`soak`: auto-flash to many armed boards while rebuilds (new dfu.bin files renamed into
  a real build folder) arrive faster than the flashes finish;
- :func:`storm`: boards plugged and unplugged every few milliseconds while others are flashed.

Each returns counts; the callers hold them to their goals. What a board holds and how many
hosts talked to it at once are read on the device side, so a wrong count in the workbench's
own events cannot hide a wrong flash.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from espdfu.bench.settings import WorkbenchSettings
from espdfu.bench.views import (
    ArtifactChanged,
    BenchEvent,
    BoardChanged,
    BoardRemoved,
    BoardView,
    Logged,
)
from espdfu.bench.workbench import Workbench
from espdfu.chips import chip_by_name
from espdfu.files import dfufile
from espdfu.flashing.flasher import FlashOptions, FlashResult
from espdfu.sim import (
    BoardKind,
    SimBackend,
    SimBus,
    TimeModel,
    VirtualBoard,
    VirtualSerial,
    virtual_usb,
)
from espdfu.sim.board import Enumeration
from espdfu.usb.transport import Usb
from tests.helpers.boardworld import KIB, image_files

TIMEOUT_S = 30.0
APP_SIZE = 4 * KIB
"""Small images: the soak is about timing and order, not throughput."""
FAST = TimeModel.scaled(0.2)
"""A flash of one soak image takes about 0.1 s of device time (0.2 s with a DETACH)."""
JITTER_SHARE = 0.3
_CLASS_REQUEST = 0x20
_ESP32S2 = chip_by_name("esp32s2")
assert _ESP32S2 is not None


class Recorder:
    """Every event, and a way to wait for one (with a deadline, never a bare sleep).

    ``before`` runs on the reporting thread before each event is recorded: a front end slow to
    take it, or that thread paused by the scheduler at that very moment.
    """

    def __init__(self, before: Callable[[BenchEvent], None] | None = None) -> None:
        self.events: list[BenchEvent] = []
        self.changed = threading.Condition()
        self.before = before

    def __call__(self, event: BenchEvent) -> None:
        if self.before is not None:
            self.before(event)
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        with self.changed:
            if not self.changed.wait_for(predicate, TIMEOUT_S):
                log = [e.text for e in self.events if isinstance(e, Logged)]
                raise AssertionError(f"timed out waiting for {what}; log: {log[-15:]}")

    def logged(self) -> str:
        return "\n".join(e.text for e in self.events if isinstance(e, Logged))


class RecordingBackend(SimBackend):
    """The simulator's backend, noting which thread claimed or sent DFU requests to which board,
    and when.

    A flash job is one thread: the span from its first claim or DFU class request to a board to
    its last is the job's session with that board, whether the board let it in or not. Two
    sessions of one board that overlap in time are two flashes running at once on it.
    """

    def __init__(self, bus: SimBus) -> None:
        super().__init__(bus)
        self._lock = threading.Lock()
        self.sessions: dict[tuple[str, threading.Thread], list[float]] = {}

    def claim_interface(self, dev_handle: Any, intf: int) -> None:
        with self._session(dev_handle):
            super().claim_interface(dev_handle, intf)

    def ctrl_transfer(
        self, dev_handle: Any, bmRequestType: int, bRequest: int, wValue: int, wIndex: int,
        data: Any, timeout: int,
    ) -> int:  # fmt: skip
        arguments = (dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout)
        if bmRequestType & 0x60 != _CLASS_REQUEST:
            return int(super().ctrl_transfer(*arguments))
        with self._session(dev_handle):
            return int(super().ctrl_transfer(*arguments))

    @contextmanager
    def _session(self, dev_handle: Any) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            enumeration: Enumeration = dev_handle.enumeration
            key = (enumeration.board.path, threading.current_thread())
            end = time.monotonic()
            with self._lock:
                self.sessions.setdefault(key, [start, end])[1] = end

    def most_at_once(self) -> dict[str, int]:
        """For each board, the most sessions (flash jobs) that talked to it at one time."""
        with self._lock:
            spans = list(self.sessions.items())
        edges: dict[str, list[tuple[float, int]]] = {}
        for (path, _), (start, end) in spans:
            edges.setdefault(path, []).extend([(start, 1), (end, -1)])
        most: dict[str, int] = {}
        for path, points in edges.items():
            running = 0
            for _, step in sorted(points, key=lambda point: (point[0], point[1])):
                running += step
                most[path] = max(most.get(path, 0), running)
        return most


@dataclass(frozen=True)
class Ledger:
    """Flash jobs as a front end sees them in the events, per board.

    A flash starts when a board's view gets a progress, and ends when a view without progress
    carries a result not seen before; a new result seen any other way is a duplicate, and a
    flash still running when the events end, or whose board was removed first, is lost.
    """

    started: Counter[str]
    ok: Counter[str]
    failed: Counter[str]
    duplicate: int
    lost: int


def ledger(events: list[BenchEvent]) -> Ledger:
    started: Counter[str] = Counter()
    ok: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    running: set[str] = set()
    seen: set[int] = set()
    duplicate = lost = 0
    for event in events:
        if isinstance(event, BoardRemoved):
            lost += event.path in running  # gone without showing its result
            running.discard(event.path)
            continue
        if not isinstance(event, BoardChanged):
            continue
        view = event.view
        result: FlashResult | None = view.last
        new_result = result is not None and id(result) not in seen
        if result is not None:
            seen.add(id(result))
        if view.progress is not None:
            if view.path not in running:
                started[view.path] += 1
                running.add(view.path)
            duplicate += new_result
        elif view.path in running and new_result and result is not None:
            running.discard(view.path)
            (ok if result.ok else failed)[view.path] += 1
        else:
            duplicate += new_result
    return Ledger(started, ok, failed, duplicate, lost + len(running))


def stale_views(events: list[BenchEvent], views: dict[str, BoardView]) -> int:
    """Boards whose last event does not show their state in ``views`` (or shows a board gone)."""
    shown: dict[str, BoardView] = {}
    for event in events:
        if isinstance(event, BoardChanged):
            shown[event.view.path] = event.view
        elif isinstance(event, BoardRemoved):
            shown.pop(event.path, None)
    return sum(shown.get(path) != views.get(path) for path in {*shown, *views})


@contextmanager
def trouble_noted() -> Iterator[list[str]]:
    """Collect exceptions that escape any thread, and errors the espdfu loggers write."""
    noted: list[str] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread else "?"
        noted.append(f"{args.exc_type.__name__} in thread {name}: {args.exc_value}")
        previous(args)

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            noted.append(f"logged by {record.name}: {record.getMessage()}")

    handler = Handler(logging.WARNING)
    logger = logging.getLogger("espdfu")
    threading.excepthook = hook
    logger.addHandler(handler)
    try:
        yield noted
    finally:
        threading.excepthook = previous
        logger.removeHandler(handler)


def dfu_bin(seed: int) -> bytes:
    """A distinct dfu.bin for each seed, for an ESP32-S2."""
    assert _ESP32S2 is not None
    return dfufile.pack(image_files(seed=seed, app_size=APP_SIZE), pid=_ESP32S2.dfu_pid)


def rebuild(build_dir: Path, seed: int) -> None:
    """What a build does at its end: the new dfu.bin is written beside, then renamed into place."""
    temporary = build_dir / "dfu.bin.tmp"
    temporary.write_bytes(dfu_bin(seed))
    temporary.replace(build_dir / "dfu.bin")


def holds(board: VirtualBoard, seed: int) -> bool:
    """The board's flash holds the images of the dfu.bin of ``seed``."""
    files = image_files(seed=seed, app_size=APP_SIZE)
    return all(board.read_flash(file.address, len(file.data)) == file.data for file in files)


def _workbench(folder: Path, usb: Usb, **settings: Any) -> Workbench:
    build_dir = folder / "build"
    build_dir.mkdir(parents=True, exist_ok=True)
    options = WorkbenchSettings(
        build_dir=build_dir,
        auto_flash=True,
        make_dfu=False,
        monitor_interval_s=0.02,
        settle_s=0.02,
        flash=FlashOptions(progress_interval_s=0.02),
        **settings,
    )
    return Workbench(usb, options)


def _jitter(rng: random.Random) -> Callable[[BenchEvent], None]:
    """A front end that now and then is slow to take an event (up to 2 ms), as a busy UI is:
    it widens the moments in which threads can overtake each other."""

    def take(event: BenchEvent) -> None:
        if rng.random() < JITTER_SHARE:
            time.sleep(rng.uniform(0, 0.002))

    return take


def _espdfu_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("espdfu") and t.is_alive()]


def _join_all(threads: set[threading.Thread]) -> None:
    """Until every one of ``threads`` has ended (each waited for up to TIMEOUT_S)."""
    for thread in threads:
        thread.join(TIMEOUT_S)


def _stop(recorder: Recorder, workbench: Workbench, then: Callable[[], None]) -> tuple[int, int]:
    """Stop the workbench and do ``then``: (stale views at the stop, events that came after)."""
    workbench.stop()
    with recorder.changed:
        count = len(recorder.events)
        stale = stale_views(recorder.events, workbench.boards())
    then()
    with recorder.changed:
        return stale, len(recorder.events) - count


# --- the soak ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakReport:
    boards: int
    rounds: int
    artifacts: int
    """New dfu.bin files the workbench reported (renames close together may come as one)."""
    started: int
    skipped: int
    """(artifact, board) pairs never flashed: superseded by a newer artifact while queued."""
    ok: int
    failed: int
    lost: int
    duplicate: int
    downloads: int
    """Downloads the boards themselves completed."""
    most_at_once: int
    holding_last: int
    stale_views: int
    """Boards whose last event did not show their state at the end."""
    events_after_stop: int
    trouble: list[str]
    threads_left: list[str]
    seconds: float


def soak(
    folder: Path,
    boards: int = 16,
    rounds: int = 25,
    *,
    gap_s: tuple[float, float] = (0.01, 0.08),
    time_model: TimeModel = FAST,
    seed: int = 6,
) -> SoakReport:
    """Rebuild ``rounds`` times, ``gap_s`` apart (random), with ``boards`` armed boards."""
    kinds = ("", "-dfu", "-app")
    spec = ",".join(f"esp32s2{kinds[n % 3]}" for n in range(boards))
    bus = SimBus.from_spec(spec, time=time_model)
    backend = RecordingBackend(bus)
    workbench = _workbench(folder, Usb(backend, "virtual boards", VirtualSerial(bus)))
    build_dir = workbench.settings.build_dir
    rng = random.Random(seed)
    recorder = Recorder(_jitter(random.Random(seed + 1)))
    started = time.monotonic()
    before = set(_espdfu_threads())
    with trouble_noted() as trouble:
        workbench.start(recorder)
        recorder.wait(lambda: len(workbench.boards()) == boards, "the boards")
        for number in range(rounds):
            rebuild(build_dir, number)
            time.sleep(rng.uniform(*gap_s))
        last = hashlib.sha256(dfu_bin(rounds - 1)).hexdigest()
        recorder.wait(
            lambda: (
                (artifact := workbench.summary.artifact) is not None
                and artifact.digest == last
                and not workbench.busy
            ),
            "the last artifact flashed",
        )
        # Events come from the workbench's threads: once they have all ended, none can come.
        stale, after = _stop(
            recorder, workbench, lambda: _join_all(set(_espdfu_threads()) - before)
        )
    seconds = time.monotonic() - started
    events = list(recorder.events)
    counts = ledger(events)
    artifacts = sum(isinstance(event, ArtifactChanged) for event in events)
    return SoakReport(
        boards=boards,
        rounds=rounds,
        artifacts=artifacts,
        started=counts.started.total(),
        skipped=artifacts * boards - counts.started.total(),
        ok=counts.ok.total(),
        failed=counts.failed.total(),
        lost=counts.lost,
        duplicate=counts.duplicate,
        downloads=sum(board.downloads_completed for board in bus.boards.values()),
        most_at_once=max(backend.most_at_once().values(), default=0),
        holding_last=sum(holds(board, rounds - 1) for board in bus.boards.values()),
        stale_views=stale,
        events_after_stop=after,
        trouble=trouble,
        threads_left=[t.name for t in set(_espdfu_threads()) - before],
        seconds=seconds,
    )


# --- the hot-plug storm -----------------------------------------------------------------------

_STORM_KINDS = (
    ("esp32s2", BoardKind.ROM),
    ("esp32s3", BoardKind.DFU),
    ("esp32s2", BoardKind.APP),
    ("esp32s3", BoardKind.JTAG),
    ("esp32s2", BoardKind.NO_ACCESS),
)


@dataclass(frozen=True)
class StormReport:
    flashed_boards: int
    storm_boards: int
    artifacts: int
    plugs: int
    unplugs: int
    flashes: int
    ok: int
    downloads: int
    """Downloads the flashed boards themselves completed."""
    removals_seen: int
    converged: bool
    """The workbench's boards became the ones on the bus once the storm was over."""
    stale_views: int
    events_after_stop: int
    trouble: list[str]
    threads_left: list[str]
    seconds: float


class _Storm:
    """Plugs and unplugs boards at other ports, every ``gap_s`` (random), on a thread."""

    def __init__(self, bus: SimBus, count: int, gap_s: tuple[float, float], seed: int) -> None:
        self.bus = bus
        self.gap_s = gap_s
        self.rng = random.Random(seed)
        self.plugs = self.unplugs = 0
        self.boards = [
            bus.plug(VirtualBoard(chip, kind), f"1-{5 + n // 4}.{n % 4 + 1}")
            for n, (chip, kind) in ((n, _STORM_KINDS[n % len(_STORM_KINDS)]) for n in range(count))
        ]
        self.plugs = count
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="storm")

    def _run(self) -> None:
        while not self.stopping.wait(self.rng.uniform(*self.gap_s)):
            self.toggle()

    def toggle(self) -> None:
        board = self.rng.choice(self.boards)
        if board.present:
            board.unplug()
            self.unplugs += 1
        else:
            board.replug()
            self.plugs += 1

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(TIMEOUT_S)

    def for_a_while(self, seconds: float) -> None:
        """Go on storming on this thread for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.toggle()
            time.sleep(self.rng.uniform(*self.gap_s))


def storm(
    folder: Path,
    flashed: int = 4,
    others: int = 10,
    artifacts: int = 3,
    *,
    gap_s: tuple[float, float] = (0.001, 0.005),
    time_model: TimeModel = FAST,
    seed: int = 7,
) -> StormReport:
    """Flash ``artifacts`` new dfu.bin files in turn to ``flashed`` armed boards while
    ``others`` boards come and go."""
    kinds = ("", "-dfu", "-app")
    bus = SimBus.from_spec(
        ",".join(f"esp32s2{kinds[n % 3]}" for n in range(flashed)), time=time_model
    )
    targets = list(bus.boards)
    workbench = _workbench(folder, virtual_usb(bus, "virtual boards"), arm_only=frozenset(targets))
    recorder = Recorder(_jitter(random.Random(seed + 1)))

    def flashed_times(times: int) -> Callable[[], bool]:
        def done() -> bool:
            counts = {bus.board(path).downloads_completed for path in targets}
            return counts == {times} and not workbench.busy

        return done

    started = time.monotonic()
    before = set(_espdfu_threads())
    with trouble_noted() as trouble:
        storming = _Storm(bus, others, gap_s, seed)
        workbench.start(recorder)
        storming.thread.start()
        try:
            for number in range(1, artifacts + 1):
                rebuild(workbench.settings.build_dir, number)
                recorder.wait(flashed_times(number), f"artifact {number} flashed")
        finally:
            storming.stop()
        plugged = {path for path, board in bus.boards.items() if board.present}
        converged = True
        try:
            recorder.wait(
                lambda: (
                    set(workbench.boards()) == plugged
                    and all(view.present for view in workbench.boards().values())
                ),
                "the board list to match the bus",
            )
        except AssertionError:
            converged = False
        stale, after = _stop(recorder, workbench, lambda: storming.for_a_while(0.2))
    seconds = time.monotonic() - started
    events = list(recorder.events)
    counts = ledger(events)
    return StormReport(
        flashed_boards=flashed,
        storm_boards=others,
        artifacts=artifacts,
        plugs=storming.plugs,
        unplugs=storming.unplugs,
        flashes=counts.started.total(),
        ok=sum(counts.ok[path] for path in targets),
        downloads=sum(bus.board(path).downloads_completed for path in targets),
        removals_seen=sum(isinstance(event, BoardRemoved) for event in events),
        converged=converged,
        stale_views=stale,
        events_after_stop=after,
        trouble=trouble,
        threads_left=[t.name for t in set(_espdfu_threads()) - before],
        seconds=seconds,
    )
