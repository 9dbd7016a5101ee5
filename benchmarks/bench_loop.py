"""The loop with no hands: from a new dfu.bin to every armed board verified running it.

Four ESP32-S2 DevKits on virtual boards in real time (the ROM's download pace, 0.5 s
re-enumerations, an app whose start-up names its ELF), auto-flash on, the workbench as the app
and `espdfu watch` run it. Each round rebuilds the demo project once and times, from the new
dfu.bin's arrival to the last board whose console named the new build (`verified`):

- **bridged**: each board's console linked to its USB-UART bridge ([consoles]); the workbench
  resets each into download mode through the bridge, flashes it, resets it into its app;
- **by hand**: the same boards with no link, a person modelled as the demo's finger: BOOT held
  and RESET tapped as the build starts (so that this part is hidden in the build's second),
  RESET tapped 2 s after each good flash (a quick person).

Rounds interleave the two (A-B-A...), each on its own fresh workbench after one warm-up round.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

from espdfu.bench.settings import WorkbenchSettings
from espdfu.bench.verify import Verdict
from espdfu.bench.views import ArtifactChanged, BenchEvent, BoardChanged
from espdfu.bench.workbench import Workbench
from espdfu.demo.finger import Finger
from espdfu.demo.project import BUILD_TIME_ENV, make_demo_project
from espdfu.sim import SimBus, TimeModel, virtual_usb
from espdfu.sim.bridge import bridge_url
from run import Row, Section, markdown_table

BOARDS = 4
BUILD_S = 1.0
DEADLINE_S = 120.0


class _Round:
    """Events as they come: when the new artifact came, when each board was verified on it."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.artifact_at: float | None = None
        self.digest = ""
        self.verified: dict[str, float] = {}

    def see(self, event: BenchEvent) -> None:
        now = time.time()  # the clock of a view's last_at
        with self.lock:
            if isinstance(event, ArtifactChanged) and event.summary.artifact is not None:
                digest = event.summary.artifact.digest
                if digest != self.digest:
                    self.digest, self.artifact_at, self.verified = digest, now, {}
            elif isinstance(event, BoardChanged) and self.artifact_at is not None:
                view, since = event.view, self.artifact_at
                check = view.check
                flashed = view.last_at is not None and view.last_at >= since  # this artifact's
                if check is not None and check.verdict is Verdict.VERIFIED and flashed:
                    self.verified.setdefault(view.path, now)
            self.lock.notify_all()

    def wait(self, paths: list[str], digest: str) -> float:
        """Seconds from the artifact ``digest`` to the last of ``paths`` verified running it."""
        with self.lock:
            done = self.lock.wait_for(
                lambda: self.digest == digest and set(paths) <= set(self.verified), DEADLINE_S
            )
            assert done and self.artifact_at is not None, f"not all verified: {self.verified}"
            return max(self.verified[path] for path in paths) - self.artifact_at


def _one_round(bridged: bool) -> float:
    """A workbench that flashed build 1 everywhere; the seconds of build 2's round."""
    with tempfile.TemporaryDirectory() as folder:
        project = make_demo_project(Path(folder))
        spec = f"esp32s2*{BOARDS}" + (":bridge" if bridged else "")
        bus = SimBus.from_spec(spec, time=TimeModel.realistic())
        paths = list(bus.boards)
        links = {path: bridge_url(path) for path in paths} if bridged else {}
        settings = WorkbenchSettings(
            build_dir=project.build_dir,
            project_dir=project.project_dir,
            build_command=project.build_command,
            auto_flash=True,
            console_ports=links,
        )
        workbench = Workbench(virtual_usb(bus), settings)
        events = _Round()
        workbench.start(events.see)
        if not bridged:
            workbench.subscribe(Finger(bus, workbench).see)
        try:
            seconds = 0.0
            for _ in range(2):  # build 1 reaches every board once; build 2's round is timed
                before = events.digest
                workbench.build()
                seconds = events.wait(paths, _next_digest(events, before))
            return seconds
        finally:
            workbench.stop()


def _next_digest(events: _Round, before: str) -> str:
    """The digest of the first artifact after ``before``, once it has come."""
    with events.lock:
        assert events.lock.wait_for(lambda: events.digest != before, DEADLINE_S), "no new dfu.bin"
        return events.digest


def run(quick: bool) -> Section:
    import os

    # A build of a second: long enough for the person's BOOT+RESET, pressed as it starts, to
    # bring the boards back in download mode before its dfu.bin (as a real build is).
    os.environ[BUILD_TIME_ENV] = str(BUILD_S)
    rounds = 1 if quick else 3
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):  # A-B-A...: the machine's drift falls on both
        for with_bridge in (True, False):
            times[with_bridge].append(_one_round(with_bridge))
    bridged, by_hand = statistics.median(times[True]), statistics.median(times[False])
    table = markdown_table(
        ["round", "new dfu.bin → last board verified (median)", "rounds"],
        [
            ["bridged (no hands)", f"{bridged:.1f} s", str(rounds)],
            ["by hand (BOOT+RESET, RESET 2 s after)", f"{by_hand:.1f} s", str(rounds)],
        ],
    )
    body = (
        f"{BOARDS} ESP32-S2 DevKits on virtual boards in real time, the demo's 120 KB build, "
        "auto-flash on; each round's second build, timed from its dfu.bin to the last board "
        "whose console named it.\n\n" + table
    )
    return Section(
        "The loop with no hands",
        body,
        [
            Row("bridged: new dfu.bin → all verified", f"{bridged:.1f} s"),
            Row("by hand: new dfu.bin → all verified", f"{by_hand:.1f} s"),
        ],
    )
