"""The workbench headless: virtual boards, real watchdog on a temp folder, real build processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from espdfu.bench.build import BuildState
from espdfu.bench.views import (
    ArtifactChanged,
    BenchEvent,
    BoardChanged,
    BoardRemoved,
    BuildChanged,
    Logged,
)
from espdfu.errors import InputError
from espdfu.files import dfufile
from espdfu.files.idfbuild import BuildFolder, flash_files_from_json, read_flash_files
from espdfu.flashing.flasher import Failure, FlashOptions, FlashResult
from espdfu.sim import TimeModel
from espdfu.usb.trace import TraceFolder, trace_files
from tests.helpers.bench import Bench, bench_on
from tests.helpers.boardworld import assert_flashed, image_files
from tests.helpers.soak import TIMEOUT_S, Recorder, holds, ledger, rebuild
from tests.helpers.traces import read_lines


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    yield from bench_on(tmp_path, monkeypatch, "esp32s2*2,esp32s3", TimeModel.instant())


def _assert_board_holds(bench: Bench, path: str) -> None:
    """The board's flash holds every image of the build at its address."""
    specs = flash_files_from_json(bench.build_dir / "flasher_args.json")
    assert_flashed(bench.world.board(path), read_flash_files(specs))


def test_boards_appear_armed_with_no_artifact(bench: Bench) -> None:
    views = bench.workbench.boards()
    assert sorted(views) == bench.world.paths
    assert all(view.armed and view.state == "ready" for view in views.values())
    assert bench.workbench.summary.artifact is None
    assert bench.workbench.flash_all() == []
    assert "Nothing to flash: there is no dfu.bin yet." in bench.logged()


def test_a_cancelled_flash_is_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = bench_on(tmp_path, monkeypatch, "esp32s2", TimeModel.scaled(0.3))
    bench = next(generator)
    (path,) = bench.world.paths
    bench.workbench.build(then_flash=True)
    bench.recorder.wait(
        lambda: bench.workbench.boards()[path].state.startswith("flashing "), "the download"
    )
    assert bench.workbench.cancel_flash(path)
    bench.wait_flashed([path])
    view = bench.workbench.boards()[path]
    assert view.cancelled and view.state.startswith("cancelled at byte ")
    assert f"{path}: Cancelled at byte " in bench.logged()
    assert "Press RESET" not in bench.logged()
    next(generator, None)


def test_with_trace_on_each_flash_has_its_trace_and_the_log_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[flash] trace = true in the app: a file per flash in the traces folder."""
    folder = tmp_path / "traces"
    options = FlashOptions(progress_interval_s=0.01, trace=TraceFolder(folder))
    generator = bench_on(tmp_path, monkeypatch, "esp32s2*2", TimeModel.instant(), flash=options)
    bench = next(generator)
    assert f"Each flash is traced into {folder} (a file per flash" in bench.recorder.logged()
    bench.workbench.build(then_flash=True)
    bench.wait_flashed(bench.world.paths)
    traces = [read_lines(file) for file in trace_files(folder)]
    assert sorted(lines[1]["board"] for lines in traces) == bench.world.paths
    assert all(lines[-1]["event"] == "result" and lines[-1]["ok"] for lines in traces)
    next(generator, None)


def test_build_then_flash_reaches_the_armed_boards_that_can_take_it(bench: Bench) -> None:
    s2a, s2b, s3 = bench.world.paths
    bench.workbench.build(then_flash=True)
    bench.wait_flashed([s2a, s2b])
    bench.wait_idle()
    views = bench.workbench.boards()
    assert views[s2a].state == views[s2b].state == "flashed"
    assert views[s3].last is None  # wrong chip: never started
    logged = bench.logged()  # the RESET advice once, for the round
    assert logged.count("Press RESET") == 1
    assert f"Press RESET on {s2a} and {s2b} to run the new firmware" in logged
    assert f"{s3}: not flashed: The file is for esp32s2" in bench.logged()
    for path in (s2a, s2b):
        _assert_board_holds(bench, path)
    builds = [e.status for e in bench.events() if isinstance(e, BuildChanged)]
    assert builds[0].state is BuildState.RUNNING and builds[-1].state is BuildState.SUCCEEDED
    assert any(b.total == 24 for b in builds)  # ninja's [n/24] drove the progress
    assert any(e.source == "build" for e in bench.events() if isinstance(e, Logged))


def test_build_then_flash_with_auto_flash_on_starts_each_flash_once(bench: Bench) -> None:
    """`x` with auto-flash on: the build's artifact is flashed by one rule, once per board,
    with no "being flashed already" for the trigger that came second."""
    s2a, s2b, _ = bench.world.paths
    bench.workbench.set_auto_flash(True)
    bench.workbench.build(then_flash=True)
    bench.wait_flashed([s2a, s2b])
    bench.wait_idle()
    logged = bench.logged()
    assert "being flashed already" not in logged
    for path in (s2a, s2b):
        assert bench.world.board(path).downloads_completed == 1
        assert logged.count(f"{path}: Flashed") == 1


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
    # no console was read (no RESET, so no app): no boot named the first build, no base, so
    # the whole file again, never only the changes
    assert "sectors changed" not in bench.logged()
    assert "app.bin" in {file.name for file in bench.world.board(s2a).last_files}


def test_a_failed_build_flashes_nothing(bench: Bench) -> None:
    project_dir = bench.workbench.settings.project_dir
    assert project_dir is not None
    (project_dir / "main" / "FAIL").write_text("")
    bench.workbench.build(then_flash=True)
    bench.recorder.wait(
        lambda: bench.workbench.summary.build.state is BuildState.FAILED, "the failed build"
    )
    bench.wait_idle()
    log = bench.logged()
    assert "Build failed: nothing is flashed." in log and "error:" in log
    assert all(view.last is None for view in bench.workbench.boards().values())


def test_a_label_is_shown_and_saved(bench: Bench) -> None:
    path = bench.world.paths[0]
    bench.workbench.set_label(path, "  left jig ")
    assert bench.workbench.boards()[path].title == "left jig"
    changes = [e.view for e in bench.events() if isinstance(e, BoardChanged)]
    assert changes[-1].label == "left jig"


def test_hot_plug_adds_and_removes_panels(bench: Bench) -> None:
    from espdfu.sim import BoardKind, VirtualBoard

    board = bench.world.bus.plug(VirtualBoard("esp32s2", kind=BoardKind.DFU))
    bench.recorder.wait(lambda: board.path in bench.workbench.boards(), "the new board")
    board.unplug()
    bench.recorder.wait(lambda: board.path not in bench.workbench.boards(), "its removal")
    assert any(isinstance(e, BoardRemoved) and e.path == board.path for e in bench.events())


def test_an_invalid_dfu_bin_is_shown_with_its_reason_and_not_flashed(bench: Bench) -> None:
    bench.build_dir.mkdir(parents=True, exist_ok=True)
    (bench.build_dir / "dfu.bin").write_bytes(b"\xe9" + bytes(4000))
    bench.recorder.wait(
        lambda: any(isinstance(e, ArtifactChanged) for e in bench.recorder.events), "the artifact"
    )
    artifact = bench.workbench.summary.artifact
    assert artifact is not None and not artifact.valid
    assert "raw ESP firmware image" in artifact.problem
    assert bench.workbench.flash_all() == []


def test_a_dfu_bin_older_than_its_build_is_shown_not_usable_and_not_flashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain `idf.py build` run elsewhere, with make_dfu off: the dfu.bin there holds an older
    app, and `F` flashed it as the current one."""
    generator = bench_on(tmp_path, monkeypatch, "esp32s2", TimeModel.instant(), make_dfu=False)
    bench = next(generator)
    try:
        bench.workbench.build()  # the demo's `idf.py dfu`
        bench.recorder.wait(lambda: bench.workbench.summary.artifact is not None, "the dfu.bin")
        made = bench.workbench.summary.artifact
        app = bench.build_dir / "app.bin"
        app.write_bytes(app.read_bytes()[::-1])
        bench.recorder.wait(
            lambda: bench.workbench.summary.artifact is not made, "the dfu.bin judged again"
        )
        artifact = bench.workbench.summary.artifact
        why = "it holds an older copy of build/app.bin (`idf.py dfu` makes it again)"
        assert artifact is not None and not artifact.valid and artifact.problem == why
        assert bench.workbench.flash_all() == []
        logged = bench.logged()
        assert f"Nothing to flash: {why}." in logged
        assert "build/dfu.bin holds an older copy of build/app.bin; espdfu makes no dfu.bin" in (
            logged
        )
        assert bench.world.board(bench.world.paths[0]).downloads_completed == 0
    finally:
        next(generator, None)


def test_f_with_a_build_missing_an_image_says_what_mkdfu_says(bench: Bench) -> None:
    """Not "Nothing to flash: there is no dfu.bin yet" alone: which image flasher_args.json
    names that is not there, in the words of `espdfu mkdfu --build-dir`, in the summary the
    app's status line shows and in the log."""
    bench.build_dir.mkdir(parents=True)
    (bench.build_dir / "project_description.json").write_text('{"target": "esp32s2"}')
    (bench.build_dir / "flasher_args.json").write_text('{"flash_files": {"0x10000": "app.bin"}}')
    with pytest.raises(InputError) as mkdfu:
        BuildFolder.open(bench.build_dir).make_dfu()
    bench.recorder.wait(lambda: bench.workbench.summary.unmade != "", "the missing image")
    assert bench.workbench.summary.unmade == str(mkdfu.value)
    assert bench.workbench.flash_all() == []
    said = f"Nothing to flash: there is no dfu.bin yet. {mkdfu.value}"
    assert said in bench.recorder.logged().splitlines()


def test_stop_leaves_no_thread_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(threading.enumerate())
    generator = bench_on(tmp_path, monkeypatch, "esp32s2", TimeModel.scaled(0.5))
    bench = next(generator)
    bench.workbench.build(then_flash=True)
    bench.recorder.wait(lambda: bench.workbench.busy, "work to start")
    next(generator, None)  # stop() mid-build or mid-flash
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == []


def test_newer_artifacts_while_flashing_latest_wins_and_never_twice_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = bench_on(tmp_path, monkeypatch, "esp32s2*3", TimeModel.scaled(0.2), auto_flash=True)
    bench = next(generator)
    dfu = bench.build_dir / "dfu.bin"
    bench.build_dir.mkdir(parents=True, exist_ok=True)
    contents = [dfufile.pack(image_files(seed=seed), pid=2) for seed in range(4)]
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


def test_an_artifact_that_comes_while_the_board_is_away_in_its_flash_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ROM board leaves the bus after DETACH and comes back in DFU mode: a dfu.bin that
    arrives meanwhile is flashed after the running flash (it was dropped, the board left
    holding the older firmware)."""
    time_model = TimeModel(scale=0.02, reenumerate_s=50.0)  # off the bus for 1 s
    generator = bench_on(tmp_path, monkeypatch, "esp32s2", time_model, auto_flash=True)
    bench = next(generator)
    (path,) = bench.world.paths
    dfu = bench.build_dir / "dfu.bin"
    bench.build_dir.mkdir(parents=True, exist_ok=True)
    dfufile.save(dfu, dfufile.pack(image_files(seed=0), pid=2))
    assert bench.workbench.watcher.check_now() is not None
    bench.recorder.wait(
        lambda: (
            (view := bench.workbench.boards().get(path)) is not None
            and view.flashing
            and not view.present
        ),
        "the board to leave the bus in its flash",
    )
    dfufile.save(dfu, dfufile.pack(image_files(seed=1), pid=2))
    assert bench.workbench.watcher.check_now() is not None
    bench.recorder.wait(lambda: bench.world.board(path).downloads_completed == 2, "two flashes")
    bench.wait_idle()
    for file in image_files(seed=1):
        assert bench.world.board(path).read_flash(file.address, len(file.data)) == file.data
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


# --- threads meeting at the worst moment ------------------------------------------------------
# The recorder's ``before`` hook runs on the thread that reports an event, before the event is
# taken: it stands for a front end slow to take it, or that thread paused at that moment.

SOAK_TIME = TimeModel.scaled(0.2)


def _once(
    match: Callable[[BenchEvent], bool], action: Callable[[], None]
) -> Callable[[BenchEvent], None]:
    """A hook that runs ``action`` at the first event that ``match`` picks."""
    lock = threading.Lock()
    done = False

    def hook(event: BenchEvent) -> None:
        nonlocal done
        with lock:
            first = not done and match(event)
            done = done or first
        if first:
            action()

    return hook


def _result(event: BenchEvent) -> FlashResult | None:
    """The result an event shows as a flash ends (a view without progress, with a result)."""
    if isinstance(event, BoardChanged) and event.view.progress is None:
        return event.view.last
    return None


def _land(bench: Bench, seed: int) -> None:
    """A new dfu.bin lands, and is read at once on this thread."""
    rebuild(bench.build_dir, seed)
    assert bench.workbench.watcher.check_now() is not None


def _quietbench_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, recorder: Recorder
) -> Iterator[Bench]:
    """Auto-flash on; artifacts land only when the test says so (the watcher thread stopped)."""
    generator = bench_on(tmp_path, monkeypatch, spec, SOAK_TIME, recorder, auto_flash=True)
    bench = next(generator)
    bench.workbench.watcher.stop()
    bench.build_dir.mkdir(parents=True, exist_ok=True)
    yield bench
    next(generator, None)


def test_an_artifact_landing_as_a_flash_ends_wins_over_the_one_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def land_the_last() -> None:
        _land(rig, 2)  # on the job's own thread, as its result is being reported

    hook = _once(lambda event: _result(event) is not None, land_the_last)
    generator = _quietbench_on(tmp_path, monkeypatch, "esp32s2-dfu", Recorder(hook))
    rig = next(generator)
    (path,) = rig.world.paths
    board = rig.world.board(path)
    _land(rig, 0)
    _land(rig, 1)  # queued behind the flash of 0
    rig.recorder.wait(
        lambda: board.downloads_completed == 3 and not rig.workbench.busy, "three flashes"
    )
    assert holds(board, 2)  # 2 came last: 1 was flashed before it, never after
    next(generator, None)


def test_the_last_event_about_a_board_shows_its_state_though_a_thread_was_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def the_disarm(event: BenchEvent) -> bool:
        on_main = threading.current_thread() is threading.main_thread()
        return on_main and isinstance(event, BoardChanged) and not event.view.armed

    def held_up() -> None:
        # The thread reporting the disarm is held up until the flash has ended meanwhile (no
        # event can tell: they may be waiting behind this one).
        deadline = time.monotonic() + TIMEOUT_S
        while rig.workbench.busy and time.monotonic() < deadline:
            time.sleep(0.005)

    generator = _quietbench_on(
        tmp_path, monkeypatch, "esp32s2-dfu", Recorder(_once(the_disarm, held_up))
    )
    rig = next(generator)
    (path,) = rig.world.paths
    board = rig.world.board(path)
    _land(rig, 0)
    rig.recorder.wait(lambda: rig.workbench.boards()[path].flashing, "the flash")
    rig.workbench.set_armed(path, False)
    rig.wait_idle()
    assert board.downloads_completed == 1
    shown = [e.view for e in rig.events() if isinstance(e, BoardChanged)][-1]
    assert shown == rig.workbench.boards()[path]
    assert shown.state == "flashed" and not shown.armed
    next(generator, None)


def test_no_flash_starts_and_no_event_comes_once_stop_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cancelled(event: BenchEvent) -> bool:
        result = _result(event)
        error = result.error if result is not None else None
        return error is not None and error.kind is Failure.CANCELLED

    def land() -> None:
        _land(rig, 1)  # a rebuild lands just as stop() cancels the flashes

    generator = _quietbench_on(
        tmp_path, monkeypatch, "esp32s2-dfu*2", Recorder(_once(cancelled, land))
    )
    rig = next(generator)
    _land(rig, 0)
    rig.recorder.wait(lambda: rig.workbench.busy, "the flashes")
    next(generator, None)  # stop()
    left = [t for t in threading.enumerate() if t.name.startswith("espdfu-job")]
    count = len(rig.recorder.events)
    for thread in left:
        thread.join(TIMEOUT_S)
    assert left == []
    assert len(rig.recorder.events) == count
    landed = [e for e in rig.recorder.events if isinstance(e, ArtifactChanged)]
    assert len(landed) == 2  # the second one during stop()


def test_stop_waits_for_a_result_still_being_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reporting = threading.Event()

    def slow_front_end() -> None:
        reporting.set()
        time.sleep(0.3)

    hook = _once(lambda event: _result(event) is not None, slow_front_end)
    generator = _quietbench_on(tmp_path, monkeypatch, "esp32s2-dfu", Recorder(hook))
    rig = next(generator)
    _land(rig, 0)
    assert reporting.wait(TIMEOUT_S)  # the flash is over; its result is being taken
    next(generator, None)  # stop()
    count = len(rig.recorder.events)
    for thread in threading.enumerate():
        if thread.name.startswith("espdfu-job"):
            thread.join(TIMEOUT_S)
    assert len(rig.recorder.events) == count
    assert any(_result(event) is not None for event in rig.recorder.events)


def test_a_rebuild_back_to_what_a_board_held_is_flashed_after_the_running_flash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = _quietbench_on(tmp_path, monkeypatch, "esp32s2-dfu", Recorder())
    rig = next(generator)
    board = rig.world.board(rig.world.paths[0])
    _land(rig, 0)
    rig.recorder.wait(lambda: board.downloads_completed == 1 and not rig.workbench.busy, "0")
    _land(rig, 1)
    _land(rig, 0)  # back to what the board held, while 1 is being flashed
    rig.recorder.wait(lambda: board.downloads_completed == 3 and not rig.workbench.busy, "0 again")
    assert holds(board, 0)
    next(generator, None)


def test_a_rebuild_back_to_the_content_being_flashed_drops_the_one_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = _quietbench_on(tmp_path, monkeypatch, "esp32s2-dfu", Recorder())
    rig = next(generator)
    board = rig.world.board(rig.world.paths[0])
    _land(rig, 0)
    _land(rig, 1)  # queued behind 0
    _land(rig, 0)  # and superseded by the content being flashed
    rig.wait_idle()
    next(generator, None)
    assert ledger(rig.recorder.events).started.total() == 1  # 1 never started, then or later
    assert board.downloads_completed == 1 and holds(board, 0)
