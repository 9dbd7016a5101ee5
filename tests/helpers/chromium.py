"""Headless Chromium driven over the DevTools protocol: pages opened, keys typed, screens read.

For the end-to-end test of ``espdfu-tui --serve``. The page is textual-serve's: an xterm.js
terminal fed by a websocket. A script run before the page's own catches the ``Terminal``
object as the page stores it (its ``terminal`` property), so that the test reads the screen
from xterm.js's buffer — the text the page shows, cell by cell — whatever renderer draws it.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

DEADLINE_S = 60.0

_CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
    configurable: true,
    set(value) {
        Object.defineProperty(this, "terminal", {value, writable: true, enumerable: true});
        if (value && value.buffer) window.espdfuTerminal = value;
    },
});
"""
_READ_SCREEN = """
(() => {
    const terminal = window.espdfuTerminal;
    if (!terminal) return "";
    const buffer = terminal.buffer.active, rows = [];
    for (let y = 0; y < terminal.rows; y++) {
        const line = buffer.getLine(buffer.viewportY + y);
        rows.push(line ? line.translateToString(true) : "");
    }
    return rows.join("\\n");
})()
"""


class Chromium:
    """A headless Chromium with a private profile, and its DevTools websocket."""

    def __init__(self, chromium: str, profile: Path) -> None:
        self.command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
        ]  # fmt: skip
        self.profile = profile
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Chromium:
        with (self.profile.parent / "chromium.log").open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=log)
        self.session = aiohttp.ClientSession()
        self.socket = await self.session.ws_connect(await self._devtools_url(), max_msg_size=0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.session.close()
        self.process.kill()
        self.process.wait(timeout=30)

    async def _devtools_url(self) -> str:
        """Chromium writes its port and path to the profile once it listens."""
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        log = (self.profile.parent / "chromium.log").read_text(errors="replace")
        raise AssertionError(f"Chromium did not start its DevTools server; its output:\n{log}")

    async def call(self, method: str, session: str | None = None, **params: Any) -> Any:
        """One DevTools command; its result. Events arriving meanwhile are not needed here."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.socket.send_json(message)
        while True:
            reply = await asyncio.wait_for(self.socket.receive_json(), DEADLINE_S)
            if reply.get("id") == number:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def open(self, url: str) -> Page:
        """A new tab showing ``url``."""
        target = await self.call(
            "Target.createTarget", url="about:blank", newWindow=True, width=1200, height=720
        )
        attached = await self.call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        page = Page(self, target["targetId"], attached["sessionId"])
        await page.call("Page.enable")  # without it, the script below is not run
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=_CATCH_TERMINAL)
        await page.call("Page.navigate", url=url)
        return page


class Page:
    """One tab."""

    def __init__(self, browser: Chromium, target: str, session: str) -> None:
        self.browser = browser
        self.target = target
        self.session = session

    async def call(self, method: str, **params: Any) -> Any:
        return await self.browser.call(method, self.session, **params)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screen(self) -> str:
        """The terminal's text, a line per row ("" before the page made its terminal)."""
        return str(await self.evaluate(_READ_SCREEN))

    async def wait_for(self, condition: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            screen = await self.screen()
            if condition(screen):
                return screen
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{await self.screen()}")

    async def wait_until(self, expression: str, what: str) -> None:
        """Until the JavaScript ``expression`` is true."""
        deadline = time.monotonic() + DEADLINE_S
        while not await self.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)

    async def press(self, key: str) -> None:
        """A key typed into the terminal (which has the keyboard focus, as after a click)."""
        await self.evaluate("window.espdfuTerminal.focus()")
        await self.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key)
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=key)

    async def reload(self) -> None:
        await self.call("Page.reload")

    async def close(self) -> None:
        await self.browser.call("Target.closeTarget", targetId=self.target)
