"""The ``espdfu`` command run as users run it: to its end, or running while the test waits for
its output lines (bounded)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

DEADLINE_S = 20.0


def labelled(folder: Path, labels: dict[str, str]) -> dict[str, str]:
    """An environment whose configuration (in ``folder``, made) gives the boards ``labels``
    (port path → label)."""
    folder.mkdir()
    lines = "".join(f'"{path}" = "{label}"\n' for path, label in labels.items())
    (folder / "labels.toml").write_text(f"[labels]\n{lines}")
    return {"ESPDFU_CONFIG_DIR": str(folder)}


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    """Virtual boards instant; a hung command's threads can be dumped (faulthandler, on
    SIGABRT)."""
    return {**os.environ, "ESPDFU_SIM_TIME": "0", "PYTHONFAULTHANDLER": "1", **(env or {})}


def espdfu(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``espdfu ARGS`` to its end (virtual boards instant); never a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "espdfu", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_environment(env),
        timeout=60,
    )
    assert "Traceback" not in result.stderr
    return result


class Command:
    """``espdfu ARGS`` running, its stdout read on a thread; expect() waits for a line with some
    words, stop() signals it and waits for its end."""

    def __init__(
        self, *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "espdfu", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=_environment(env),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self.reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.lines.put(line)

    def stop(self, signum: int) -> tuple[int, str]:
        """Send ``signum``; the exit code and what the command wrote on stderr, never a
        traceback. One still running DEADLINE_S later fails the test with where each of its
        threads stood (a hang seen once in CI, never here, is then found from its log)."""
        self.process.send_signal(signum)
        assert self.process.stderr is not None
        try:
            code = self.process.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            self.process.wait(timeout=10)
            stacks = self.process.stderr.read()
            raise AssertionError(
                f"still running {DEADLINE_S:.0f} s after the signal:\n{stacks}"
            ) from None
        err = self.process.stderr.read()
        assert "Traceback" not in err
        return code, err

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def expect(self, words: str) -> str:
        return self.expect_all(words)[0]

    def expect_all(self, *words: str) -> list[str]:
        """A line with each of ``words``, in whatever order they come (boards race each
        other); lines before the last of them are passed over."""
        wanted = list(words)
        found: dict[str, str] = {}
        deadline = time.monotonic() + DEADLINE_S
        while wanted and time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            match = next((each for each in wanted if each in line), None)
            if match is not None:
                wanted.remove(match)
                found[match] = line
        if wanted:
            raise AssertionError(f"no line with {wanted[0]!r}; got:\n{''.join(self.seen)}")
        return [found[each] for each in words]
