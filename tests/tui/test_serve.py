"""``espdfu-tui --serve``: the real server and apps, driven in headless Chromium; its options."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from espdfu.instance import LOCK_FILE_NAME, lock_path, take_instance_lock
from espdfu_tui.__main__ import app_arguments, build_parser, main
from tests.conftest import require_tool
from tests.helpers.chromium import Chromium

APP = Path(sys.executable).parent / "espdfu-tui"
PANELS = "the board panels"


def panels_shown(screen: str) -> bool:
    """Every panel drawn with its body: a panel's border can reach the page a frame before it."""
    bodies = screen.count("· ROM download") == 4 and "· app (DFU runtime)" in screen
    return "1-2.1" in screen and "press b to build" in screen and bodies


def all_flashed(screen: str) -> bool:
    """The four S2 boards flashed and, RESET by the demo, running their new apps (the app
    board named by the chip its DFU mode showed)."""
    apps = len(re.findall(r"esp32s2 · app\s", screen)) == 4
    return apps and "esp32s2 · app (DFU runtime)" in screen and screen.count("running") == 4


class Served:
    """``espdfu-tui --serve --demo`` on a free port of 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}/"
        self.log = folder / "server.log"
        env = {
            **os.environ,
            "ESPDFU_SIM_TIME": "0.2",  # virtual boards five times faster than real ones
            "ESPDFU_DEMO_BUILD_S": "0.5",
            "ESPDFU_CONFIG_DIR": str(folder / "config"),
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [APP, "--serve", "--port", str(self.port), "--demo"],
                env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while "serving on" not in self.log.read_text():
            assert self.process.poll() is None, f"the server ended:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        found = re.search(r"serving on (http://\S+\?token=([\w-]+)) ", self.log.read_text())
        assert found is not None, self.log.read_text()
        self.url, self.token = found.groups()
        """The address it printed, with this run's token; and the token."""
        self.cookie = f"espdfu-tui-{self.port}={self.token}"

    def get(self, path: str = "", **headers: str) -> tuple[int, str]:
        """A plain request (no browser): the status and the body."""
        request = urllib.request.Request(self.base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            with error:  # its response's socket: closed here, not whenever it is collected
                return error.code, error.read().decode()

    def apps(self) -> list[int]:
        """The app processes the server started (under their shells), oldest first."""
        found, parents = [], [self.process.pid]
        while parents:
            pid = parents.pop()
            children = Path(f"/proc/{pid}/task/{pid}/children")
            kids = [int(n) for n in children.read_text().split()] if children.exists() else []
            parents += kids
            found += [kid for kid in kids if _cmdline(kid)[1:3] == [b"-m", b"espdfu_tui"]]
        return sorted(found)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def wait_gone(pid: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while _cmdline(pid):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # it has ended
        return []


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    yield server
    apps = server.apps()
    server.stop()
    print(f"the server's output:\n{server.log.read_text()}")  # shown when the test fails
    for pid in apps:  # the server stops its apps as it leaves
        wait_gone(pid, f"app {pid} outlived the server")


async def test_in_a_browser_tab_keys_reach_the_app_and_a_second_tab_is_refused(
    served: Served, tmp_path: Path
) -> None:
    async with Chromium(require_tool("chromium"), tmp_path / "profile") as browser:
        first = await browser.open(served.url)
        start = await first.wait_for(panels_shown, PANELS)
        assert start.count("· ROM download") == 4 and "· app (DFU runtime)" in start
        await first.press("x")
        done = await first.wait_for(all_flashed, "the flashes")
        assert "build OK" in done
        (owner,) = served.apps()

        second = await browser.open(served.url)
        refused = await second.wait_for(lambda s: "already running" in s, "the refusal")
        assert f"espdfu-tui is already running (pid {owner}); it owns the USB boards." in refused
        assert "reload this page" in refused
        assert owner in served.apps() and all_flashed(await first.screen())  # left alone
        await second.press("q")  # the refusal closes: the page says the session ended
        await second.wait_until("document.body.classList.contains('-closed')", "the session's end")

        await first.close()  # its app quits and lets go of the boards: the other tab gets them
        await second.reload()
        await second.wait_for(panels_shown, "the panels in the tab reloaded")
        wait_gone(owner, "the app of the closed tab did not quit")
    assert "espdfu-tui: espdfu-tui is already running" in served.log.read_text()


async def test_a_tabs_app_ends_with_its_server_even_killed(served: Served, tmp_path: Path) -> None:
    """Else it would hold the boards with nobody to see it: the next server's tabs refused."""
    async with Chromium(require_tool("chromium"), tmp_path / "profile") as browser:
        tab = await browser.open(served.url)
        await tab.wait_for(panels_shown, PANELS)
        (app,) = served.apps()
        served.process.kill()
        served.process.wait(timeout=30)
        wait_gone(app, "the app outlived its server")
    with take_instance_lock("the test", path=tmp_path / "config" / LOCK_FILE_NAME):
        pass  # free


def test_the_page_links_back_to_the_address_the_browser_used(served: Served) -> None:
    """Through an SSH tunnel to another local port, the page must still find its websocket."""
    status, page = served.get(Host="localhost:9123", Cookie=served.cookie)
    assert status == 200, page
    assert 'data-session-websocket-url="ws://localhost:9123/ws"' in page
    assert "espdfu-tui" in page


UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}
"""A WebSocket upgrade's headers: what starts a tab's app."""


def test_without_this_runs_token_nothing_is_served_and_no_app_starts(
    served: Served, tmp_path: Path
) -> None:
    (tmp_path / "earlier").mkdir()
    earlier = Served(tmp_path / "earlier")  # a token from an earlier run: stale now
    stale = earlier.token
    earlier.stop()
    cookie = f"espdfu-tui-{served.port}"
    for headers in ({}, {"Cookie": f"{cookie}=wrong"}, {"Cookie": f"{cookie}={stale}"}):
        for path in ("", "ws", "static/css/xterm.css"):
            status, body = served.get(path, **headers, **(UPGRADE if path == "ws" else {}))
            assert status == 403, (path, headers, body)
            assert "needs the address espdfu-tui printed when it started" in body
    assert served.get(f"?token={stale}")[0] == 403
    # The right token, from a page of another site: its Host (DNS rebinding) or its Origin.
    status, body = served.get(Host=f"evil.example:{served.port}", Cookie=served.cookie)
    assert status == 403 and "does not answer to 'evil.example:" in body
    status, body = served.get("ws", Origin="http://evil.example", Cookie=served.cookie, **UPGRADE)
    assert status == 403 and "a page from http://evil.example may not open the app" in body
    assert served.apps() == []
    assert served.get(Cookie=served.cookie)[0] == 200  # with it: the page


def test_the_token_is_set_as_a_cookie_and_left_out_of_the_address(served: Served) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(served.url + "&fontsize=14", timeout=30)
    with answer.value as redirect:
        assert redirect.code == 302
        assert redirect.headers["Location"] == "/?fontsize=14"
        cookie = redirect.headers["Set-Cookie"]
    assert cookie.startswith(f"{served.cookie};") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


async def test_a_user_without_the_token_gets_no_app_in_a_browser(
    served: Served, tmp_path: Path
) -> None:
    """Another local user (root runs it as nobody), or a page of another site in the user's
    own browser: the address without the token opens a refusal, and starts no app."""
    probe = ["import sys, urllib.request as u, urllib.error as e",
             "try: u.urlopen(sys.argv[1], timeout=30)",
             "except e.HTTPError as r: print(r.code)"]  # fmt: skip
    other_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    command = [*(other_user if os.geteuid() == 0 else []), sys.executable, "-c", "\n".join(probe)]
    result = subprocess.run([*command, served.base], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "403", result
    async with Chromium(require_tool("chromium"), tmp_path / "profile") as browser:
        tab = await browser.open(served.base)
        refusal = "document.body && document.body.innerText.includes('needs the address')"
        await tab.wait_until(refusal, "the refusal")
        assert served.apps() == []
    log = served.log.read_text()
    assert log.count(served.token) == 1  # the line that printed it, and no other
    for pid in [served.process.pid, *served.apps()]:  # nor in what `ps` shows
        assert served.token.encode() not in b" ".join(_cmdline(pid))


def test_a_second_app_in_a_terminal_is_told_the_first_ones_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPDFU_CONFIG_DIR", str(tmp_path / "config"))
    with take_instance_lock("espdfu-tui") as lock:
        assert lock.path == lock_path()
        result = run_app("--demo")
    assert result.returncode == 3
    assert result.stderr == (
        f"espdfu-tui: espdfu-tui is already running (pid {os.getpid()}); it owns the USB boards.\n"
        "  Use that one (its terminal or its browser tab), or quit it first.\n"
    )


def test_serving_beyond_this_machine_takes_allow_remote_and_warns() -> None:
    refused = run_app("--serve", "--host", "0.0.0.0", "--demo")
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "espdfu-tui: --host 0.0.0.0 would let other machines reach the app, and anyone who "
        "reaches it can flash the boards.\n  Add --allow-remote if you mean it"
    )
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the server cannot start, after the
    # warning, and says why in a sentence.
    warned = run_app("--serve", "--host", "192.0.2.1", "--port", "8123", "--allow-remote")
    assert warned.returncode == 2
    lines = warned.stderr.splitlines()
    assert lines[0] == (
        "espdfu-tui: warning: serving on 192.0.2.1: anyone who can reach port 8123 and has the "
        "address with its token can flash the boards, and the token crosses the network "
        "unencrypted (no TLS)."
    )
    assert lines[1:] == [
        "espdfu-tui: cannot serve on 192.0.2.1:8123: Cannot assign requested address.",
        "  Choose a free port with --port (and with --host, an address of this machine).",
    ]
    assert warned.stdout == ""  # no "serving on" line
    assert "Traceback" not in warned.stderr


def test_the_server_options_go_with_serve_only() -> None:
    result = run_app("--demo", "--port", "8123")
    assert result.returncode == 2
    assert "--host, --port and --allow-remote go with --serve" in result.stderr


def test_each_tabs_app_gets_the_same_options_less_the_servers() -> None:
    parser = build_parser()
    argv = ["--serve", "--port", "9000", "--sim", "esp32s2*2", "--build-cmd", "make -j dfu"]
    args = parser.parse_args([*argv, "--no-mouse", "--host=::1", "--", "-odd name"])
    app_argv = app_arguments(parser, args)
    assert app_argv == [
        "--build-cmd=make -j dfu",
        "--sim=esp32s2*2",
        "--no-mouse",
        "--",
        "-odd name",
    ]
    again = vars(parser.parse_args(app_argv))
    expected = vars(args) | {"serve": False, "host": None, "port": None}
    assert again == expected


def run_app(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [APP, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("port", "got"), [("99999", "99999"), ("-1", "-1"), ("0", "0"), ("http", "http")]
)
def test_a_port_that_is_none_is_refused_before_serving(
    port: str, got: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--port 99999 printed an address, then an OverflowError's traceback; -1 a socket error."""
    with pytest.raises(SystemExit) as exit_:
        main(["--serve", f"--port={port}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --port: must be a port number from 1 to 65535 (got {got})" in err
