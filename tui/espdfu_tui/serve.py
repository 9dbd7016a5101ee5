"""The app in a browser tab: ``espdfu-tui --serve`` runs a textual-serve web server.

textual-serve starts one app process per browser connection (the same ``espdfu-tui``
command, less the server's options), so it is each app process that takes the instance lock
(``espdfu.instance``), never the server; ``browser`` has what those app processes need.

Whoever reaches the page gets the app, and with it the user's boards and build command, so
every request must carry a secret made at start (as Jupyter does): printed once in the
address to open, then kept by the browser in a cookie. Its Host must name an address the
server serves on (a page of another site whose name points here, DNS rebinding, is refused),
and a WebSocket's Origin must be the page's own (browsers let any page open a WebSocket to
127.0.0.1). A refused request gets 403 and starts no app. The secret is in no log file and in
no process's arguments.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import logging
import os
import secrets
import shlex
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server

TITLE = "espdfu-tui"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(app_argv: Sequence[str], host: str, port: int) -> int:
    """Serve ``espdfu-tui app_argv`` on ``host:port`` until Ctrl+C or SIGTERM; the exit code."""
    argv = [sys.executable, "-m", "espdfu_tui", *app_argv]
    command = subprocess.list2cmdline(argv) if os.name == "nt" else shlex.join(argv)
    try:
        _check_can_listen(host, port)  # first: the server says "serving" before it listens
        # Its lines (an app refused as already running, say) reach a log or pipe as they come,
        # not when a buffer fills.
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(line_buffering=True)
        secret = secrets.token_urlsafe(24)  # made here, for this run only
        _Server(command, host=host, port=port, title=TITLE, secret=secret).serve()
    except OSError as error:
        print(f"espdfu-tui: cannot serve on {host}:{port}: {error.strerror}.", file=sys.stderr)
        print(
            "  Choose a free port with --port (and with --host, an address of this machine).",
            file=sys.stderr,
        )
        return 2
    return 0


def _check_can_listen(host: str, port: int) -> None:
    """Bind every address of ``host`` as the server will; raise its OSError if one cannot be."""
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            if os.name == "posix":  # as asyncio's servers do: a port in TIME_WAIT is free
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)


def host_names(host: str) -> frozenset[str] | None:
    """The names a request's Host may give for a server on ``host``; None: any (a server on
    every address answers to every name of the machine, which it cannot list)."""
    if host in ("0.0.0.0", "::", ""):
        return None
    return LOOPBACK_NAMES if is_loopback(host) else frozenset({host.strip("[]")})


class _Server(Server):
    """textual-serve's server, behind the guard (see the module), with the page's links made
    from the address the browser used.

    Its own page names the address it was started with: through an SSH tunnel to another
    local port, or with ``--host 0.0.0.0``, the browser could not find the app's websocket.
    """

    def __init__(self, command: str, *, host: str, port: int, title: str, secret: str) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.secret = secret
        self.names = host_names(host)
        self.cookie = f"espdfu-tui-{port}"
        """One per port: browsers keep cookies by host name, whatever the port."""

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        given = request.query.get("token") or request.cookies.get(self.cookie, "")
        refusal = self._refusal(request, given)
        if refusal is not None:
            return web.Response(status=403, text=f"espdfu-tui: {refusal}\n")
        if "token" in request.query:  # kept in a cookie, and out of the address bar
            query = {key: value for key, value in request.query.items() if key != "token"}
            rest = request.rel_url.with_query(query)
            response = web.HTTPFound(str(rest))
            response.set_cookie(
                self.cookie, self.secret, httponly=True, samesite="Strict", path="/"
            )
            return response
        return await handler(request)

    def _refusal(self, request: web.Request, given: str) -> str | None:
        """Why ``request`` may not reach the app, or None."""
        name = (urlsplit(f"//{request.host}").hostname or "").lower()
        if self.names is not None and name not in self.names:
            return f"this server does not answer to {request.host!r}."
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return (
                "this page needs the address espdfu-tui printed when it started, with its "
                "token (?token=...)."
            )
        origin = request.headers.get("Origin")
        if request.path == "/ws" and origin is not None and urlsplit(origin).netloc != request.host:
            return f"a page from {origin} may not open the app."
        return None

    def initialize_logging(self) -> None:
        super().initialize_logging()
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # not a line per request

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def on_startup(self, app: web.Application) -> None:
        print(
            f"espdfu-tui: serving on http://{self.host}:{self.port}/?token={self.secret}"
            " — open it in a browser (the token is the key: keep it to yourself). Ctrl+C stops.",
            flush=True,
        )
