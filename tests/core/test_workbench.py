"""The workbench headless: virtual boards, real watchdog on a temp folder, real build processes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from espdfu import dfufile
from espdfu.build import BuildState
from espdfu.demo import make_demo_project
from espdfu.flasher import FlashOptions
from espdfu.idfbuild import flash_files_from_json, read_flash_files
from espdfu.sim import TimeModel
from espdfu.workbench import (
    ArtifactChanged,
    BoardChanged,
    BoardRemoved,
    BuildChanged,
    Event,
    Logged,
    Workbench,
    WorkbenchSettings,
)
from tests.core.boardworld import World, assert_flashed, image_files, world

TIMEOUT_S = 20.0


class Recorder:
    """Every event, and a way to wait for one (with a deadline, never a bare sleep)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = threading.Condition()

    def __call__(self, event: Event) -> None:
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


class Bench:
    def __init__(self, workbench: Workbench, w: World, recorder: Recorder, build_dir: Path) -> None:
        self.workbench, self.world, self.recorder, self.build_dir = (
            workbench,
            w,
            recorder,
            build_dir,
        )

    def views(self) -> dict[str, object]:
        return dict(self.workbench.boards())

    def flashed(self, path: str) -> bool:
        view = self.workbench.boards().get(path)
        return view is not None and not view.flashing and view.last is not None

    def wait_flashed(self, paths: list[str]) -> None:
        self.recorder.wait(lambda: all(self.flashed(p) for p in paths), f"{paths} flashed")

    def wait_idle(self) -> None:
        self.recorder.wait(lambda: not self.workbench.busy, "the workbench to be idle")


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    yield from _bench(tmp_path, monkeypatch, "esp32s2*2,esp32s3", TimeModel.instant())


def _bench(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, time: TimeModel, **kwargs: object
) -> Iterator[Bench]:
    monkeypatch.setenv("ESPDFU_DEMO_BUILD_S", "0")
    project = make_demo_project(tmp_path)
    w = world(spec, time)
    labels: dict[str, str] = {}
    settings = WorkbenchSettings(
        build_dir=project.build_dir,
        project_dir=project.project_dir,
        build_command=project.build_command,
        monitor_interval_s=0.05,
        settle_s=0.05,
        flash=FlashOptions(progress_interval_s=0.01),
        **kwargs,  # type: ignore[arg-type]
    )
    workbench = Workbench(w.usb, settings, save_label=labels.__setitem__)
    recorder = Recorder()
    workbench.start(recorder)
    recorder.wait(lambda: len(workbench.boards()) == len(w.paths), "the boards")
    yield Bench(workbench, w, recorder, project.build_dir)
    workbench.stop()


def _assert_board_holds(bench: Bench, path: str) -> None:
    """The board's flash holds every image of the build at its address."""
    specs = flash_files_from_json(bench.build_dir / "flasher_args.json")
    assert_flashed(bench.world.board(path), read_flash_files(specs))


def test_boards_appear_armed_with_no_artifact(bench: Bench) -> None:
    views = bench.workbench.boards()
    assert sorted(views) == bench.world.paths
    assert all(view.armed and view.state == "ready" for view in views.values())
    assert bench.workbench.artifact is None
    assert bench.workbench.flash_all() == []
    assert "Nothing to flash: there is no dfu.bin yet." in bench.recorder.logged()


def test_build_then_flash_reaches_the_armed_boards_that_can_take_it(bench: Bench) -> None:
    s2a, s2b, s3 = bench.world.paths
    bench.workbench.build(then_flash=True)
    bench.wait_flashed([s2a, s2b])
    bench.wait_idle()
    views = bench.workbench.boards()
    assert views[s2a].state == views[s2b].state == "flashed"
    assert views[s3].last is None  # wrong chip: never started
    assert f"{s3}: not flashed: The file is for esp32s2" in bench.recorder.logged()
    for path in (s2a, s2b):
        _assert_board_holds(bench, path)
    builds = [e.status for e in bench.recorder.events if isinstance(e, BuildChanged)]
    assert builds[0].state is BuildState.RUNNING and builds[-1].state is BuildState.SUCCEEDED
    assert any(b.total == 24 for b in builds)  # ninja's [n/24] drove the progress
    assert any(e.source == "build" for e in bench.recorder.events if isinstance(e, Logged))


def test_auto_flash_reflashes_armed_boards_on_new_content_only(bench: Bench) -> None:
    s2a, s2b, _ = bench.world.paths
    bench.workbench.set_armed(s2b, False)
    bench.workbench.set_auto_flash(True)
    bench.workbench.build()
    bench.wait_flashed([s2a])
    bench.wait_idle()
    assert bench.world.board(s2a).downloads_completed == 1
    assert bench.world.board(s2b).downloads_completed == 0  # disarmed

    # the same bytes written again: nothing new, nothing flashed
    data = (bench.build_dir / "dfu.bin").read_bytes()
    temporary = bench.build_dir / "dfu.bin.tmp"
    temporary.write_bytes(data)
    temporary.replace(bench.build_dir / "dfu.bin")
    assert bench.workbench.watcher.check_now() is not None
    bench.wait_idle()
    assert bench.world.board(s2a).downloads_completed == 1

    bench.workbench.build()  # new content
    bench.recorder.wait(
        lambda: bench.world.board(s2a).downloads_completed == 2, "the second auto-flash"
    )
    bench.wait_idle()
    _assert_board_holds(bench, s2a)


def test_a_failed_build_flashes_nothing(bench: Bench) -> None:
    project_dir = bench.workbench.settings.project_dir
    assert project_dir is not None
    (project_dir / "main" / "FAIL").write_text("")
    bench.workbench.build(then_flash=True)
    bench.recorder.wait(
        lambda: bench.workbench.build_status.state is BuildState.FAILED, "the failed build"
    )
    bench.wait_idle()
    log = bench.recorder.logged()
    assert "Build failed: nothing is flashed." in log and "error:" in log
    assert all(view.last is None for view in bench.workbench.boards().values())


def test_a_label_is_shown_and_saved(bench: Bench) -> None:
    path = bench.world.paths[0]
    bench.workbench.set_label(path, "  left jig ")
    assert bench.workbench.boards()[path].title == "left jig"
    changes = [e.view for e in bench.recorder.events if isinstance(e, BoardChanged)]
    assert changes[-1].label == "left jig"


def test_hot_plug_adds_and_removes_panels(bench: Bench) -> None:
    from espdfu.sim import BoardKind, VirtualBoard

    board = bench.world.bus.plug(VirtualBoard("esp32s2", kind=BoardKind.DFU))
    bench.recorder.wait(lambda: board.path in bench.workbench.boards(), "the new board")
    board.unplug()
    bench.recorder.wait(lambda: board.path not in bench.workbench.boards(), "its removal")
    assert any(isinstance(e, BoardRemoved) and e.path == board.path for e in bench.recorder.events)


def test_an_invalid_dfu_bin_is_shown_with_its_reason_and_not_flashed(bench: Bench) -> None:
    bench.build_dir.mkdir(parents=True, exist_ok=True)
    (bench.build_dir / "dfu.bin").write_bytes(b"\xe9" + bytes(4000))
    bench.recorder.wait(
        lambda: any(isinstance(e, ArtifactChanged) for e in bench.recorder.events), "the artifact"
    )
    artifact = bench.workbench.artifact
    assert artifact is not None and not artifact.valid
    assert "raw ESP firmware image" in artifact.problem
    assert bench.workbench.flash_all() == []


def test_stop_leaves_no_thread_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(threading.enumerate())
    generator = _bench(tmp_path, monkeypatch, "esp32s2", TimeModel.scaled(0.5))
    bench = next(generator)
    bench.workbench.build(then_flash=True)
    bench.recorder.wait(lambda: bench.workbench.busy, "work to start")
    next(generator, None)  # stop() mid-build or mid-flash
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == []


def test_newer_artifacts_while_flashing_latest_wins_and_never_twice_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = _bench(tmp_path, monkeypatch, "esp32s2*3", TimeModel.scaled(0.2), auto_flash=True)
    bench = next(generator)
    dfu = bench.build_dir / "dfu.bin"
    bench.build_dir.mkdir(parents=True, exist_ok=True)
    contents = [dfufile.build(image_files(seed=seed), pid=2) for seed in range(4)]
    for number, content in enumerate(contents):
        temporary = bench.build_dir / "next.tmp"
        temporary.write_bytes(content)
        temporary.replace(dfu)
        assert bench.workbench.watcher.check_now() is not None
        if number == 0:
            bench.recorder.wait(lambda: bench.workbench.busy, "the first flashes")
    bench.wait_idle()
    for path in bench.world.paths:
        board = bench.world.board(path)
        flashes = _flash_runs(bench.recorder, path)
        assert 2 <= flashes == board.downloads_completed <= 4  # no lost or duplicate results
        for file in image_files(seed=3):  # the last artifact won
            assert board.read_flash(file.address, len(file.data)) == file.data
    next(generator, None)


def _flash_runs(recorder: Recorder, path: str) -> int:
    """How many flashes the board's views show, checking that no two ran at once.

    Two jobs on one board would interleave their progress: the bytes done would go back
    within one run (outside a retry, which starts again at 0 with a higher attempt number).
    """
    runs = 0
    last: tuple[int, int] | None = None  # (attempt, done) of the run in progress
    for event in recorder.events:
        if not isinstance(event, BoardChanged) or event.view.path != path:
            continue
        progress = event.view.progress
        if progress is None:
            last = None
            continue
        if last is None:
            runs += 1
        else:
            assert (progress.attempt, progress.done) >= last, "two flashes ran at once"
        last = (progress.attempt, progress.done)
    return runs
