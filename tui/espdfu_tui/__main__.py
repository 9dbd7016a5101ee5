"""The `espdfu-tui` command (also `python -m espdfu_tui`)."""

from __future__ import annotations

import argparse

from espdfu_tui import __version__


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of `espdfu-tui`."""
    parser = argparse.ArgumentParser(
        prog="espdfu-tui",
        description="Flash ESP32-S2/S3 boards over native USB DFU from the terminal.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="show virtual boards instead of real USB devices",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the app; returns the process exit code."""
    args = build_parser().parse_args(argv)
    # Imported here so that --help and --version answer without loading Textual.
    from espdfu_tui.app import make_app

    app = make_app(demo=args.demo)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    raise SystemExit(main())
