"""``espdfu info`` and ``espdfu mkdfu``: the dfu.bin file itself."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..chips import dfu_chip_names
from ..errors import DfuFormatError, InputError
from ..files import dfufile
from ..files.contents import Contents
from ..files.dfufile import check_writable
from ..files.espimage import chip_name
from ..files.idfbuild import (
    BuildFolder,
    Image,
    chip_for_target,
    flash_files_from_json,
    merge_images,
    parse_int,
    parse_pid,
    part_size_from_env,
    read_flash_files,
)
from ..units import format_size
from ..usb import rom
from .common import (
    Commands,
    Exit,
    add_command,
    add_flag,
    add_json,
    remake_hint,
    size,
    stale_beside,
)


def add_commands(commands: Commands) -> None:
    info = add_command(
        commands,
        "info",
        _info,
        "show what a dfu.bin holds and whether it is valid",
        "Show a dfu.bin's chip, flash size, entries, CRC and md5 status and warnings, and "
        "whether it holds the build whose flasher_args.json lies beside it. Exit 0 when the "
        "file is valid, 2 when it is not.",
    )
    info.add_argument("file", type=Path, metavar="FILE", help="the dfu.bin to inspect")
    add_json(info, "one JSON object")
    mkdfu = add_command(
        commands,
        "mkdfu",
        _mkdfu,
        "make a dfu.bin (byte-identical to ESP-IDF's mkdfu.py)",
        "Make a dfu.bin from flash images, from a flasher_args.json or from an ESP-IDF build "
        "folder. The output is the same, byte for byte, as ESP-IDF's `mkdfu.py write` with "
        "the same inputs.",
        epilog="Examples:  espdfu mkdfu -o dfu.bin --chip esp32s2 --flash-size 4MB "
        "0x1000 bootloader.bin 0x8000 partition-table.bin 0x10000 app.bin\n"
        "           espdfu mkdfu --build-dir build",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mkdfu.add_argument("-o", "--output", type=Path, metavar="OUT", help="the dfu.bin to write")
    target = mkdfu.add_mutually_exclusive_group()
    target.add_argument("--pid", type=str, help="USB product ID in hex, as ESP-IDF's --pid")
    target.add_argument("--chip", help=f"target chip ({dfu_chip_names()})")
    mkdfu.add_argument(
        "--flash-size", type=size, metavar="SIZE", help="flash size, 1MB ... 128MB (default 2MB)"
    )
    mkdfu.add_argument(
        "--part-size", type=size, metavar="SIZE",
        help="split images into parts of this size, such as 64K or 0x10000 (default "
        "$ESP_DFU_PART_SIZE or 512K)",
    )  # fmt: skip
    mkdfu.add_argument(
        "--json", type=Path, metavar="FLASHER_ARGS", help="take images from a flasher_args.json"
    )
    add_flag(
        mkdfu,
        "--no-flash-params",
        help="write the legacy layout without flash_params.dat, as ESP-IDF up to v4.3.3, "
        "v4.4.0 and v4.4.1 writes it",
    )
    mkdfu.add_argument(
        "--build-dir", type=Path, metavar="DIR", help="make DIR/dfu.bin from an ESP-IDF build"
    )
    mkdfu.add_argument("files", nargs="*", metavar="ADDRESS FILE", help="images and addresses")


# --- info -------------------------------------------------------------------------------------


def _info(args: argparse.Namespace) -> int:
    try:
        image = dfufile.load(args.file, strict=False)
    except (DfuFormatError, InputError) as error:
        if args.json:
            print(json.dumps({"file": str(args.file), "valid": False, "error": str(error)}))
        raise
    contents = image.contents
    stale = stale_beside(args.file, image)
    if args.json:
        notes = [rom.erase_note(entry) for entry in rom.slow_entries(image.entries)]
        summary = {"file": str(args.file), **image.as_dict(), **contents.as_dict(), "notes": notes}
        summary["stale"] = stale.as_dict() if stale is not None else None
        print(json.dumps(summary, indent=2))
    else:
        _print_image(args.file, image)
        _print_contents(contents)
        if stale is not None:
            print(f"  warning: {stale.said()}. {remake_hint(args.file)}.")
    if not image.valid:
        print(f"espdfu: {args.file} is not a valid dfu.bin: {image.problems[0]}", file=sys.stderr)
        return Exit.INVALID
    if contents.problems:
        print(f"espdfu: {args.file}: {contents.problems[0]}", file=sys.stderr)
        return Exit.INVALID
    return Exit.OK


def _print_image(path: Path, image: dfufile.DfuImage) -> None:
    verdict = "valid dfu.bin" if image.valid else "NOT a valid dfu.bin"
    flash = (
        f"{format_size(image.flash_size)} (flash_params.dat)"
        if image.flash_size is not None
        else "not stated (legacy layout)"
    )
    print(f"{path}: {verdict}, {len(image.raw):,} bytes")
    print(f"  chip        {image.chip_name} (PID 0x{image.pid:04x}, VID 0x{image.vid:04x})")
    print(f"  flash size  {flash}")
    print(f"  CRC         {'ok' if image.crc_ok else 'BAD'}")
    print(f"  entries     {len(image.entries)}")
    if image.entries:
        print(f"    {'address':<12}{'size':>12}  {'md5':<5} name")
        for entry in image.entries:
            md5 = "ok" if entry.md5_ok else "BAD"
            print(f"    0x{entry.address:08x}  {entry.size:>12,}  {md5:<5} {entry.name}")
    for problem in image.problems:
        print(f"  problem: {problem}")
    for warning in image.warnings:
        print(f"  warning: {warning}")
    for entry in rom.slow_entries(image.entries):
        print(f"  note: {rom.erase_note(entry)}")


def _print_contents(contents: Contents) -> None:
    """The images as the chip will boot them, the app's own words, the partition table."""
    if contents.app is not None:
        print(f"  app         {contents.app.words}")
    if contents.images:
        print("  images")
    for placed in contents.images:
        esp = placed.image
        count = len(esp.segments)
        facts = [chip_name(esp.chip_id), f"{count} segment{'' if count == 1 else 's'}"]
        facts.append("checksum ok" if esp.checksum_ok else "checksum BAD")
        if esp.sha256_ok is not None:
            facts.append("SHA-256 ok" if esp.sha256_ok else "SHA-256 BAD")
        if placed.partition is not None:
            share = esp.length * 100 // max(placed.partition.size, 1)
            facts.append(f"{esp.length:,} of {placed.partition.size:,} bytes ({share}%)")
        print(f"    0x{placed.address:08x}  {placed.role:<10}  {', '.join(facts)}")
    table = contents.table
    if table is not None and contents.table_at is not None:
        md5 = {True: "MD5 ok", False: "MD5 BAD", None: "no MD5"}[table.md5_ok]
        print(f"  partitions  (at 0x{contents.table_at:x}, {md5})")
        for part in table.partitions:
            print(f"    {part.label:<16}{part.kind:<16}0x{part.offset:08x}  {part.size:>12,}")
    for problem in contents.problems:
        print(f"  problem: {problem}")


# --- mkdfu ------------------------------------------------------------------------------------


def _mkdfu(args: argparse.Namespace) -> int:
    part_size = args.part_size or part_size_from_env()
    if args.build_dir is not None:
        data, output, notes = _from_build_dir(args, part_size)
    else:
        data, output, notes = _from_inputs(args, part_size)
    for note in notes:
        print(f"espdfu: note: {note}", file=sys.stderr)
    image = dfufile.parse(data)
    dfufile.save(output, data)
    entries = f"{len(image.entries)} {'entry' if len(image.entries) == 1 else 'entries'}"
    print(
        f"Wrote {output}: {len(data):,} bytes, {image.chip_name}, {entries}, "
        f"flash {_flash_text(image.flash_size)}."
    )
    for warning in image.warnings:
        print(f"espdfu: warning: {warning}", file=sys.stderr)
    return Exit.OK


def _flash_text(flash_size: int | None) -> str:
    return format_size(flash_size) if flash_size is not None else "size not stated (legacy)"


def _from_build_dir(args: argparse.Namespace, part_size: int) -> tuple[bytes, Path, list[str]]:
    conflicting = [
        option
        for option, value in (
            ("--pid", args.pid),
            ("--chip", args.chip),
            ("--flash-size", args.flash_size),
            ("--json", args.json),
            ("--no-flash-params", args.no_flash_params),
            ("ADDRESS FILE", args.files),
        )
        if value
    ]
    if conflicting:
        raise InputError(
            f"--build-dir takes the images, chip and flash size from the build; "
            f"drop {', '.join(conflicting)}."
        )
    build_folder = BuildFolder.open(args.build_dir)
    output = args.output or build_folder.path / "dfu.bin"
    return build_folder.make_dfu(part_size), output, list(build_folder.notes)


def _from_inputs(args: argparse.Namespace, part_size: int) -> tuple[bytes, Path, list[str]]:
    if args.output is None:
        raise InputError("Say where to write the dfu.bin with -o OUT (or use --build-dir DIR).")
    if len(args.files) % 2:
        raise InputError(
            "Images come in pairs of ADDRESS FILE, e.g. `0x10000 app.bin`; "
            f"'{args.files[-1]}' has no partner."
        )
    given = [
        Image(parse_int(address, f"The address of {name}"), Path(name))
        for address, name in zip(args.files[::2], args.files[1::2], strict=True)
    ]
    images, replaced = merge_images(given, flash_files_from_json(args.json) if args.json else [])
    if not images:
        raise InputError("Nothing to put in the dfu.bin: give ADDRESS FILE pairs or --json.")
    files = read_flash_files(images)
    for warning in replaced:
        print(f"espdfu: warning: {warning}", file=sys.stderr)
    notes = [
        f"{file.name} is empty; ESP-IDF's writer leaves empty images out, and so does espdfu."
        for file in files
        if not file.data
    ]
    flash_size = None if args.no_flash_params else args.flash_size or dfufile.DEFAULT_FLASH_SIZE
    data = dfufile.pack(files, pid=_pid(args), flash_size=flash_size, part_size=part_size)
    check_writable(files, flash_size)
    return data, args.output, notes


def _pid(args: argparse.Namespace) -> int:
    if args.pid is not None:
        return parse_pid(args.pid)
    if args.chip is not None:
        return chip_for_target(args.chip).dfu_pid
    raise InputError(
        "Say which chip the dfu.bin is for: --chip esp32s2 (or esp32s3, ...) or --pid 2."
    )
