"""A real OpenSSH server on loopback, and a byte-counting relay in front of it.

For the end-to-end test and the benchmark that run `espdfu-tui` over SSH. The server is the
system's `sshd`, started on a free port with its own sshd_config and throw-away host and client
keys in a temporary folder: no system file is read or changed (but see PRIVSEP_DIR). The client
connects to a TCP relay, not to sshd, so the relay counts what really crosses a network:
encrypted, with SSH's framing.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

PROGRAMS = {"ssh": "openssh-client", "ssh-keygen": "openssh-client", "sshd": "openssh-server"}
"""The programs needed, and the Debian package of each."""

SBIN = ("/usr/sbin", "/usr/local/sbin")
"""Where sshd lives: not on a normal user's PATH."""

PRIVSEP_DIR = Path("/run/sshd")
"""Debian's sshd, run as root, refuses to start without this folder, which the ssh service
makes at boot; a machine that never ran that service (a container) lacks it."""

TERM = "xterm-256color"
APP = Path(sys.executable).parent / "espdfu-tui"
"""The app beside this Python, by absolute path: the remote shell's PATH knows no venv."""

START_S = 30.0


def find(program: str) -> str | None:
    return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))


def unavailable() -> str | None:
    """Why this machine cannot run an SSH loop, or None when it can."""
    for program, package in PROGRAMS.items():
        if find(program) is None:
            return f"{program} is not installed (bash .ci/setup installs {package} as root)"
    if os.geteuid() != 0 and not _terminals_belong_to_tty():
        return (
            "sshd run by a normal user can give ssh a terminal only where new terminals belong "
            "to the tty group (/dev/pts mounted with gid=5, as systemd and Docker mount it); "
            "here they do not: run this test as root"
        )
    return None


def _terminals_belong_to_tty() -> bool:
    """Whether a new pseudo-terminal belongs to the tty group already: sshd gives it to that
    group, and fails (closing the connection) when it must and cannot, as a normal user."""
    try:
        tty = grp.getgrnam("tty").gr_gid
    except KeyError:  # no tty group: sshd keeps the terminal in the user's own group
        return True
    primary, secondary = os.openpty()
    try:
        return os.fstat(secondary).st_gid == tty
    finally:
        os.close(primary)
        os.close(secondary)


class Relay:
    """Relays TCP connections from a loopback port of its own to ``target_port``, and notes
    every chunk it passes, with when, each way."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.down: list[tuple[float, int]] = []
        """Server to client: the app's screen."""
        self.up: list[tuple[float, int]] = []
        """Client to server: keys, and SSH's acknowledgements."""
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # close() shut the listener
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()  # the client sees the connection closed, as with sshd gone
                continue
            self.sockets += [client, server]
            self._spawn(self._pump, client, server, self.up)
            self._spawn(self._pump, server, client, self.down)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, log: list[tuple[float, int]]) -> None:
        try:
            while data := source.recv(65536):
                log.append((time.perf_counter(), len(data)))
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:  # the other end went away, or close() shut the sockets
            pass

    def bytes_between(self, start: float, end: float) -> tuple[int, int]:
        """Bytes (down, up) that crossed in [start, end) of time.perf_counter()."""
        down, up = (
            sum(size for when, size in log if start <= when < end) for log in (self.down, self.up)
        )
        return down, up

    def close(self) -> None:
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):  # not connected (any more)
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked on it; close() does not
            sock.close()
        for thread in self.threads:
            thread.join(timeout=10)


class SshLoop:
    """sshd on a free loopback port, a Relay in front of it, and the ssh command to reach it."""

    def __init__(self, folder: Path) -> None:
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        self.folder = folder
        self.programs = {program: str(find(program)) for program in PROGRAMS}
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.log = folder / "sshd.log"
        folder.mkdir(parents=True, exist_ok=True)
        keygen = self.programs["ssh-keygen"]
        for key in ("host_key", "client_key"):
            subprocess.run(
                [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
        (folder / "authorized_keys").write_bytes((folder / "client_key.pub").read_bytes())
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.process, port = self._start_sshd()
        self.relay = Relay(port)
        host_key = (folder / "host_key.pub").read_text().split()[:2]
        (folder / "known_hosts").write_text(f"[127.0.0.1]:{self.relay.port} {' '.join(host_key)}\n")

    def _start_sshd(self) -> tuple[subprocess.Popen[bytes], int]:
        """sshd, and its port once it listens; another port if a racing program took the one
        picked (it was free a moment before)."""
        for _ in range(3):
            with socket.create_server(("127.0.0.1", 0)) as probe:
                port: int = probe.getsockname()[1]
            config = self.folder / "sshd_config"
            config.write_text(self._config(port))
            with self.log.open("wb") as log:
                process = subprocess.Popen(
                    [self.programs["sshd"], "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                )  # fmt: skip
            deadline = time.monotonic() + START_S
            while time.monotonic() < deadline and process.poll() is None:
                if b"Server listening on" in self.log.read_bytes():
                    return process, port
                time.sleep(0.05)
            if process.poll() is None:
                process.kill()
                process.wait()
            if b"Bind to port" not in self.log.read_bytes():
                break
        raise RuntimeError(f"sshd did not start; its log:\n{self.log.read_text()}")

    def _config(self, port: int) -> str:
        return f"""\
ListenAddress 127.0.0.1:{port}
HostKey {self.folder / "host_key"}
AuthorizedKeysFile {self.folder / "authorized_keys"}
PidFile none
# The keys live under /tmp, which anyone may write to: StrictModes would refuse them.
StrictModes no
# Not the system's PAM stack, which a normal user's sshd cannot use: keys are all it takes.
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# CI runs as root.
PermitRootLogin prohibit-password
PrintMotd no
PrintLastLog no
"""

    def ssh(self, *remote: str, tty: bool = True) -> list[str]:
        """The ssh command that runs ``remote`` (a command and its arguments) on the server,
        through the relay; ``tty``: in a terminal of the client's size (ssh -t)."""
        options = {
            "BatchMode": "yes",  # a refused key fails at once, never a password prompt
            "IdentitiesOnly": "yes",  # the throw-away key only, not the user's agent's
            "StrictHostKeyChecking": "yes",
            "UserKnownHostsFile": str(self.folder / "known_hosts"),
            "ConnectTimeout": "30",
            "LogLevel": "ERROR",
        }
        return [
            self.programs["ssh"], "-F", os.devnull, "-t" if tty else "-T",
            "-p", str(self.relay.port), "-i", str(self.folder / "client_key"), "-l", self.user,
            *(f"-o{name}={value}" for name, value in options.items()),
            "127.0.0.1", shlex.join(remote),
        ]  # fmt: skip

    def app(self, env: Mapping[str, str], *args: str) -> str:
        """A shell command line that runs the app over ssh: TERM goes as a terminal's does,
        in ssh's request for one; the rest of ``env`` in the remote command."""
        if not APP.exists():
            raise RuntimeError(f"{APP} does not exist: install the project (bash .ci/setup)")
        exports = [f"{name}={value}" for name, value in env.items()]
        return shlex.join(["env", f"TERM={TERM}", *self.ssh("env", *exports, str(APP), *args)])

    def sshd_log(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        self.relay.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> SshLoop:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
