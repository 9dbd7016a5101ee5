"""A started workbench on virtual boards and a demo project whose build is a real process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from espdfu.bench.settings import WorkbenchSettings
from espdfu.bench.views import BenchEvent
from espdfu.bench.workbench import Workbench
from espdfu.demo.project import make_demo_project
from espdfu.flashing.flasher import FlashOptions
from espdfu.sim import TimeModel
from tests.helpers.boardworld import World, world
from tests.helpers.soak import Recorder


class Bench:
    """A started workbench on virtual boards and a demo project, with what it reported."""

    def __init__(self, workbench: Workbench, w: World, recorder: Recorder, build_dir: Path) -> None:
        self.workbench, self.world, self.recorder, self.build_dir = (
            workbench,
            w,
            recorder,
            build_dir,
        )

    def events(self) -> list[BenchEvent]:
        """Every event so far, once all the workbench made have reached the recorder: its state
        (boards(), busy) can be ahead of the events that report it. Not from inside a
        recorder.wait predicate, which holds the lock the reporting needs."""
        assert self.workbench.drain(), "the workbench's last events"
        return list(self.recorder.events)

    def logged(self) -> str:
        """The log lines so far, as :meth:`events`."""
        assert self.workbench.drain(), "the workbench's last events"
        return self.recorder.logged()

    def views(self) -> dict[str, object]:
        return dict(self.workbench.boards())

    def flashed(self, path: str) -> bool:
        view = self.workbench.boards().get(path)
        return view is not None and not view.flashing and view.last is not None

    def wait_flashed(self, paths: list[str]) -> None:
        self.recorder.wait(lambda: all(self.flashed(p) for p in paths), f"{paths} flashed")

    def wait_idle(self) -> None:
        """Until nothing runs and all that happened has been reported."""
        self.recorder.wait(lambda: not self.workbench.busy, "the workbench to be idle")
        assert self.workbench.drain(), "the workbench's last events"


def bench_on(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    time: TimeModel,
    recorder: Recorder | None = None,
    before: Callable[[World], None] | None = None,
    **kwargs: object,
) -> Iterator[Bench]:
    """A workbench on the boards ``spec`` names, started with the boards shown; stopped after
    (a generator, for a fixture or a test that needs other settings: ``kwargs``). ``before``
    does what happens to the boards before the workbench starts."""
    monkeypatch.setenv("ESPDFU_DEMO_BUILD_S", "0")
    project = make_demo_project(tmp_path)
    w = world(spec, time)
    if before is not None:
        before(w)
    labels: dict[str, str] = {}
    settings = WorkbenchSettings(
        build_dir=project.build_dir,
        project_dir=project.project_dir,
        build_command=project.build_command,
        monitor_interval_s=0.05,
        settle_s=0.05,
        **{"flash": FlashOptions(progress_interval_s=0.01), **kwargs},  # type: ignore[arg-type]
    )
    workbench = Workbench(w.usb, settings, save_label=labels.__setitem__)
    recorder = recorder or Recorder()
    workbench.start(recorder)
    recorder.wait(lambda: len(workbench.boards()) == len(w.paths), "the boards")
    yield Bench(workbench, w, recorder, project.build_dir)
    workbench.stop()
