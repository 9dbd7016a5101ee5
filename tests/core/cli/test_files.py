"""The `espdfu` command as users run it: a real process, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from espdfu import __version__
from espdfu.demo.project import main as build_demo
from espdfu.demo.project import make_demo_project
from espdfu.files import dfufile
from espdfu.files.dfufile import FlashFile
from espdfu.files.espimage import write_image
from tests.helpers.archive import archive, record, with_suffix
from tests.helpers.buildfolder import stale_build
from tests.helpers.command import espdfu

MB = 1024 * 1024


@pytest.fixture
def valid_file(tmp_path: Path) -> Path:
    path = tmp_path / "dfu.bin"
    files = [FlashFile(0x0, "bootloader.bin", b"b" * 100), FlashFile(0x10000, "app.bin", b"a" * 5)]
    path.write_bytes(dfufile.pack(files, pid=9, flash_size=8 * MB))
    return path


def test_version() -> None:
    result = espdfu("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"espdfu {__version__}"


def test_info_summarises_a_valid_file(valid_file: Path) -> None:
    result = espdfu("info", valid_file)
    assert result.returncode == 0, result.stderr
    assert "valid dfu.bin" in result.stdout and "esp32s3" in result.stdout
    assert "8 MB" in result.stdout
    assert "0x00010000" in result.stdout and "app.bin" in result.stdout
    assert result.stderr == ""


def test_info_json_has_the_documented_shape(valid_file: Path) -> None:
    result = espdfu("info", "--json", valid_file)
    assert result.returncode == 0
    summary = json.loads(result.stdout)
    assert summary["chip"] == "esp32s3" and summary["pid"] == 9 and summary["vid"] == 0x303A
    assert summary["crc_ok"] is True and summary["flash_size"] == 8 * MB
    assert summary["warnings"] == []
    assert [set(e) for e in summary["entries"]] == [
        {"name", "address", "size", "flags", "md5", "md5_ok"}
    ] * 2
    assert summary["entries"][1]["address"] == 0x10000
    assert summary["entries"][1]["md5_ok"] is True


def test_info_on_a_damaged_file_shows_it_and_exits_2(valid_file: Path) -> None:
    data = bytearray(valid_file.read_bytes())
    data[500] ^= 1
    valid_file.write_bytes(bytes(data))
    result = espdfu("info", valid_file)
    assert result.returncode == 2
    assert "CRC         BAD" in result.stdout
    assert "not a valid dfu.bin" in result.stderr and "CRC" in result.stderr
    json_result = espdfu("info", "--json", valid_file)
    assert json_result.returncode == 2 and json.loads(json_result.stdout)["crc_ok"] is False


def test_info_says_when_a_dfu_bin_holds_an_older_build_than_the_one_beside_it(
    tmp_path: Path,
) -> None:
    """`idf.py build` does not remake dfu.bin: beside a flasher_args.json, info compares."""
    (tmp_path / "build").mkdir()
    stale_build(tmp_path / "build")
    said = "build/dfu.bin holds an older app than build/app.bin"
    result = espdfu("info", "build/dfu.bin", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""  # a valid dfu.bin all the same
    assert (
        f"  warning: {said}. Run `idf.py dfu` (or `espdfu mkdfu --build-dir build`) to make it "
        "again."
    ) in result.stdout.splitlines()
    summary = json.loads(espdfu("info", "--json", "build/dfu.bin", cwd=tmp_path).stdout)
    assert summary["stale"] == {"image": "build/app.bin", "why": said}

    assert espdfu("mkdfu", "--build-dir", "build", cwd=tmp_path).returncode == 0
    assert "warning" not in espdfu("info", "build/dfu.bin", cwd=tmp_path).stdout
    summary = json.loads(espdfu("info", "--json", "build/dfu.bin", cwd=tmp_path).stdout)
    assert summary["stale"] is None


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"\xe9\x02\x02\x10" + bytes(4000), "raw ESP firmware image"),
        (b"plain text\n" * 10, "not a dfu.bin"),
    ],
)
def test_info_on_what_is_not_a_dfu_file(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "firmware.bin"
    path.write_bytes(content)
    result = espdfu("info", path)
    assert result.returncode == 2 and result.stdout == ""
    assert words in result.stderr and "firmware.bin" in result.stderr
    json_result = espdfu("info", "--json", path)
    assert json_result.returncode == 2
    assert json.loads(json_result.stdout)["valid"] is False


def test_info_on_a_missing_file(tmp_path: Path) -> None:
    result = espdfu("info", tmp_path / "nope.bin")
    assert result.returncode == 2 and "does not exist" in result.stderr


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (
            ["flash", "missing.bin", "--sim", "esp32s2"],
            "missing.bin does not exist.",
            "Check the name and the folder of the dfu.bin (relative to {cwd}).",
        ),
        (
            ["info", "adir"],
            "adir is a folder, not a dfu.bin.",
            "Give the path of the dfu.bin itself, not of the folder it is in.",
        ),
        (
            ["flash", "/dev/null", "--sim", "esp32s2"],
            "/dev/null is a device, pipe or socket, not a dfu.bin.",
            "Save the dfu.bin to a regular file and give that file",
        ),
        (
            ["mkdfu", "-o", "x.bin", "--chip", "esp32s2", "0", "missing.bin"],
            "missing.bin does not exist.",
            "Check the name and the folder of the flash image (relative to {cwd}).",
        ),
        (
            ["mkdfu", "-o", "x.bin", "--chip", "esp32s2", "0", "adir"],
            "adir is a folder, not a flash image.",
            "Give the path of the flash image itself, not of the folder it is in.",
        ),
        (
            ["mkdfu", "-o", "x.bin", "--chip", "esp32s2", "0", "/dev/null"],
            "/dev/null is a device, pipe or socket, not a flash image.",
            "Save the flash image to a regular file and give that file",
        ),
        (
            ["mkdfu", "-o", "no/dir/x.bin", "--chip", "esp32s2", "0", "a.bin"],
            "Cannot write no/dir/x.bin: its folder does not exist.",
            "Create no/dir first, or give a path in a folder that exists.",
        ),
    ],
)
def test_unreadable_inputs_say_what_to_do(
    tmp_path: Path, args: list[str], message: str, hint: str
) -> None:
    """docs/cli.md promises a sentence and, on the next line, what to do about it."""
    (tmp_path / "adir").mkdir()
    (tmp_path / "a.bin").write_bytes(b"app")
    result = espdfu(*args, cwd=tmp_path)
    assert result.returncode in (1, 2)
    first, second = result.stderr.splitlines()[:2]
    assert first == f"espdfu: {message}"
    assert second.startswith(f"  {hint.format(cwd=tmp_path)}")


def test_mkdfu_writes_what_esp_idf_writes(vectors: Path, tmp_path: Path) -> None:
    """Same arguments as ESP-IDF's test of mkdfu.py, run in the vector folder."""
    out = tmp_path / "out.bin"
    args: list[str | Path] = ["mkdfu", "-o", out, "--pid", "2", "--flash-size", "4MB"]
    result = espdfu(
        *args, "0x1000", "1.bin", "0x8000", "2.bin", "0x10000", "3.bin", cwd=vectors / "1"
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (vectors / "1" / "dfu.bin").read_bytes()
    assert "3 entries" in result.stdout

    out.unlink()
    result = espdfu(*args, "--json", vectors / "1" / "flasher_args.json")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (vectors / "1" / "dfu.bin").read_bytes()


def test_mkdfu_legacy_layout(vectors: Path, tmp_path: Path) -> None:
    out = tmp_path / "legacy.bin"
    result = espdfu(
        "mkdfu", "-o", out, "--chip", "esp32s2", "--no-flash-params",
        "--json", vectors / "1" / "flasher_args.json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (vectors / "legacy_no_flash_params" / "1" / "dfu.bin").read_bytes()
    assert "Legacy layout" in result.stderr and "up to v4.3.3, v4.4.0 and v4.4.1" in result.stderr


def test_mkdfu_part_size_from_option_and_environment(tmp_path: Path) -> None:
    (tmp_path / "bin").write_bytes(b"\xce" * 10)
    expected = dfufile.pack([FlashFile(0, "bin", b"\xce" * 10)], pid=2, part_size=5)
    result = espdfu(
        "mkdfu", "-o", "a.bin", "--pid", "2", "--part-size", "5", "0", "bin", cwd=tmp_path
    )
    assert result.returncode == 0 and (tmp_path / "a.bin").read_bytes() == expected
    assert "not a multiple of 4096" in result.stderr
    result = espdfu(
        "mkdfu",
        "-o",
        "b.bin",
        "--pid",
        "2",
        "0",
        "bin",
        cwd=tmp_path,
        env={"ESP_DFU_PART_SIZE": "5"},
    )
    assert result.returncode == 0 and (tmp_path / "b.bin").read_bytes() == expected


def test_mkdfu_takes_sizes_with_units(tmp_path: Path) -> None:
    """--part-size 4M was refused where --flash-size 4MB worked: both take either now."""
    (tmp_path / "app.bin").write_bytes(b"\xce" * (64 * 1024 + 1))
    result = espdfu(
        "mkdfu", "-o", "a.bin", "--chip", "esp32s2", "--flash-size", "4M", "--part-size", "64K",
        "0x10000", "app.bin", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    image = dfufile.load(tmp_path / "a.bin")
    assert image.flash_size == 4 * MB and [e.size for e in image.entries] == [64 * 1024, 1]


def test_mkdfu_refuses_images_beyond_the_flash_and_names_the_way_out(tmp_path: Path) -> None:
    """It wrote the file, exit 0, with a warning for each of its ten parts."""
    (tmp_path / "rand5m.bin").write_bytes(bytes(5 * MB))
    args = ["mkdfu", "-o", "x.bin", "--chip", "esp32s2", "0x3F0000", "rand5m.bin"]
    result = espdfu(*args, cwd=tmp_path)
    assert result.returncode == 2 and not (tmp_path / "x.bin").exists()
    assert result.stderr.splitlines() == [
        "espdfu: 'rand5m.bin' ends at 0x8f0000, beyond the 2 MB flash (it takes 16MB): espdfu "
        "does not write a dfu.bin the flash cannot hold.",
        "  If the board's flash is bigger, say so with --flash-size (a build's own is "
        "CONFIG_ESPTOOLPY_FLASHSIZE, in `idf.py menuconfig`); else put the images lower.",
    ]
    assert espdfu(*args, "--flash-size", "16MB", cwd=tmp_path).returncode == 0


def test_mkdfu_refuses_a_dfu_bin_that_flashes_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.bin").write_bytes(b"")
    result = espdfu(
        "mkdfu", "-o", "x.bin", "--chip", "esp32s2", "0x1000", "empty.bin", cwd=tmp_path
    )
    assert result.returncode == 2 and not (tmp_path / "x.bin").exists()
    assert "Nothing to write: every image is empty" in result.stderr


def test_info_and_flash_warn_of_entries_beyond_the_declared_flash(tmp_path: Path) -> None:
    """`idf.py dfu` writes such files, and what the ROM does with them is not published: they
    are read and flashed, with one warning that gives both sizes."""
    parts = [FlashFile(0x3F0000 + n * 512 * 1024, f"p{n}", b"\xce" * 512 * 1024) for n in range(3)]
    path = tmp_path / "dfu.bin"
    path.write_bytes(dfufile.pack(parts, pid=2, flash_size=4 * MB))
    warning = (
        "3 entries reach up to 0x570000, beyond the 4 MB flash (they take 8MB); the file "
        "declares that flash in flash_params.dat, and what the ESP ROM does with entries beyond "
        "it is not published: flash it only to a board whose flash is big enough."
    )
    info = espdfu("info", path)
    assert info.returncode == 0, info.stderr
    assert [line for line in info.stdout.splitlines() if "warning" in line] == [
        f"  warning: {warning}"
    ]
    flashed = espdfu("flash", path, "--sim", "esp32s2")  # a virtual board's flash is 4 MB
    assert f"espdfu: warning: {warning}" in flashed.stderr.splitlines()
    assert "1-1.1" in flashed.stdout  # warned, and flashed all the same


def test_mkdfu_from_a_build_folder(tmp_path: Path, vectors: Path) -> None:
    build = tmp_path / "build"
    shutil.copytree(vectors / "1", build)
    (build / "dfu.bin").unlink()
    (build / "project_description.json").write_text('{"target": "esp32s2"}')
    result = espdfu("mkdfu", "--build-dir", build)
    assert result.returncode == 0, result.stderr
    # The vector was made with --flash-size 4MB; this build does not say, so 2MB and a note.
    assert "2MB" in result.stderr
    image = dfufile.load(build / "dfu.bin")
    assert image.flash_size == 2 * MB and [e.name for e in image.entries] == [
        "1.bin",
        "2.bin",
        "3.bin",
    ]


def test_mkdfu_for_a_target_without_dfu(tmp_path: Path) -> None:
    (tmp_path / "flasher_args.json").write_text('{"flash_files": {}}')
    (tmp_path / "project_description.json").write_text('{"target": "esp32c3"}')
    result = espdfu("mkdfu", "--build-dir", tmp_path)
    assert result.returncode == 2
    assert "esp32c3 has no USB DFU" in result.stderr and "esp32s2" in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-o", "x.bin", "--pid", "2", "0x1000"], "has no partner"),
        (["-o", "x.bin", "0x1000", "a.bin"], "Say which chip"),
        (
            ["-o", "x.bin", "--chip", "esp32s2", "--flash-size", "3MB", "0", "a.bin"],
            "3 MB is not one ESP-IDF knows",
        ),
        (["-o", "x.bin", "--chip", "esp32", "0", "a.bin"], "esp32 has no USB DFU"),
        (["-o", "x.bin", "--chip", "esp32s2", "zero", "a.bin"], "'zero' is not a number"),
        (["-o", "x.bin", "--chip", "esp32s2", "0", "missing.bin"], "missing.bin does not exist"),
        (["-o", "x.bin", "--chip", "esp32s2"], "Nothing to put"),
        (["--chip", "esp32s2", "0", "a.bin"], "-o OUT"),
        (["--build-dir", ".", "--chip", "esp32s2"], "drop --chip"),
        (["-o", "no/such/dir/x.bin", "--chip", "esp32s2", "0", "a.bin"], "does not exist"),
    ],
)
def test_mkdfu_mistakes_are_explained(tmp_path: Path, args: list[str], words: str) -> None:
    (tmp_path / "a.bin").write_bytes(b"app")
    result = espdfu("mkdfu", *args, cwd=tmp_path)
    assert result.returncode in (1, 2)
    assert words in result.stderr
    assert not (tmp_path / "x.bin").exists()


def test_mkdfu_refuses_two_images_for_one_address(tmp_path: Path) -> None:
    """mkdfu.py keys images by address: it would drop bootloader.bin without a word."""
    (tmp_path / "bootloader.bin").write_bytes(b"boot")
    (tmp_path / "app.bin").write_bytes(b"app")
    args = ["-o", "x.bin", "--chip", "esp32s2", "0x1000", "bootloader.bin", "4096", "app.bin"]
    result = espdfu("mkdfu", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "espdfu: Two images for 0x1000: bootloader.bin and app.bin. Only one can be written at "
        "an address.\n"
    )
    assert not (tmp_path / "x.bin").exists()


def test_mkdfu_json_entries_replace_given_ones_and_say_so(vectors: Path, tmp_path: Path) -> None:
    """ESP-IDF's override (--json entries win) is kept, never silent."""
    out = tmp_path / "out.bin"
    result = espdfu(
        "mkdfu", "-o", out, "--pid", "2", "--flash-size", "4MB", "0x10000", "1.bin",
        "--json", "flasher_args.json", cwd=vectors / "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (vectors / "1" / "dfu.bin").read_bytes()
    assert (
        'espdfu: warning: flasher_args.json names "3.bin" under "0x10000", which replaces 1.bin '
        "given for 0x10000 (entries from --json win, as in ESP-IDF's mkdfu.py).\n"
    ) in result.stderr


def test_mkdfu_refuses_two_images_of_one_name_and_says_how_to_fix_it(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "app.bin").write_bytes(folder.encode())
    args = ["-o", "x.bin", "--chip", "esp32s2", "0x10000", "a/app.bin", "0x200000", "b/app.bin"]
    result = espdfu("mkdfu", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert "'app.bin' at 0x200000 would have the same name in the dfu.bin as 'app.bin' at " in (
        result.stderr
    )
    assert "by its name alone: the board could not tell them apart." in result.stderr
    assert "Give the images distinct file names" in result.stderr
    assert not (tmp_path / "x.bin").exists()


def test_info_on_a_file_holding_one_name_twice_says_why_and_how(tmp_path: Path) -> None:
    """What mkdfu.py writes for two images called app.bin: refused, with the reason."""
    records = [record(0x10000, b"app.bin", b"A"), record(0x200000, b"app.bin", b"B")]
    path = tmp_path / "dfu.bin"
    path.write_bytes(with_suffix(archive(records, [(b"app.bin", b"A"), (b"app.bin", b"B")])))
    result = espdfu("info", path)
    assert result.returncode == 2
    assert "holds two files named 'app.bin'" in result.stderr
    assert "cannot tell which record belongs to which file" in result.stderr
    assert "Give the images distinct file names" in result.stderr


def _build_with_certificate(root: Path, certificate: str) -> Path:
    """A build like ESP-IDF's protocols/esp_http_client_mutual_auth: a file from the source
    tree, named relative to the build folder."""
    build = root / "build"
    build.mkdir()
    (build / "app.bin").write_bytes(b"\xe9app" * 100)
    files = {"0x10000": "app.bin", "0x310000": certificate}
    flash = {"flash_size": "4MB"}  # the certificate is at 3 MB
    (build / "flasher_args.json").write_text(
        json.dumps({"flash_files": files, "flash_settings": flash})
    )
    (build / "project_description.json").write_text('{"target": "esp32s2"}')
    return build


def test_mkdfu_takes_a_build_image_from_the_source_tree(tmp_path: Path) -> None:
    (tmp_path / "main" / "certs").mkdir(parents=True)
    (tmp_path / "main" / "certs" / "client.crt").write_bytes(b"certificate")
    build = _build_with_certificate(tmp_path, "../main/certs/client.crt")
    result = espdfu("mkdfu", "--build-dir", build)
    assert result.returncode == 0, result.stderr
    image = dfufile.load(build / "dfu.bin")
    assert [(e.name, e.address) for e in image.entries] == [
        ("app.bin", 0x10000),
        ("client.crt", 0x310000),
    ]


def test_mkdfu_names_the_key_of_a_missing_build_image(tmp_path: Path) -> None:
    build = _build_with_certificate(tmp_path, "../main/certs/client.crt")
    result = espdfu("mkdfu", "--build-dir", build)
    assert result.returncode == 2
    assert (
        f'espdfu: {build / "flasher_args.json"} names "../main/certs/client.crt" under '
        f'"0x310000", but {build / ".." / "main" / "certs" / "client.crt"} does not exist.\n'
        "  The file is gone since the build named it: restore it, or run `idf.py build` again"
    ) in result.stderr
    assert "outside the build folder" not in result.stderr
    assert not (build / "dfu.bin").exists()


def test_an_esp32p4_file_is_made_read_and_flashed_to_a_p4_only(tmp_path: Path) -> None:
    """ESP-IDF's `idf.py dfu` makes P4 files (PID 0x0012) since v5.5."""
    app = write_image(0x0012, [(0x40000020, bytes(3000))], entry=0x4FF00000)  # a P4 app
    (tmp_path / "app.bin").write_bytes(app)
    made = espdfu("mkdfu", "-o", "p4.bin", "--chip", "esp32p4", "0x10000", "app.bin", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    info = espdfu("info", tmp_path / "p4.bin")
    assert info.returncode == 0 and "esp32p4 (PID 0x0012, VID 0x303a)" in info.stdout
    flashed = espdfu("flash", tmp_path / "p4.bin", "--sim", "esp32p4")
    assert flashed.returncode == 0, flashed.stderr
    assert "1 of 1 board flashed." in flashed.stdout
    refused = espdfu("flash", tmp_path / "p4.bin", "--sim", "esp32s2")
    assert refused.returncode != 0
    assert "No board can take this esp32p4 file." in refused.stderr


def test_usage_errors_exit_2() -> None:
    result = espdfu("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def _demo_build(tmp_path: Path) -> Path:
    """The demo project's build: a bootloader, a partition table, an app, as ESP-IDF's."""

    project = make_demo_project(tmp_path)
    assert build_demo(["build", str(project.project_dir)]) == 0
    return project.build_dir / "dfu.bin"


def test_info_says_what_the_board_will_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPDFU_DEMO_BUILD_S", "0")
    path = _demo_build(tmp_path)
    result = espdfu("info", path)
    assert result.returncode == 0, result.stderr
    assert "  app         espdfu-demo build 1 · ESP-IDF v5.3 · built " in result.stdout
    assert "0x00001000  bootloader  esp32s2, 3 segments, checksum ok, SHA-256 ok" in result.stdout
    assert "0x00010000  factory     esp32s2, 4 segments, checksum ok, SHA-256 ok" in result.stdout
    assert "  partitions  (at 0x8000, MD5 ok)" in result.stdout
    assert "factory         app/factory     0x00010000     1,048,576" in result.stdout
    summary = json.loads(espdfu("info", "--json", path).stdout)
    assert summary["boot_problems"] == []
    (boot, app) = summary["images"]
    assert (boot["role"], app["role"], app["address"]) == ("bootloader", "factory", 0x10000)
    assert app["app"]["project"] == "espdfu-demo" and len(app["app"]["elf_sha256"]) == 64
    assert app["checksum_ok"] is True and app["sha256_ok"] is True
    labels = [p["label"] for p in summary["partition_table"]["partitions"]]
    assert labels == ["nvs", "phy_init", "factory"]


def _other_chips_app(tmp_path: Path) -> Path:
    """An ESP32-S2 dfu.bin whose app was built for the ESP32-S3."""
    app = write_image(0x0009, [(0x3F000020, bytes(256))], entry=0x40370000)
    path = tmp_path / "dfu.bin"
    path.write_bytes(dfufile.pack([FlashFile(0x10000, "app.bin", app)], pid=2))
    return path


def test_info_and_flash_refuse_what_the_board_would_not_boot(tmp_path: Path) -> None:
    path = _other_chips_app(tmp_path)
    said = "app.bin at 0x10000 is built for esp32s3 but the file is for esp32s2"
    info = espdfu("info", path)
    assert info.returncode == 2 and f"  problem: {said}" in info.stdout
    assert said in info.stderr
    refused = espdfu("flash", path, "--sim", "esp32s2")
    assert refused.returncode == 2 and said in refused.stderr
    assert "idf.py dfu" in refused.stderr and "Traceback" not in refused.stderr
    forced = espdfu("flash", path, "--sim", "esp32s2", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"warning: --force flashes {path} anyway: {said}" in forced.stderr
