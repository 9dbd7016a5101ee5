"""The app in a browser tab: ``espdfu-tui --serve`` runs a textual-serve web server.

textual-serve starts one app process per browser connection (the same ``espdfu-tui``
command, less the server's options), so it is each app process that takes the instance lock
(``espdfu.instance``), never the server; ``browser`` has what those app processes need.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Sequence

from aiohttp import web
from textual_serve.server import Server

TITLE = "espdfu-tui"


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
        _Server(command, host=host, port=port, title=TITLE).serve()
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


class _Server(Server):
    """textual-serve's server, with the page's links made from the address the browser used.

    Its own page names the address it was started with: through an SSH tunnel to another
    local port, or with ``--host 0.0.0.0``, the browser could not find the app's websocket.
    """

    def initialize_logging(self) -> None:
        super().initialize_logging()
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # not a line per request

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def on_startup(self, app: web.Application) -> None:
        print(
            f"espdfu-tui: serving on http://{self.host}:{self.port}/ — open it in a browser."
            " Ctrl+C stops.",
            flush=True,
        )
