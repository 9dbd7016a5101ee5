"""What the commands share: the kinds of values options take, how a stop signal reaches the
command."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from espdfu.cli import main
from espdfu.cli.common import baud, port_number, seconds, seconds_or_zero, size

# The handler runs between two bytecodes of the main thread: here, while the main thread holds
# the lock that on_stop takes (as Event.wait() holds the event's own lock for a moment).
_SIGNAL_INSIDE_A_LOCK = textwrap.dedent(
    """
    import signal, threading
    from espdfu.cli.common import StopSignals

    lock = threading.Lock()
    stopped = threading.Event()

    def on_stop():
        with lock:
            stopped.set()

    with StopSignals(on_stop) as stop:
        with lock:
            signal.raise_signal(signal.SIGTERM)
            assert not stopped.is_set()
        assert stopped.wait(5), "on_stop never ran"
    print(stop.signum)
    """
)


def test_a_signal_that_comes_while_the_main_thread_holds_a_lock_stops_without_a_deadlock() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_INSIDE_A_LOCK], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "15"


def test_only_the_first_signal_counts_and_the_previous_handlers_come_back() -> None:
    script = textwrap.dedent(
        """
        import signal, threading
        from espdfu.cli.common import StopSignals

        calls = []
        with StopSignals(lambda: calls.append(1)) as stop:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)
        restored = signal.getsignal(signal.SIGINT) is signal.default_int_handler
        print(stop.signum, len(calls), restored)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "1", "True"]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["flash", "x.bin", "--wait", "-5"], "flash: error: argument --wait: must be a number "
         "of seconds, 0 or more (got -5)"),
        (["flash", "x.bin", "--detach-wait", "0"], "flash: error: argument --detach-wait: must "
         "be a number of seconds, more than 0 (got 0)"),
        (["station", "x.bin", "--detach-wait", "nan"], "argument --detach-wait: must be a number "
         "of seconds, more than 0 (got nan)"),
        (["monitor", "--timeout", "-1"], "monitor: error: argument --timeout: must be a number "
         "of seconds, more than 0 (got -1)"),
        (["flash", "x.bin", "-p", ""], "flash: error: argument -p/--path: must be a USB port "
         "path (see `espdfu list`) or a board's label (got '')"),
        (["watch", "-p", " "], "argument -p/--path: must be a USB port path"),
        (["monitor", "--baud", "-1"], "monitor: error: argument --baud: must be a speed in bits "
         "per second, a whole number such as 115200 (got -1)"),
        (["mkdfu", "--part-size", "0"], "mkdfu: error: argument --part-size: must be a size in "
         "bytes, more than 0, such as 4096, 0x1000, 64K or 4MB (got 0)"),
        (["mkdfu", "--flash-size", "4 apples"], "argument --flash-size: must be a size in bytes"),
    ],
)  # fmt: skip
def test_a_bad_number_is_refused_as_the_command_line_is_read(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each kind of value is refused in the same words by every command (once a negative wait
    was taken as none, and `--detach-wait 0` failed every flash), with exit 2."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert said in capsys.readouterr().err


def test_each_kind_takes_what_people_write() -> None:
    assert (seconds("0.5"), seconds_or_zero("0"), port_number("8000")) == (0.5, 0.0, 8000)
    assert baud("921600") == 921600
    assert [size(text) for text in ("4096", "0x1000", "64K", "64KiB", "4M", "4MB", "2mb")] == [
        4096, 4096, 65536, 65536, 4 << 20, 4 << 20, 2 << 20
    ]  # fmt: skip
