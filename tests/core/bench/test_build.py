"""The build runner against real processes: small Python scripts that act like a build."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from espdfu.bench.build import (
    KILL_AFTER_S,
    BuildError,
    BuildResult,
    BuildRunner,
    BuildState,
    find_project,
)

WAIT_S = 10.0


class Recorder:
    """Collects what a runner reports, from its thread."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.progress: list[tuple[int, int]] = []
        self.results: list[BuildResult] = []
        self.line_seen = threading.Condition()

    def on_line(self, line: str) -> None:
        with self.line_seen:
            self.lines.append(line)
            self.line_seen.notify_all()

    def on_progress(self, done: int, total: int) -> None:
        self.progress.append((done, total))

    def on_done(self, result: BuildResult) -> None:
        self.results.append(result)

    def runner(self, script: Path, cwd: Path, kill_after_s: float = KILL_AFTER_S) -> BuildRunner:
        return BuildRunner(
            (sys.executable, str(script)),
            cwd,
            on_line=self.on_line,
            on_progress=self.on_progress,
            on_done=self.on_done,
            kill_after_s=kill_after_s,
        )

    def wait_for_line(self, prefix: str) -> str:
        with self.line_seen:
            found = self.line_seen.wait_for(
                lambda: [line for line in self.lines if line.startswith(prefix)], WAIT_S
            )
        assert found, f"no line starting with {prefix!r} in {self.lines}"
        return found[0]


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake_build.py"
    script.write_text(textwrap.dedent(body))
    return script


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie nobody reaped (PID 1 may not) counts as ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_lines_and_ninja_progress(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        r"""
        import sys
        for n in (1, 2, 3):
            print(f"[{n}/3] Building C object main.c.obj")
        sys.stdout.write("Project build complete.\r\nprogress\rdone\n")
        print("\x1b[01;32mcolour\x1b[m   ")
        """,
    )
    record = Recorder()
    runner = record.runner(script, tmp_path)
    assert runner.state is BuildState.IDLE and runner.wait(0) is None
    runner.start()
    result = runner.wait(WAIT_S)
    assert result is not None and result.ok and result.returncode == 0
    assert result.error_lines == () and result.command == (sys.executable, str(script))
    assert record.lines == [
        "[1/3] Building C object main.c.obj",
        "[2/3] Building C object main.c.obj",
        "[3/3] Building C object main.c.obj",
        "Project build complete.",
        "progress",
        "done",
        "colour",
    ]
    assert record.progress == [(1, 3), (2, 3), (3, 3)]
    assert record.results == [result]
    assert (runner.state, runner.running) == (BuildState.SUCCEEDED, False)


def test_a_failed_build_says_what_went_wrong(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        r"""
        import sys
        print("[1/2] Building C object main.c.obj -Werror=all")
        print("FAILED: main.c.obj")
        bold, red, off = "\x1b[01m\x1b[K", "\x1b[01;31m\x1b[K", "\x1b[m\x1b[K"
        print(f"{bold}main.c:3:5:{off} {red}error: {off}'x' undeclared")
        print("ninja: build stopped: subcommand failed.")
        sys.exit(2)
        """,
    )
    record = Recorder()
    runner = record.runner(script, tmp_path)
    runner.start()
    result = runner.wait(WAIT_S)
    assert result is not None and not result.ok
    assert (result.state, result.returncode) == (BuildState.FAILED, 2)
    assert result.error_lines == ("FAILED: main.c.obj", "main.c:3:5: error: 'x' undeclared")
    assert record.results == [result]


def test_without_error_lines_the_last_lines_are_kept(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        """
        for n in range(30):
            print(f"line {n}")
        raise SystemExit(1)
        """,
    )
    runner = Recorder().runner(script, tmp_path)
    runner.start()
    result = runner.wait(WAIT_S)
    assert result is not None and result.state is BuildState.FAILED
    assert result.error_lines == tuple(f"line {n}" for n in range(20, 30))


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX here")
@pytest.mark.parametrize("stubborn", [False, True], ids=["polite", "ignores-sigterm"])
def test_cancel_ends_the_whole_process_group(tmp_path: Path, stubborn: bool) -> None:
    """SIGTERM to the group first; what ignores it (here a grandchild that notes the signal
    and carries on) is killed once kill_after_s has passed. A polite group is given more
    than the test waits, so it ends by SIGTERM alone."""
    noted = tmp_path / "sigterm"
    handler = f"lambda *_: open({str(noted)!r}, 'w').close()"
    ignore = f"signal.signal(signal.SIGTERM, {handler})" if stubborn else ""
    grandchild_code = f"""
import os, signal, time
{ignore}
print("grandchild", os.getpid(), flush=True)
while True:
    time.sleep(60)
"""
    script = _script(
        tmp_path,
        f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {grandchild_code!r}])
        time.sleep(60)
        """,
    )
    record = Recorder()
    runner = record.runner(script, tmp_path, kill_after_s=0.5 if stubborn else 6 * WAIT_S)
    runner.start()
    grandchild = int(record.wait_for_line("grandchild ").split()[1])
    assert runner.running and _alive(grandchild)
    runner.cancel()
    result = runner.wait(WAIT_S)
    assert result is not None and result.state is BuildState.CANCELLED
    assert noted.exists() is stubborn  # it had SIGTERM and lived on: SIGKILL ended it
    deadline = time.monotonic() + WAIT_S
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(grandchild)
    assert record.results == [result]
    runner.cancel()  # harmless once the build has ended
    assert runner.state is BuildState.CANCELLED


def test_one_build_at_a_time(tmp_path: Path) -> None:
    script = _script(tmp_path, "import time\nprint('go', flush=True)\ntime.sleep(60)\n")
    record = Recorder()
    runner = record.runner(script, tmp_path)
    runner.start()
    with pytest.raises(BuildError, match="already running"):
        runner.start()
    runner.cancel()
    result = runner.wait(WAIT_S)
    assert result is not None and result.state is BuildState.CANCELLED
    runner.start()  # the next build may start once the last one has ended
    runner.cancel()
    assert runner.wait(WAIT_S) is not None and len(record.results) == 2


def test_a_missing_idf_py_says_how_to_get_it(tmp_path: Path) -> None:
    runner = BuildRunner(
        ("idf.py", "dfu"),
        tmp_path,
        on_line=print,
        on_progress=lambda done, total: None,
        on_done=print,
        env={"PATH": str(tmp_path)},
    )
    with pytest.raises(BuildError, match=r"idf\.py was not found") as caught:
        runner.start()
    assert "export.sh" in caught.value.hint and "--build-cmd" in caught.value.hint
    assert runner.state is BuildState.IDLE


def test_other_missing_commands(tmp_path: Path) -> None:
    def start(*command: str) -> BuildError:
        runner = BuildRunner(
            command, tmp_path, on_line=print, on_progress=print, on_done=print, env={}
        )
        with pytest.raises(BuildError) as caught:
            runner.start()
        return caught.value

    assert "make-firmware was not found on PATH" in start("make-firmware").message
    assert "does not exist" in start("./build.sh").message
    assert "empty" in start().message


def test_find_project(tmp_path: Path) -> None:
    project = tmp_path / "blink"
    (project / "main" / "sub").mkdir(parents=True)
    (project / "CMakeLists.txt").write_text("project(blink)\n")
    (project / "main" / "CMakeLists.txt").write_text("idf_component_register()\n")
    assert find_project(project / "main" / "sub") is None  # neither sdkconfig nor build/
    (project / "sdkconfig").write_text("")
    assert find_project(project / "main" / "sub") == project.resolve()
    assert find_project(project / "main" / "CMakeLists.txt") == project.resolve()
    assert find_project(project) == project.resolve()
    (project / "sdkconfig").unlink()
    (project / "build").mkdir()
    assert find_project(project / "build") == project.resolve()
