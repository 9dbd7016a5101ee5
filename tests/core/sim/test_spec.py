"""Spec strings as users type them, and what they are told when one is wrong."""

from __future__ import annotations

import pytest

from espdfu.errors import InputError
from espdfu.sim import BoardKind, SimBackend, SimBus, TimeModel, parse_spec

from .host import devices


def test_every_form() -> None:
    spec = (
        "esp32s2*3, esp32s3,esp32s3-jtag ,esp32s2-app,ESP32-S2-dfu,esp32-s3-noaccess*2,esp32s2-rom"
    )
    assert parse_spec(spec) == [
        ("esp32s2", BoardKind.ROM),
        ("esp32s2", BoardKind.ROM),
        ("esp32s2", BoardKind.ROM),
        ("esp32s3", BoardKind.ROM),
        ("esp32s3", BoardKind.JTAG),
        ("esp32s2", BoardKind.APP),
        ("esp32s2", BoardKind.DFU),
        ("esp32s3", BoardKind.NO_ACCESS),
        ("esp32s3", BoardKind.NO_ACCESS),
        ("esp32s2", BoardKind.ROM),
    ]


def test_a_bus_from_a_spec_has_those_boards_in_order() -> None:
    bus = SimBus.from_spec("esp32s2*2,esp32s3-jtag", time=TimeModel.instant())
    assert [d.idProduct for d in devices(bus)] == [0x0002, 0x0002, 0x1001]
    assert [(b.chip.name, b.kind) for b in bus.boards.values()] == [
        ("esp32s2", BoardKind.ROM),
        ("esp32s2", BoardKind.ROM),
        ("esp32s3", BoardKind.JTAG),
    ]
    assert isinstance(SimBackend(bus).bus, SimBus)


def test_the_windows_driver_kinds_are_spelled_and_listed_in_the_forms() -> None:
    assert parse_spec("esp32s2-nodriver,ESP32-S3-NoDfuDriver") == [
        ("esp32s2", BoardKind.NO_DRIVER),
        ("esp32s3", BoardKind.NO_DFU_DRIVER),
    ]
    with pytest.raises(InputError) as refused:
        parse_spec("esp32s2-winusb")
    assert "nodriver, nodfudriver" in refused.value.hint


def test_the_default_time_is_realistic() -> None:
    assert SimBus.from_spec("esp32s2").time == TimeModel.realistic()


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("esp32s2,", "empty term"),
        ("esp32s2,,esp32s3", "empty term"),
        ("esp32", "'esp32' is not a chip with USB DFU"),
        ("esp32c3", "'esp32c3' is not a chip"),
        ("esp32s2-usb", "'usb' is not a board kind"),
        ("esp32s2-jtag", "jtag kind is for esp32s3 only"),
        ("esp32s2*0", "from 1 to 64"),
        ("esp32s2*65", "from 1 to 64"),
        ("esp32s2*x", "from 1 to 64"),
        ("esp32s2*-1", "from 1 to 64"),
        ("esp32s2*²", "from 1 to 64"),
        ("esp32s2*64,esp32s3*64,esp32s2", "more than 128 boards"),
    ],
)
def test_a_bad_spec_says_what_is_wrong_and_the_valid_forms(spec: str, says: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_spec(spec)
    assert says in refused.value.message
    assert "CHIP[-KIND][*COUNT]" in refused.value.hint
    assert "esp32s2, esp32s3" in refused.value.hint


def test_128_boards_are_allowed() -> None:
    assert len(parse_spec("esp32s2*64,esp32s3*64")) == 128
