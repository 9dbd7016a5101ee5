"""``espdfu flash --diff-with OLD``: only the 4 KiB sectors changed since OLD, which the user
says the boards hold, and never on that word alone: with ``--verify`` each board's boot after
must name the new build, else the whole file follows at once; without a check nothing is
trusted (the whole file goes) unless ``--trust-base``."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..files import dfufile
from ..files.delta import Delta, compose, incomparable
from ..files.dfufile import DfuImage
from .common import add_flag, note


def add_changes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--diff-with", type=Path, metavar="OLD",
        help="send only the 4 KiB sectors in which FILE differs from the dfu.bin OLD, which "
        "the boards hold now (data partitions always whole); needs --verify, which flashes the "
        "whole file at once to a board whose boot after does not name FILE's build",
    )  # fmt: skip
    add_flag(parser, "--full", help="send the whole file, even with --diff-with")
    add_flag(
        parser, "--trust-base",
        help="with --diff-with and no --verify: trust that the boards hold OLD (nothing checks)",
    )  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """What goes to each board: ``image``, the changes ``delta`` when only they go."""

    image: DfuImage
    delta: Delta | None = None

    def as_dict(self) -> dict[str, object]:
        """``--json``'s words for it: full or delta, bytes sent, sectors."""
        if self.delta is None:
            size = sum(entry.size for entry in self.image.entries)
            return {"mode": "full", "sent": size, "total": size}
        return self.delta.as_dict()


def plan(args: argparse.Namespace, image: DfuImage, checked: bool) -> Plan:
    """What to send for ``args`` (said on stderr when it is not what was asked)."""
    if args.diff_with is None or args.full:
        return Plan(image)
    base = dfufile.load(args.diff_with)
    why = incomparable(image, base)
    if why:
        raise InputError(
            f"{args.file} cannot be sent as changes of {args.diff_with}: {why}.",
            "Drop --diff-with to flash the whole file.",
        )
    if not checked and not args.trust_base:
        note(
            f"sending the whole file: nothing would check that the boards hold "
            f"{args.diff_with} (--verify checks each boot after; --trust-base trusts it)"
        )
        return Plan(image)
    delta = compose(image, base)
    return Plan(delta.image, delta)


def say_unchanged(planned: Plan, base: Path, as_json: bool) -> None:
    """Nothing to send: said, not flashed."""
    assert planned.delta is not None
    if as_json:
        print(json.dumps(planned.as_dict()))
    else:
        print(f"{planned.delta.words(str(base))}.", flush=True)
        print("--full sends the whole file anyway.", flush=True)
