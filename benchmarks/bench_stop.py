"""How promptly things stop when asked: the build-folder watcher, and a cancelled build.

Both are waited for by a person (quitting the app, pressing c), so each has a bound: the
watcher's stop() within 1 s, whether it watches the folder or waits for it to appear, and a
build that heeds SIGTERM ended (its result given) within 0.5 s of cancel(). The test suite
checks that they stop, and how; the time they take is measured here, on the real clock.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from espdfu.bench.artifacts import ArtifactWatcher
from espdfu.bench.build import BuildRunner
from run import Row, Section

STOP_GOAL_S = 1.0
CANCEL_GOAL_S = 0.5


def _watcher_stop_s(folder: Path) -> float:
    watcher = ArtifactWatcher(folder, lambda artifact: None, settle_s=0.15)
    watcher.start()
    time.sleep(0.05)  # settled into its wait
    started = time.perf_counter()
    watcher.stop()
    return time.perf_counter() - started


def _cancel_s(folder: Path) -> float:
    """From cancel() to the result of a build that prints a line and then sleeps."""
    script = folder / "build.py"
    script.write_text("import time\nprint('go', flush=True)\ntime.sleep(60)\n")
    going, done = threading.Event(), threading.Event()
    runner = BuildRunner(
        (sys.executable, str(script)),
        folder,
        on_line=lambda line: going.set(),
        on_progress=lambda done, total: None,
        on_done=lambda result: done.set(),
    )
    runner.start()
    if not going.wait(10):
        raise RuntimeError("the build never printed its line")
    started = time.perf_counter()
    runner.cancel()
    if not done.wait(10):
        raise RuntimeError("the cancelled build never ended")
    return time.perf_counter() - started


def run(quick: bool) -> Section:
    rounds = 3 if quick else 10
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        watching = max(_watcher_stop_s(folder) for _ in range(rounds))
        waiting = max(_watcher_stop_s(folder / "not yet") for _ in range(rounds))
        cancel = max(_cancel_s(folder) for _ in range(rounds))
    body = (
        f"The slowest of {rounds} rounds each: stop() of a build-folder watcher watching its "
        "folder, and of one waiting for the folder to appear; cancel() of a build that heeds "
        "SIGTERM, until its result."
    )
    return Section(
        "Stopping",
        body,
        [
            Row(
                "watcher stop, watching",
                f"{watching * 1000:.0f} ms",
                "≤ 1 s",
                watching <= STOP_GOAL_S,
            ),
            Row(
                "watcher stop, waiting for the folder",
                f"{waiting * 1000:.0f} ms",
                "≤ 1 s",
                waiting <= STOP_GOAL_S,
            ),
            Row(
                "build cancel → result",
                f"{cancel * 1000:.0f} ms",
                "≤ 0.5 s",
                cancel <= CANCEL_GOAL_S,
            ),
        ],
    )
