"""Run the real ``espdfu-tui`` in a pseudo-terminal, as a terminal emulator would see it."""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import signal
import struct
import sys
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PtyApp:
    """The app's process, and every byte it wrote to the terminal, with when."""

    pid: int
    fd: int
    started: float
    chunks: list[tuple[float, int]] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], size: tuple[int, int]) -> PtyApp:
        program = shutil.which("espdfu-tui", path=str(Path(sys.executable).parent))
        if program is None:
            raise RuntimeError("espdfu-tui is not installed beside this Python")
        started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: the terminal's size first, as an emulator sets it
            columns, rows = size
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            os.execve(program, [program, *args], {**os.environ, **env})
        app = cls(pid, fd, started)
        app.reader = threading.Thread(target=app._read, daemon=True)
        app.reader.start()
        return app

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            self.chunks.append((time.perf_counter(), len(data)))
            self.text += data

    def wait_for(self, marker: bytes, timeout_s: float = 30.0) -> float:
        """Seconds from start until ``marker`` was on the screen."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if marker in self.text:
                return time.perf_counter() - self.started
            time.sleep(0.01)
        raise RuntimeError(f"the app never showed {marker!r}")

    def press(self, key: bytes) -> None:
        os.write(self.fd, key)

    def bytes_between(self, start: float, end: float) -> int:
        return sum(size for when, size in self.chunks if start <= when < end)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        """Quit with q (as a user does); kill it if it has not gone within 10 s."""
        self.press(b"q")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.waitpid(self.pid, os.WNOHANG) != (0, 0):
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
