"""Reading what an ESP-IDF build folder says: images, target and flash size, and refusing lies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from espdfu.errors import InputError
from espdfu.files import dfufile
from espdfu.files.idfbuild import (
    BuildFolder,
    Image,
    flash_files_from_json,
    merge_images,
    parse_pid,
    part_size_from_env,
)

MB = 1024 * 1024


def _build_folder(
    root: Path,
    *,
    target: str | None = "esp32s2",
    flash_size: str | None = "4MB",
    flash_files: dict[str, str] | None = None,
) -> Path:
    """A build folder as `idf.py build` leaves it (only the files espdfu reads)."""
    build = root / "build"
    (build / "bootloader").mkdir(parents=True)
    (build / "bootloader" / "bootloader.bin").write_bytes(b"\xe9boot" * 100)
    (build / "app.bin").write_bytes(b"\xe9app" * 3000)
    args: dict[str, object] = {
        "flash_files": flash_files or {"0x10000": "app.bin", "0x1000": "bootloader/bootloader.bin"},
        "extra_esptool_args": {"chip": "esp32s2"},
    }
    if flash_size:
        args["flash_settings"] = {"flash_mode": "dio", "flash_size": flash_size}
    (build / "flasher_args.json").write_text(json.dumps(args))
    if target:
        (build / "project_description.json").write_text(json.dumps({"target": target}))
    return build


def test_a_build_folder_gives_what_mkdfu_would_give(tmp_path: Path) -> None:
    folder = BuildFolder.open(_build_folder(tmp_path, target="esp32s3", flash_size="8MB"))
    assert folder.chip.name == "esp32s3" and folder.flash_size == 8 * MB
    assert folder.notes == ()
    image = dfufile.parse(folder.make_dfu())
    assert image.chip_name == "esp32s3" and image.flash_size == 8 * MB
    assert [(e.name, e.address) for e in image.entries] == [
        ("bootloader.bin", 0x1000),
        ("app.bin", 0x10000),
    ]


def test_the_vector_build_gives_the_vector_bytes(tmp_path: Path, vectors: Path) -> None:
    build = tmp_path / "build"
    shutil.copytree(vectors / "1", build)
    (build / "dfu.bin").unlink()
    (build / "project_description.json").write_text('{"target": "esp32s2"}')
    args = json.loads((build / "flasher_args.json").read_text())
    args["flash_settings"] = {"flash_size": "4MB"}
    (build / "flasher_args.json").write_text(json.dumps(args))
    assert BuildFolder.open(build).make_dfu() == (vectors / "1" / "dfu.bin").read_bytes()


def test_target_from_sdkconfig_json(tmp_path: Path) -> None:
    build = _build_folder(tmp_path, target=None)
    (build / "flasher_args.json").write_text(json.dumps({"flash_files": {"0": "app.bin"}}))
    (build / "config").mkdir()
    (build / "config" / "sdkconfig.json").write_text(
        json.dumps({"IDF_TARGET": "esp32s3", "ESPTOOLPY_FLASHSIZE": "16MB"})
    )
    folder = BuildFolder.open(build)
    assert (folder.chip.name, folder.flash_size) == ("esp32s3", 16 * MB)


def test_target_from_the_project_sdkconfig(tmp_path: Path) -> None:
    build = _build_folder(tmp_path, target=None)
    (build / "flasher_args.json").write_text(json.dumps({"flash_files": {"0": "app.bin"}}))
    (tmp_path / "sdkconfig").write_text('# comment\nCONFIG_IDF_TARGET="esp32s3"\n')
    assert BuildFolder.open(build).chip.name == "esp32s3"


def test_target_from_the_esptool_arguments(tmp_path: Path) -> None:
    assert BuildFolder.open(_build_folder(tmp_path, target=None)).chip.name == "esp32s2"


def test_unknown_flash_size_falls_back_to_the_default_and_says_so(tmp_path: Path) -> None:
    folder = BuildFolder.open(_build_folder(tmp_path, flash_size="detect"))
    assert folder.flash_size == 2 * MB
    assert "2MB" in folder.notes[0]


def test_a_target_without_dfu_names_the_ones_with_it(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        BuildFolder.open(_build_folder(tmp_path, target="esp32c3"))
    assert "esp32c3 has no USB DFU" in caught.value.message
    assert "esp32s2, esp32s3" in caught.value.message
    assert "idf.py flash" in caught.value.hint


def test_a_folder_without_flasher_args(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no flasher_args\.json") as caught:
        BuildFolder.open(tmp_path)
    assert "idf.py build" in caught.value.hint


def test_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        BuildFolder.open(tmp_path / "nope")


@pytest.mark.parametrize("where", ["../main/certs/client.crt", "ABSOLUTE", "link/client.crt"])
def test_images_out_of_the_build_folder_are_taken_as_esp_idf_takes_them(
    tmp_path: Path, where: str
) -> None:
    """A build names images from the source tree as ``../...`` (ESP-IDF's
    esptool_py_flash_target_image uses file(RELATIVE_PATH)); mkdfu.py takes any regular file."""
    certs = tmp_path / "main" / "certs"
    certs.mkdir(parents=True)
    (certs / "client.crt").write_bytes(b"-----BEGIN CERTIFICATE-----")
    name = str(certs / "client.crt") if where == "ABSOLUTE" else where
    build = _build_folder(tmp_path, flash_files={"0x10000": "app.bin", "0x300000": name})
    (build / "link").symlink_to(certs)
    image = dfufile.parse(BuildFolder.open(build).make_dfu())
    assert [(e.name, e.address, e.size) for e in image.entries] == [
        ("app.bin", 0x10000, 12000),
        ("client.crt", 0x300000, 27),
    ]


def test_a_missing_image_outside_is_named_with_its_key_and_a_true_hint(tmp_path: Path) -> None:
    build = _build_folder(tmp_path, flash_files={"0x300000": "../main/certs/gone.crt"})
    with pytest.raises(InputError) as caught:
        BuildFolder.open(build).make_dfu()
    assert caught.value.message == (
        f'{build / "flasher_args.json"} names "../main/certs/gone.crt" under "0x300000", '
        f"but {build / '..' / 'main' / 'certs' / 'gone.crt'} does not exist."
    )
    assert caught.value.hint.startswith("The file is gone since the build named it")
    assert "outside the build folder" not in str(caught.value)


def test_a_folder_named_as_an_image_is_refused_with_its_key(tmp_path: Path) -> None:
    (tmp_path / "main").mkdir()
    build = _build_folder(tmp_path, flash_files={"0x10000": "app.bin", "0x9000": "../main"})
    with pytest.raises(InputError) as caught:
        BuildFolder.open(build).make_dfu()
    assert caught.value.message.endswith(
        f'names "../main" under "0x9000", but {build / ".." / "main"} is a folder, not a file.'
    )
    assert "idf.py build" in caught.value.hint


def test_a_symlink_loop_is_refused_not_followed_forever(tmp_path: Path) -> None:
    build = _build_folder(tmp_path, flash_files={"0x10000": "loop"})
    (build / "loop").symlink_to(build / "loop")
    with pytest.raises(InputError) as caught:
        BuildFolder.open(build).make_dfu()
    assert caught.value.message.startswith(f"Cannot read {build / 'loop'}: ")
    assert caught.value.message.endswith(
        f'{build / "flasher_args.json"} names "loop" under "0x10000".'
    )


def test_an_explicit_json_may_point_anywhere_like_esp_idf(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "args.json").write_text('{"flash_files": {"0x10000": "../app.bin"}}')
    [image] = flash_files_from_json(tmp_path / "sub" / "args.json")
    assert (image.address, image.path) == (0x10000, tmp_path / "sub" / ".." / "app.bin")


def test_two_keys_for_one_address_are_refused_not_one_dropped(tmp_path: Path) -> None:
    path = tmp_path / "flasher_args.json"
    path.write_text('{"flash_files": {"0x1000": "a.bin", "4096": "b.bin"}}')
    with pytest.raises(InputError) as caught:
        flash_files_from_json(path)
    assert caught.value.message == (
        f'{path} names "a.bin" under "0x1000" and "b.bin" under "4096": two images for the one '
        "address 0x1000."
    )


def test_json_entries_replace_given_ones_with_a_warning_as_in_mkdfu(tmp_path: Path) -> None:
    path = tmp_path / "flasher_args.json"
    path.write_text('{"flash_files": {"0x10000": "app.bin"}}')
    given = [Image(0x1000, Path("boot.bin")), Image(0x10000, Path("old.bin"))]
    images, warnings = merge_images(given, flash_files_from_json(path))
    assert [(image.address, image.path.name) for image in images] == [
        (0x1000, "boot.bin"),
        (0x10000, "app.bin"),
    ]
    assert warnings == [
        f'{path} names "app.bin" under "0x10000", which replaces old.bin given for 0x10000 '
        "(entries from --json win, as in ESP-IDF's mkdfu.py)."
    ]


def test_two_given_images_for_one_address_are_refused() -> None:
    given = [Image(0x1000, Path("bootloader.bin")), Image(4096, Path("app.bin"))]
    with pytest.raises(InputError) as caught:
        merge_images(given, [])
    assert caught.value.message == (
        "Two images for 0x1000: bootloader.bin and app.bin. Only one can be written at an address."
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", r"not valid JSON \(line 1\)"),
        ("[1, 2]", "does not hold a JSON object"),
        ('{"other": 1}', "no 'flash_files' object"),
        ('{"flash_files": {"0x10000": 5}}', "no 'flash_files' object"),
        ('{"flash_files": {"sixteen": "app.bin"}}', "'sixteen' is not a number"),
    ],
)
def test_bad_json_is_explained(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "flasher_args.json"
    path.write_text(content)
    with pytest.raises(InputError, match=words):
        flash_files_from_json(path)


def test_a_missing_image_is_named(tmp_path: Path) -> None:
    build = _build_folder(tmp_path, flash_files={"0x10000": "gone.bin"})
    with pytest.raises(InputError, match=r"gone\.bin does not exist"):
        BuildFolder.open(build).make_dfu()


def test_part_size_from_the_environment() -> None:
    assert part_size_from_env({}) == 512 * 1024
    assert part_size_from_env({"ESP_DFU_PART_SIZE": "0x1000"}) == 4096
    assert part_size_from_env({"ESP_DFU_PART_SIZE": "8192"}) == 8192
    with pytest.raises(InputError, match="ESP_DFU_PART_SIZE 'big' is not a number"):
        part_size_from_env({"ESP_DFU_PART_SIZE": "big"})


def test_pid_is_hexadecimal_as_in_esp_idf() -> None:
    assert parse_pid("2") == 2 and parse_pid("12") == 0x12 and parse_pid("0x9") == 9
    with pytest.raises(InputError):
        parse_pid("xyz")
    with pytest.raises(InputError):
        parse_pid("10000")
