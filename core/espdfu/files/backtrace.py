"""A panic's program counters → function and file:line, from the project's ELF.

idf.py monitor runs the toolchain's addr2line on each address of a ``Backtrace:`` line; this
reads the ELF's symbol table and DWARF line table with pyelftools instead, so that no toolchain
need be on PATH (a production host has none). The ELF is the one the build left: ESP-IDF's
project_description.json names it (``app_elf``, in ``build_dir``).
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:  # pyelftools is imported when an ELF is read: every command imports this
    from elftools.elf.elffile import ELFFile  # module, and pyelftools takes 20 ms to load


@dataclass(frozen=True)
class Place:
    """Where a program counter is in the source."""

    pc: int
    function: str | None
    file: str | None
    line: int | None

    def __str__(self) -> str:
        where = f" at {self.file}:{self.line}" if self.file else ""
        return f"0x{self.pc:08x}: {self.function or '??'}{where}"


class Symbols:
    """One ELF's functions and line table, read once, looked up many times."""

    def __init__(self, path: Path) -> None:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        try:
            with path.open("rb") as stream:
                elf = ELFFile(stream)
                self._functions = _functions(elf)
                self._rows = _line_rows(elf) if elf.has_dwarf_info() else []
        except (OSError, ELFError, ValueError) as error:
            raise InputError(
                f"{path} cannot be read as an ELF file ({error}).",
                "Give the app's .elf from the build folder (build/<project>.elf).",
            ) from None
        self._starts = [start for start, _, _ in self._functions]
        self._addresses = [address for address, _, _ in self._rows]
        self.path = path

    def lookup(self, pc: int) -> Place:
        function = None
        at = bisect.bisect_right(self._starts, pc) - 1
        if at >= 0 and pc < self._functions[at][1]:
            function = self._functions[at][2]
        file = line = None
        at = bisect.bisect_right(self._addresses, pc) - 1
        if at >= 0 and self._rows[at][1] is not None:  # None: past the end of a sequence
            _, file, line = self._rows[at]
        return Place(pc, function, file, line)


def _functions(elf: ELFFile) -> list[tuple[int, int, str]]:
    """(start, end, name) of every function symbol with a size, by start."""
    from elftools.elf.sections import SymbolTableSection

    found = []
    for section in elf.iter_sections():
        if isinstance(section, SymbolTableSection):
            for symbol in section.iter_symbols():
                value, size = symbol["st_value"], symbol["st_size"]
                if symbol["st_info"]["type"] == "STT_FUNC" and size:
                    found.append((value, value + size, symbol.name))
    return sorted(found)


def _line_rows(elf: ELFFile) -> list[tuple[int, str | None, int | None]]:
    """(address, file, line) of the DWARF line table, by address; the end of each sequence as
    (address, None, None)."""
    rows: list[tuple[int, str | None, int | None]] = []
    dwarf = elf.get_dwarf_info()
    for unit in dwarf.iter_CUs():
        program = dwarf.line_program_for_CU(unit)
        if program is None:
            continue
        header = program.header
        base = 0 if header["version"] >= 5 else 1  # DWARF 5 counts files and folders from 0
        for entry in program.get_entries():
            state = entry.state
            if state is None:
                continue
            if state.end_sequence:
                rows.append((state.address, None, None))
                continue
            file = header["file_entry"][state.file - base]
            name = file.name.decode(errors="replace")
            if not name.startswith("/") and file.dir_index - base >= 0:
                folders = header["include_directory"]
                if file.dir_index - base < len(folders):
                    name = f"{folders[file.dir_index - base].decode(errors='replace')}/{name}"
            rows.append((state.address, name, state.line))
    rows.sort(key=lambda row: (row[0], row[1] is not None))
    return rows


def project_elf(build_dir: Path) -> Path | None:
    """The app's ELF that ESP-IDF's project_description.json names, if it is there."""
    try:
        description = json.loads((build_dir / "project_description.json").read_text())
        elf = build_dir / str(description["app_elf"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return elf if elf.is_file() else None
