"""The build runner: one build command at a time, its output streamed line by line.

The command runs without a shell, in a process group of its own, so cancelling it ends
everything it started (idf.py runs ninja, ninja runs compilers), not just the first process.
Ninja's ``[n/m]`` status at the start of a line gives the progress.
"""

from __future__ import annotations

import contextlib
import enum
import io
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EspdfuError, InputError

log = logging.getLogger(__name__)

IDF_PY = "idf.py"
KILL_AFTER_S = 3.0
"""How long a cancelled build gets to end after the polite signal, before it is killed."""

_PROGRESS = re.compile(r"\[(\d+)/(\d+)\]")
# "error" as a word: "main.c:3: error:", "CMake Error at", but not the flag "-Werror".
_ERROR = re.compile(r"(?i:\berror\b)|FAILED:")
# ESP-IDF compiles with -fdiagnostics-color=always, so compiler lines come with colour codes.
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
_MAX_LINE = 64 * 1024  # characters: longer lines arrive in pieces, so memory stays bounded
_ERROR_LINES = 10
_CHECK_COMMAND = "Check the build command (--build-cmd)."


class BuildState(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class BuildResult:
    state: BuildState
    returncode: int | None
    seconds: float
    command: tuple[str, ...]
    error_lines: tuple[str, ...]
    """For a failed build, the last lines that say what went wrong (at most 10)."""

    @property
    def ok(self) -> bool:
        return self.state is BuildState.SUCCEEDED


class BuildError(EspdfuError):
    """A build cannot be started."""


@dataclass
class _Build:
    """One run of the command, from start to result."""

    process: subprocess.Popen[bytes]
    started: float
    output_ended: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    killer: threading.Thread | None = None
    result: BuildResult | None = None


class BuildRunner:
    """Runs the build command on a thread and reports its lines, progress and result.

    The callbacks are called on the runner's thread. ``on_done`` is called once per build,
    after the process ended and all its output was delivered; the build counts as running
    until it returns. ``env`` is the command's whole environment (default: this process's).
    """

    def __init__(
        self,
        command: Sequence[str],
        cwd: Path,
        *,
        on_line: Callable[[str], None],
        on_progress: Callable[[int, int], None],
        on_done: Callable[[BuildResult], None],
        env: Mapping[str, str] | None = None,
        kill_after_s: float = KILL_AFTER_S,
    ) -> None:
        self.command = tuple(command)
        self.cwd = Path(cwd)
        self._on_line = on_line
        self._on_progress = on_progress
        self._on_done = on_done
        self._env = env
        self._kill_after_s = kill_after_s
        self._lock = threading.Lock()
        self._build: _Build | None = None

    @property
    def state(self) -> BuildState:
        with self._lock:
            build = self._build
        if build is None:
            return BuildState.IDLE
        return BuildState.RUNNING if build.result is None else build.result.state

    @property
    def running(self) -> bool:
        return self.state is BuildState.RUNNING

    def start(self) -> None:
        """Start the command and follow it (see :meth:`spawn` and :meth:`follow`)."""
        self.spawn()
        self.follow()

    def spawn(self) -> None:
        """Start the command, not yet reading it: nothing is called back until :meth:`follow`
        (an owner records the build as started in between). :class:`BuildError` when it
        cannot start or a build is running."""
        if not self.command:
            raise BuildError("The build command is empty.", "Give one with --build-cmd.")
        with self._lock:
            if self._build is not None and self._build.result is None:
                raise BuildError(
                    "A build is already running.", "Wait for it to finish, or cancel it."
                )
            if not self.cwd.is_dir():
                raise BuildError(f"The project folder {self.cwd} does not exist.")
            # Python tools (idf.py, esptool) buffer a pipe by blocks; their lines should stream.
            env = {"PYTHONUNBUFFERED": "1", **(os.environ if self._env is None else self._env)}
            program = _find_program(self.command[0], self.cwd, env)
            try:
                process = subprocess.Popen(
                    [program, *self.command[1:]],
                    cwd=self.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    **_new_process_group(),
                )
            except OSError as error:
                raise BuildError(
                    f"Cannot start {self.command[0]}: {error.strerror or error}.", _CHECK_COMMAND
                ) from None
            except ValueError:  # a NUL character, which no argument can hold
                raise BuildError(
                    f"Cannot start {self.command[0]}: an argument holds a NUL character.",
                    _CHECK_COMMAND,
                ) from None
            self._build = _Build(process, time.monotonic())

    def follow(self) -> None:
        """Read the spawned build's output on a thread, calling back until its result."""
        with self._lock:
            build = self._build
        assert build is not None, "follow() comes after spawn()"
        threading.Thread(target=self._run, args=(build,), name="espdfu-build", daemon=True).start()

    def cancel(self) -> None:
        """Ask the whole process group to end; kill it if it has not within ``kill_after_s``.

        Returns at once; :meth:`wait` for the result, which is CANCELLED. Harmless when no
        build is running.
        """
        with self._lock:
            build = self._build
            if build is None or build.cancelled or build.output_ended.is_set():
                return
            build.cancelled = True
            _signal_group(build.process, kill=False)
            build.killer = threading.Thread(
                target=self._kill_if_lingering, args=(build,), name="espdfu-build-kill"
            )
            build.killer.start()

    def wait(self, timeout_s: float | None = None) -> BuildResult | None:
        """The result of the current or last build, waiting up to ``timeout_s`` for it."""
        with self._lock:
            build = self._build
        if build is None or not build.done.wait(timeout_s):
            return None
        return build.result

    def _kill_if_lingering(self, build: _Build) -> None:
        if not build.output_ended.wait(self._kill_after_s):
            _signal_group(build.process, kill=True)

    def _run(self, build: _Build) -> None:
        recent: deque[str] = deque(maxlen=_ERROR_LINES)
        errors: deque[str] = deque(maxlen=_ERROR_LINES)
        try:
            self._pump(build, recent, errors)
        except Exception:  # the output cannot be followed: end the build rather than hang
            log.exception("reading the build's output failed")
            _signal_group(build.process, kill=True)
        with self._lock:
            build.output_ended.set()
            cancelled, killer = build.cancelled, build.killer
        if cancelled:
            # Whatever ignored the polite signal and let go of the output goes now; the
            # leader is not reaped yet, so its group id cannot name anybody else.
            _signal_group(build.process, kill=True)
        returncode = build.process.wait()
        if killer is not None:
            killer.join()
        if cancelled:
            state = BuildState.CANCELLED
        else:
            state = BuildState.SUCCEEDED if returncode == 0 else BuildState.FAILED
        result = BuildResult(
            state=state,
            returncode=returncode,
            seconds=time.monotonic() - build.started,
            command=self.command,
            error_lines=tuple(errors or recent) if state is BuildState.FAILED else (),
        )
        try:
            self._on_done(result)
        except Exception:
            log.exception("on_done failed")
        with self._lock:
            build.result = result
        build.done.set()

    def _pump(self, build: _Build, recent: deque[str], errors: deque[str]) -> None:
        """Deliver every line of output; ``\\r`` ends a line too (universal newlines)."""
        assert build.process.stdout is not None
        with io.TextIOWrapper(build.process.stdout, encoding="utf-8", errors="replace") as stream:
            for raw in iter(lambda: stream.readline(_MAX_LINE), ""):
                line = _ANSI.sub("", raw).rstrip()
                _call(self._on_line, line)
                progress = _PROGRESS.match(line)
                if progress:
                    _call(self._on_progress, int(progress[1]), int(progress[2]))
                if line.strip():
                    recent.append(line)
                    if _ERROR.search(line):
                        errors.append(line)


def project_folder(path: Path) -> Path:
    """``path`` as the project folder asked for, refused when it is none."""
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise InputError(
            f"The project folder {path} {what}.",
            "Name the folder of an ESP-IDF project (the one with its CMakeLists.txt), or start "
            "espdfu-tui in it and name none.",
        )
    return path


def find_project(start: Path) -> Path | None:
    """The ESP-IDF project folder that holds ``start`` (or is it), or None.

    A project folder has a CMakeLists.txt and an sdkconfig or a build folder; that tells it
    from its components, which have a CMakeLists.txt too.
    """
    folder = Path(start).resolve()
    if not _is_dir(folder):
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        if _is_file(candidate / "CMakeLists.txt") and (
            _is_file(candidate / "sdkconfig") or _is_dir(candidate / "build")
        ):
            return candidate
    return None


def _find_program(name: str, cwd: Path, env: Mapping[str, str]) -> str:
    """The program to run for ``name``: a path (from ``cwd``) or looked up on the command's PATH."""
    if Path(name).name != name:  # a path, not a name to look up
        if (cwd / name).is_file():
            return name
        raise BuildError(f"Cannot build: {cwd / name} does not exist.", _CHECK_COMMAND)
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is not None:
        return found
    if name == IDF_PY:
        raise BuildError(
            "Cannot build: idf.py was not found on PATH, so ESP-IDF is not set up in this shell.",
            "Run ESP-IDF's export script first (`. $IDF_PATH/export.sh`; on Windows "
            "`%IDF_PATH%\\export.bat` or `export.ps1`) and start espdfu-tui from that shell, "
            "or give another build command with --build-cmd.",
        )
    raise BuildError(f"Cannot build: {name} was not found on PATH.", _CHECK_COMMAND)


def _new_process_group() -> dict[str, Any]:
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    else:  # an if/else, so that mypy checks each platform's branch on that platform
        return {"start_new_session": True}


def _signal_group(process: subprocess.Popen[bytes], *, kill: bool) -> None:
    """Ask (or, with ``kill``, force) the command and everything it started to end."""
    if sys.platform == "win32":
        # Errors: the tree has ended already, or cannot be ended from here.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if kill:  # taskkill /T follows the process tree, which TerminateProcess would not
                subprocess.run(
                    ["taskkill", "/F", "/T", "/PID", str(process.pid)],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=KILL_AFTER_S,
                    check=False,
                )
            else:
                process.send_signal(signal.CTRL_BREAK_EVENT)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group has ended
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)


def _call(callback: Callable[..., None], *args: Any) -> None:
    """Call back, keeping on reading whatever it does: a blocked pipe would stall the build."""
    try:
        callback(*args)
    except Exception:
        log.exception("a build callback failed")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False
