"""One program at a time owns the USB boards: a lock that a second start finds taken.

Two programs driving the same boards would interleave their DFU requests and break both
flashes. The lock is the operating system's lock on an open file (``flock``; one byte locked
with ``msvcrt.locking`` on Windows), so the system drops it when its process ends, however it
ends (a crash, ``kill -9``): a lock can never be left stale. The file also holds the owner's
pid and name, for the sentence the second start shows.

The file is in the user's state folder, so the lock is per user. When ``ESPDFU_CONFIG_DIR``
names a config folder of its own, the lock is kept there instead: a separate config is a
separate setup (this is how the tests run apps side by side).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import platformdirs

from .config import CONFIG_DIR_ENV, config_dir
from .errors import EspdfuError

LOCK_FILE_NAME = "espdfu.lock"
_RETRY_S = 0.05
_READ_TRIES = 20
"""How many times to read the owner's pid and name: it locks first, then writes them."""


class AlreadyRunning(EspdfuError):
    """Another program holds the lock."""

    def __init__(self, owner: str, pid: int | None) -> None:
        who = f"{owner} is already running" + (f" (pid {pid})" if pid else "")
        super().__init__(
            f"{who}; it owns the USB boards.",
            "Use that one (its terminal or its browser tab), or quit it first.",
        )
        self.owner = owner
        self.pid = pid


class InstanceLock:
    """The lock held: released by ``release()``, at the end of its ``with``, or of the process."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def lock_path() -> Path:
    """Where the lock file is (see the module's docstring)."""
    if os.environ.get(CONFIG_DIR_ENV):
        return config_dir() / LOCK_FILE_NAME
    return Path(platformdirs.user_state_dir("espdfu")) / LOCK_FILE_NAME


def take_instance_lock(owner: str, *, path: Path | None = None, wait_s: float = 0) -> InstanceLock:
    """Hold the lock for this process, as ``owner`` (a program's name), or raise AlreadyRunning.

    ``wait_s``: how long to keep trying while another process holds it, for a start that
    follows a quit closely (a browser tab reloaded: the old app is still leaving).
    """
    path = path or lock_path()
    held = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            held = _hold(fd, owner, wait_s)
        finally:
            if not held:
                os.close(fd)
    except OSError as error:  # a folder that cannot be written, a file system without locks
        raise EspdfuError(
            f"Cannot use the lock file {path}: {error.strerror}.",
            f"Make that folder writable, or name another config folder with {CONFIG_DIR_ENV}.",
        ) from error
    if not held:
        holder, pid = _read_owner(path)
        raise AlreadyRunning(holder or owner, pid)
    return InstanceLock(path, fd)


def _hold(fd: int, owner: str, wait_s: float) -> bool:
    """Lock the open file (trying for ``wait_s``) and write the owner in; False: held by another."""
    deadline = time.monotonic() + wait_s
    while not _try_lock(fd):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_RETRY_S)
    content = f"{os.getpid()} {owner}\n".encode()
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, content)
    os.ftruncate(fd, len(content))
    return True


def _read_owner(path: Path) -> tuple[str | None, int | None]:
    """The lock holder's name and pid, as it wrote them (a moment after it took the lock)."""
    for _ in range(_READ_TRIES):
        try:
            first = path.read_text(encoding="utf-8", errors="replace").partition("\n")[0]
        except OSError:
            return None, None
        pid, _, name = first.partition(" ")
        if pid.isdigit() and name:
            return name, int(pid)
        time.sleep(_RETRY_S)
    return None, None


if sys.platform == "win32":
    import msvcrt

    _LOCKED_BYTE = 1 << 16
    """Windows forbids others to read a locked range: lock one byte past the pid and name."""

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _LOCKED_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
