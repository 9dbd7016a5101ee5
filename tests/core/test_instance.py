"""The instance lock between real processes: the second is told the first's pid, and the lock
goes with the first process however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from espdfu.errors import EspdfuError
from espdfu.instance import LOCK_FILE_NAME, AlreadyRunning, lock_path, take_instance_lock

# Takes the lock as "first-app", says so, and holds it until its stdin closes (or it is killed).
HOLDER = """
import sys
from pathlib import Path
from espdfu.instance import take_instance_lock
lock = take_instance_lock("first-app", path=Path(sys.argv[1]))
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock file tmp_path/espdfu.lock."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / LOCK_FILE_NAME)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    with process:  # its pipes closed at the end
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        yield process
        process.kill()
        process.wait(timeout=30)


def test_the_second_is_told_the_first_ones_name_and_pid(
    holder: subprocess.Popen[str], tmp_path: Path
) -> None:
    with pytest.raises(AlreadyRunning) as refused:
        take_instance_lock("second-app", path=tmp_path / LOCK_FILE_NAME)
    assert refused.value.pid == holder.pid
    assert refused.value.message == (
        f"first-app is already running (pid {holder.pid}); it owns the USB boards."
    )
    assert refused.value.hint == "Use that one (its terminal or its browser tab), or quit it first."


def test_the_lock_is_free_once_the_first_exits(
    holder: subprocess.Popen[str], tmp_path: Path
) -> None:
    assert holder.stdin is not None
    holder.stdin.close()  # it leaves normally
    assert holder.wait(timeout=30) == 0
    with take_instance_lock("second-app", path=tmp_path / LOCK_FILE_NAME) as lock:
        assert (tmp_path / LOCK_FILE_NAME).read_text() == f"{os.getpid()} second-app\n"
        assert lock.path == tmp_path / LOCK_FILE_NAME


def test_the_lock_is_free_once_the_first_is_killed(
    holder: subprocess.Popen[str], tmp_path: Path
) -> None:
    holder.send_signal(signal.SIGKILL)  # no clean-up of its own: the system drops the lock
    assert holder.wait(timeout=30) == -signal.SIGKILL
    with take_instance_lock("second-app", path=tmp_path / LOCK_FILE_NAME):
        pass


def test_a_start_that_may_wait_gets_the_lock_when_the_first_leaves(
    holder: subprocess.Popen[str], tmp_path: Path
) -> None:
    path = tmp_path / LOCK_FILE_NAME
    with pytest.raises(AlreadyRunning):
        take_instance_lock("second-app", path=path)  # held: no waiting, refused
    assert holder.stdin is not None
    leave = threading.Timer(0.3, holder.stdin.close)
    leave.start()
    try:
        with take_instance_lock("second-app", path=path, wait_s=30):
            assert holder.poll() is not None
    finally:
        leave.join(timeout=30)


def test_in_one_process_a_released_lock_can_be_taken_again(tmp_path: Path) -> None:
    path = tmp_path / LOCK_FILE_NAME
    first = take_instance_lock("one", path=path)
    with pytest.raises(AlreadyRunning) as refused:  # a second open file: refused, like a process
        take_instance_lock("two", path=path)
    assert refused.value.pid == os.getpid()
    first.release()
    with take_instance_lock("two", path=path):
        pass


def test_the_lock_is_in_the_config_folder_when_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPDFU_CONFIG_DIR", str(tmp_path / "mine"))
    assert lock_path() == tmp_path / "mine" / LOCK_FILE_NAME
    monkeypatch.delenv("ESPDFU_CONFIG_DIR")
    assert lock_path() == Path(platformdirs.user_state_dir("espdfu")) / LOCK_FILE_NAME


def test_a_lock_file_that_cannot_be_made_is_said_in_a_sentence(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(EspdfuError) as error:
        take_instance_lock("app", path=tmp_path / "file" / LOCK_FILE_NAME)
    assert error.value.message.startswith(f"Cannot use the lock file {tmp_path / 'file'}")
    assert "ESPDFU_CONFIG_DIR" in error.value.hint
