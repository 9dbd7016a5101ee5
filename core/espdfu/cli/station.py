"""``espdfu station``: a production-line station that flashes every board as it is plugged in."""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import dfufile
from ..flashing.flasher import FlashResult
from ..flashing.stopping import flash_endings
from ..units import format_size
from ..worlds import open_usb
from .boards import report_line, report_result

if TYPE_CHECKING:
    from ..flashing.station import Skipped

from .common import (
    Commands,
    StopSignals,
    add_command,
    add_flash_options,
    add_json,
    add_paths,
    add_sim,
    configured_labels,
    flash_options,
    note,
    port_paths,
    refuse_stale,
    say_stopped,
)

DESCRIPTION = (
    "A flashing station for a production line: FILE goes to every board plugged in (those "
    "present at the start too), once per plug, several at a time; one line per result. A "
    "board left on the bus is not flashed again; unplug it and plug the next. Boards of "
    "another chip, without permission or without DFU are named and skipped."
)


def add_commands(commands: Commands) -> None:
    summary = "flash a dfu.bin to every board as it is plugged in, until stopped"
    station = add_command(
        commands, "station", _station, summary, DESCRIPTION, runs_until_stopped=True
    )
    station.add_argument("file", type=Path, metavar="FILE", help="the dfu.bin to flash")
    add_paths(station, "only boards plugged into the slot")
    add_flash_options(station)
    add_json(station, "one JSON object per board")
    add_sim(station)


class _Lines:
    """Results and skips as they come, from several threads: one whole entry at a time.

    A labelled board is named by its label and its port, as `espdfu watch` names it, so the
    operator reads the jig's slot names.
    """

    def __init__(self, as_json: bool, labels: Mapping[str, str]) -> None:
        self.as_json = as_json
        self.labels = labels
        self.lock = threading.Lock()

    def name(self, path: str) -> str:
        label = self.labels.get(path)
        return f"{label} ({path})" if label else path

    def result(self, result: FlashResult) -> None:
        with self.lock:
            if self.as_json:
                print(json.dumps(result.as_dict()), flush=True)
            else:
                report_result(
                    result, prefix=f"{time.strftime('%H:%M:%S')} ", name=self.name(result.path)
                )

    def skipped(self, skipped: Skipped) -> None:
        with self.lock:
            if self.as_json:
                entry = {"path": skipped.path, "ok": False, "skipped": skipped.reason}
                print(json.dumps({**entry, "hint": skipped.hint}), flush=True)
            else:
                lead = f"{time.strftime('%H:%M:%S')} {self.name(skipped.path)}"
                report_line(lead, f"not flashed: {skipped.reason}", skipped.hint)


def _station(args: argparse.Namespace) -> int:
    # Imported here, as in `espdfu watch`: the station and the configuration are not needed by
    # other commands (`espdfu flash` loads less before its DETACH).
    from ..flashing.station import Station

    image = dfufile.load(args.file)
    refuse_stale(args.file, image, args.force)
    labels = configured_labels()
    paths = port_paths(args.path, labels)
    usb_world = open_usb(args.sim)
    lines = _Lines(args.json, labels)
    station = Station(
        usb_world,
        image,
        lines.result,
        lines.skipped,
        paths=paths,
        options=flash_options(args),
    )
    slots = f" at {', '.join(map(lines.name, paths))}" if paths else ""
    note(
        f"flashing {args.file} ({image.chip_name}, {format_size(len(image.raw))}) to every board "
        f"plugged in{slots}; Ctrl-C stops. After a flash, press RESET on the board (or "
        "unplug it): the ESP ROM does not start the new firmware by itself."
    )
    stopped = threading.Event()
    with StopSignals(stopped.set) as stop:
        station.start()
        stopped.wait()
        endings = station.stop()  # a second signal does not break the stop off
    flashed = sum(result.ok for result in station.results)
    failed = len(station.results) - flashed
    note(f"{flashed} board{'s' if flashed != 1 else ''} flashed, {failed} failed.")
    assert stop.signum is not None  # the wait above only ends by a signal
    return say_stopped(stop.signum, flash_endings(endings))
