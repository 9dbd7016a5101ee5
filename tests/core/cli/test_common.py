"""What the commands share: here, how a stop signal reaches the command."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
