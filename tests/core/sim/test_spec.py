"""Spec strings as users type them, and what they are told when one is wrong."""

from __future__ import annotations

import pytest
import usb.core

from espdfu.errors import InputError
from espdfu.sim import BoardKind, Fault, SimBackend, SimBus, TimeModel, parse_spec
from espdfu.sim.spec import BoardSpec, parse_boards
from espdfu.usb.protocol import Request, State, Status
from tests.helpers.simhost import Host, device_at, devices, image, payload_of


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
        ("esp32s2:pull@50%", "'50%' after '@' is not a byte of the download"),
        ("esp32s2:pull@", "'' after '@' is not a byte"),
        ("esp32s2:pull@1G", "'1G' after '@' is not a byte"),
        ("esp32s2:yank@100", "'yank' is not a fault"),
        ("esp32s2:pull=1@100", "'pull=1' is not a fault"),
        ("esp32s2:status=errBOGUS@100", "'errBOGUS' is not a DFU error status: one of errTARGET"),
        ("esp32s2:status=ok@100", "'ok' is not a DFU error status"),
        ("esp32s2:slowerase=fast", "slowerase takes the erase time of one 4 KiB sector in ms"),
        ("esp32s2:slowerase=10001", "from 0 to 10000, not '10001'"),
        ("esp32s2:slowerase", "'slowerase' is not a fault or a setting"),
        ("esp32s2:", "'' is not a fault or a setting"),
        ("esp32s2:dnbusy=1", "'dnbusy=1' is not a fault or a setting"),
        ("esp32s2-app:panic:refuse", "'panic' and 'refuse' are two firmwares: a board runs one"),
        ("esp32s2-app:idf", "'idf' is not a fault or a setting"),
        ("esp32s2-app:quiet=1", "'quiet=1' is not a fault or a setting"),
    ],
)
def test_a_bad_spec_says_what_is_wrong_and_the_valid_forms(spec: str, says: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_spec(spec)
    assert says in refused.value.message
    assert "CHIP[-KIND][*COUNT]" in refused.value.hint
    assert "esp32s2, esp32s3" in refused.value.hint
    assert "pull@BYTE" in refused.value.hint and "slowerase=MS" in refused.value.hint


def test_each_firmware_has_its_word_read_after_the_board_and_listed_in_the_forms() -> None:
    words = ("panic-once", "panic", "bootassert", "refuse", "blank", "brownout", "arduino", "quiet")
    for word in words:
        (board,) = parse_boards(f"esp32s2-app:{word.upper()}:chatty")
        assert board.settings == {"app": word, "chatty": True}
        assert board.board().app == word
    with pytest.raises(InputError) as refused:
        parse_spec("esp32s2:nope")
    assert all(f"{word} (" in refused.value.hint for word in words)


def test_128_boards_are_allowed() -> None:
    assert len(parse_spec("esp32s2*64,esp32s3*64")) == 128


def test_faults_and_settings_are_typed_after_the_board() -> None:
    """A byte of the download becomes the DNLOAD that carries it (64-byte blocks), as faults
    fire at the nth request of a kind."""
    spec = (
        "esp32s2*2:pull@100000, ESP32-S3-dfu:Status=errVERIFY@4K:stall@1m:timeout@0:busy@64,"
        "esp32s2:slowerase=200:dnbusy:manifest"
    )
    pulled = BoardSpec("esp32s2", BoardKind.ROM, (Fault("unplug", Request.DNLOAD, 1563),))
    assert parse_boards(spec) == [
        pulled,
        pulled,
        BoardSpec(
            "esp32s3",
            BoardKind.DFU,
            (
                Fault("status", Request.DNLOAD, 65, Status.VERIFY),
                Fault("stall", Request.DNLOAD, 16385),
                Fault("timeout", Request.DNLOAD, 1),
                Fault("busy", Request.DNLOAD, 2),
            ),
        ),
        BoardSpec(
            "esp32s2",
            settings={"erase_ms_per_sector": 200.0, "erase_busy": True, "manifest_poll": True},
        ),
    ]
    assert parse_spec(spec)[2] == ("esp32s3", BoardKind.DFU)


def test_each_board_of_a_term_gets_its_own_faults() -> None:
    bus = SimBus.from_spec("esp32s2-dfu*2:pull@0", time=TimeModel.instant())
    first, second = bus.boards.values()
    with pytest.raises(usb.core.USBError):  # the cable pulled at the first block
        Host(device_at(SimBackend(bus), first.path)).dnload(0, b"x" * 64)
    assert not first.present and first.faults == []
    assert second.present and second.faults == [Fault("unplug", Request.DNLOAD, 1)]


def test_slowerase_sets_one_boards_erase_time() -> None:
    """Seen as the poll timeout of the first erase (reported as dfuDNBUSY): ten times the
    erase time per sector, ten times the wait."""
    model = TimeModel.scaled(0.01)
    bus = SimBus.from_spec(
        "esp32s2-dfu:dnbusy:slowerase=1000,esp32s2-dfu:dnbusy:slowerase=100", time=model
    )
    payload = payload_of(image()[0])
    waits = []
    for path in bus.boards:
        host = Host(device_at(SimBackend(bus), path))
        replies = host.send(payload[: 64 * 40])
        waits.append(next(r.poll_timeout_ms for r in replies if r.state is State.DNBUSY))
    slow, normal = waits
    assert normal > 0 and slow == 10 * normal
