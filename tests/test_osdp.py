"""OSDP readers: the pure parts, the key files, and the control panel against readers
simulated by libosdp's own peripheral-device side over a pseudo-terminal."""

from __future__ import annotations

import binascii
import queue
import stat
import time

import osdp_sys
import pytest

from haldor import cards, osdp_keys
from haldor.agent.messages import Stop
from haldor.drivers.base import CardRead, Keypad, PinRead, ReaderFault, ReaderRestored
from haldor.drivers.osdp_readers import OsdpBus, OsdpReaderSpec, Timings
from haldor.drivers.osdp_sim import SimulatedBus, SimulatedReader
from haldor.drivers.osdp_wire import ReplyWatch, card_from_event, diagnose, keys_of
from haldor.drivers.wiegand import encode_card

from .helpers import CARD, wait_for
from .rig import Rig, running

KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
OTHER_KEY = bytes.fromhex("F0E1D2C3B4A5968778695A4B3C2D1E0F")


# --- pure parts ----------------------------------------------------------------------------


def _raw(data: bytes, bits: int | None = None, fmt: int = osdp_sys.CARD_FMT_RAW_UNSPECIFIED) -> dict:
    return {"event": osdp_sys.EVENT_CARDREAD, "format": fmt, "length": bits if bits is not None else len(data) * 8, "data": data}


def _wiegand(bits: list[int], fmt: int = osdp_sys.CARD_FMT_RAW_WIEGAND) -> dict:
    value = int("".join(map(str, bits)), 2) << (-len(bits) % 8)
    return _raw(value.to_bytes((len(bits) + 7) // 8, "big"), len(bits), fmt)


def test_raw_reads_of_whole_uids_are_uids_in_the_configured_byte_order():
    assert card_from_event(_raw(bytes.fromhex("04A1B2C3D4E5F6"))) == "uid:04A1B2C3D4E5F6"
    assert card_from_event(_raw(bytes.fromhex("00A1B2C3"))) == "uid:00A1B2C3"  # the leading zero stays
    assert card_from_event(_raw(bytes.fromhex("C3B2A100")), "reversed") == "uid:00A1B2C3"


def test_wiegand_reads_must_pass_their_parity():
    assert card_from_event(_wiegand(encode_card(26, 8405024))) == "wg26:8405024"
    assert card_from_event(_wiegand(encode_card(37, 123456789), osdp_sys.CARD_FMT_RAW_UNSPECIFIED)) == "wg37:123456789"
    bad = encode_card(26, 8405024)
    bad[5] ^= 1
    with pytest.raises(cards.CardFormatError):
        card_from_event(_wiegand(bad))


def test_reads_that_are_no_card_are_refused():
    with pytest.raises(cards.CardFormatError):
        card_from_event(_raw(b"\x01\x02", 40))  # more bits announced than sent
    with pytest.raises(cards.CardFormatError):
        card_from_event(_raw(bytes(5)))  # 5 bytes: neither a UID nor a Wiegand frame
    assert card_from_event(_raw(b"em:0A0B0C0D0E", fmt=osdp_sys.CARD_FMT_ASCII)) == "em:0A0B0C0D0E"


def test_keypad_bytes_and_pins():
    assert keys_of(b"12*3\x7f4#\r") == ["1", "2", "*", "3", "*", "4", "#", "#"]
    pad = Keypad(timeout_s=10)
    assert [pad.key(k, 0.0) for k in "12*4821"] == [None] * 7
    assert pad.key("#", 1.0) == "4821"
    assert pad.key("#", 1.5) is None  # an empty entry is no PIN
    pad.key("9", 2.0)
    assert pad.key("#", 13.0) is None  # the half-typed 9 was forgotten


def test_diagnosis_names_the_likely_cause():
    where = "OSDP address 1 on /dev/x"
    assert diagnose(was_online=True, answered=True, offers_sc=True, where=where).startswith("stopped answering")
    assert diagnose(was_online=False, answered=False, offers_sc=False, where=where).startswith("not answering")
    assert "does not offer" in diagnose(was_online=False, answered=True, offers_sc=False, where=where)
    assert "has another key" in diagnose(was_online=False, answered=True, offers_sc=True, where=where)


def _packet(address: int, body: bytes = b"\x40", *, crc: bool = True, reply: bool = True) -> bytes:
    length = 5 + len(body) + (2 if crc else 1)
    head = bytes([0x53, address | (0x80 if reply else 0), length & 0xFF, length >> 8, 0x04 if crc else 0x00]) + body
    if crc:
        check = binascii.crc_hqx(head, 0x1D0F)
        return head + bytes([check & 0xFF, check >> 8])
    return head + bytes([-sum(head) & 0xFF])


def test_the_reply_watch_frames_packets_and_trusts_only_intact_ones():
    watch = ReplyWatch()
    stream = b"\xff\x53\x00" + _packet(1) + _packet(2, reply=False) + _packet(3, b"\x45\x53\x84\x01", crc=False)
    for i in range(0, len(stream), 3):  # in pieces, as a serial port delivers them
        watch.feed(stream[i : i + 3], 1.0)
    assert watch.last == {1: 1.0, 3: 1.0} and watch.packets == 3
    corrupt = bytearray(_packet(4))
    corrupt[5] ^= 0x01
    watch.feed(bytes(corrupt) + _packet(5), 2.0)
    assert 4 not in watch.last and watch.last[5] == 2.0


# --- key files ---------------------------------------------------------------------------


def test_key_files_must_be_private_and_well_formed(tmp_path):
    path = tmp_path / "r.key"
    path.write_text(KEY.hex() + "\n")
    path.chmod(0o644)
    with pytest.raises(osdp_keys.KeyFileError, match="chmod 600"):
        osdp_keys.read_key(path)
    path.chmod(0o600)
    assert osdp_keys.read_key(path) == KEY
    path.write_text("abc")
    with pytest.raises(osdp_keys.KeyFileError, match="32 hex digits"):
        osdp_keys.read_key(path)
    assert "no key file" in osdp_keys.check(str(tmp_path / "missing.key"), install_mode=False)
    assert osdp_keys.check(str(tmp_path / "missing.key"), install_mode=True) is None
    assert "does not exist" in osdp_keys.check(str(tmp_path / "no" / "r.key"), install_mode=True)


def test_a_new_key_is_random_private_and_never_written_over(tmp_path):
    path = tmp_path / "r.key"
    key = osdp_keys.create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and osdp_keys.read_key(path) == key
    assert osdp_keys.create_key(tmp_path / "s.key") != key
    with pytest.raises(FileExistsError):
        osdp_keys.create_key(path)


def test_the_install_record_remembers_which_key_a_reader_accepted(tmp_path):
    record = osdp_keys.InstallRecord(tmp_path / "osdp")
    assert record.keyed_at("main-in", KEY) is None
    record.mark("main-in", KEY)
    assert record.keyed_at("main-in", KEY)
    assert record.keyed_at("main-in", OTHER_KEY) is None and record.keyed_at("other", KEY) is None
    assert KEY.hex() not in (tmp_path / "osdp" / "main-in.keyed").read_text().lower()


# --- the control panel against simulated readers -------------------------------------------


#: a bus that says what is wrong within seconds (a real one waits for libosdp's 8 s)
FAST = Timings(sc_grace_s=1.5, offline_s=2.5, retry_min_s=0.5)
#: a link's retry_s once it was started again twice (it doubles at each restart)
TWO_RESTARTS = 4 * FAST.retry_min_s


class Panel:
    """An OsdpBus whose reads and faults land in a queue the test reads from."""

    def __init__(self, port: str, specs: list[OsdpReaderSpec], record=None) -> None:
        self.inbox: queue.Queue = queue.Queue()
        self.seen: list = []
        self.bus = OsdpBus(port, 115200, specs, self.inbox.put, record=record, timings=FAST)
        self.bus.start()

    def wait(self, match, timeout: float = 5.0, what: str = "reader message"):
        def found():
            while True:
                try:
                    self.seen.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            return [m for m in self.seen if match(m)]

        return wait_for(found, timeout=timeout, what=what)

    def close(self) -> None:
        self.bus.close()


@pytest.fixture
def panels():
    made: list[Panel] = []

    def make(port, specs, record=None) -> Panel:
        made.append(Panel(port, specs, record))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_cards_and_pins_arrive_over_secure_channel_and_feedback_goes_back(panels):
    with SimulatedBus([SimulatedReader(1, KEY)]) as sim:
        panel = panels(sim.port, [OsdpReaderSpec("main-in", 1, KEY)])
        wait_for(panel.bus.all_secure.is_set, what="Secure Channel up")
        reader = sim.reader(1)
        assert reader.secure
        reader.present_uid("04A1B2C3D4E5F6")
        reader.type_keys("48")
        reader.type_keys("21#")
        panel.wait(lambda m: isinstance(m, PinRead), what="PIN")
        assert [m for m in panel.seen if not isinstance(m, ReaderRestored)] == [
            CardRead("main-in", "uid:04A1B2C3D4E5F6"),
            PinRead("main-in", "4821"),
        ]
        panel.bus.indicator("main-in").denied()
        wait_for(lambda: len(reader.commands) == 2, what="LED and buzzer commands")
        led, buzzer = reader.commands
        assert led["command"] == osdp_sys.CMD_LED and led["on_color"] == osdp_sys.LED_COLOR_RED
        assert buzzer["command"] == osdp_sys.CMD_BUZZER and buzzer["rep_count"] == 3
        # the reply watch reads libosdp's real packets: the CRC and framing agree
        assert panel.bus.channel.watch.packets > 0 and 1 in panel.bus.channel.watch.last


def test_several_readers_share_one_bus_by_address(panels):
    with SimulatedBus([SimulatedReader(1, KEY), SimulatedReader(2, OTHER_KEY)]) as sim:
        panel = panels(sim.port, [OsdpReaderSpec("main-in", 1, KEY), OsdpReaderSpec("main-out", 2, OTHER_KEY)])
        wait_for(panel.bus.all_secure.is_set, what="both readers secure")
        sim.reader(2).present_uid("11223344")
        sim.reader(1).present_uid("55667788")
        reads = panel.wait(lambda m: isinstance(m, CardRead), what="both reads")
        wait_for(lambda: len(panel.wait(lambda m: isinstance(m, CardRead))) == 2, what="both reads")
        reads = panel.wait(lambda m: isinstance(m, CardRead))
        assert sorted(reads, key=lambda m: m.reader) == [
            CardRead("main-in", "uid:55667788"),
            CardRead("main-out", "uid:11223344"),
        ]


def test_a_reader_with_another_key_is_reported_and_never_read_in_clear(panels):
    with SimulatedBus([SimulatedReader(1, OTHER_KEY)]) as sim:
        panel = panels(sim.port, [OsdpReaderSpec("main-in", 1, KEY)])
        fault = panel.wait(lambda m: isinstance(m, ReaderFault), what="fault")
        assert "has another key" in fault[0].reason
        assert not sim.reader(1).secure and not panel.bus.pds["main-in"].online
        sim.reader(1).present_uid("04A1B2C3D4E5F6")
        # the panel keeps refusing the reader: its link restarted twice, the read never delivered,
        # and the same fault is not repeated
        wait_for(lambda: panel.bus.pds["main-in"].retry_s >= TWO_RESTARTS, timeout=15, what="two restarts of the link")
        panel.wait(lambda m: isinstance(m, ReaderFault))
        assert not any(isinstance(m, CardRead) for m in panel.seen)
        assert sum(isinstance(m, ReaderFault) for m in panel.seen) == 1


def test_a_reader_that_ignores_secure_channel_is_reported(panels):
    with SimulatedBus([SimulatedReader(1, KEY, offers_sc=False)]) as sim:
        panel = panels(sim.port, [OsdpReaderSpec("main-in", 1, KEY)])
        fault = panel.wait(lambda m: isinstance(m, ReaderFault), timeout=15, what="fault")
        assert "does not do Secure Channel" in fault[0].reason


def test_a_reader_that_refuses_secure_channel_in_install_mode_is_not_used_in_clear(panels, tmp_path):
    with SimulatedBus([SimulatedReader(1, None, offers_sc=False)]) as sim:
        panel = panels(sim.port, [OsdpReaderSpec("main-in", 1, KEY, install_mode=True)], osdp_keys.InstallRecord(tmp_path))
        panel.wait(lambda m: isinstance(m, ReaderFault) and "refuses OSDP Secure Channel" in m.reason, timeout=25, what="fault")
        assert panel.bus.pds["main-in"].online  # it answers, in clear
        sim.reader(1).present_uid("04A1B2C3D4E5F6")
        wait_for(lambda: panel.bus.stats("main-in").garbled == 1, what="read dropped")
        assert not any(isinstance(m, CardRead) for m in panel.seen)


def test_install_mode_gives_a_new_reader_its_key_and_then_ends_for_good(panels, tmp_path):
    record = osdp_keys.InstallRecord(tmp_path / "osdp")
    with SimulatedBus([SimulatedReader(1, None)]) as sim:
        panel = panels(sim.port, [OsdpReaderSpec("main-in", 1, KEY, install_mode=True)], record)
        wait_for(panel.bus.all_secure.is_set, what="Secure Channel with the new key")
        assert sim.reader(1).key == KEY and record.keyed_at("main-in", KEY)
        assert not panel.bus.pds["main-in"].install_mode
        sim.reader(1).present_uid("04A1B2C3D4E5F6")
        panel.wait(lambda m: isinstance(m, CardRead), what="read over the new key")
        assert not any(isinstance(m, ReaderFault) for m in panel.seen)
        # a factory-new reader swapped in afterwards is refused: install mode is over
        sim.replace(SimulatedReader(1, None))
        panel.wait(lambda m: isinstance(m, ReaderFault), timeout=12, what="swapped reader refused")
        # the link is restarted twice (after retry_min_s, then twice that): still no key for the newcomer
        wait_for(lambda: panel.bus.pds["main-in"].retry_s >= TWO_RESTARTS, timeout=15, what="two restarts of the link")
        assert sim.reader(1).key is None and not sim.reader(1).secure


def test_tamper_and_a_silent_reader_become_faults_that_clear(panels):
    with SimulatedBus([SimulatedReader(1, KEY)]) as sim:
        panel = panels(sim.port, [OsdpReaderSpec("main-in", 1, KEY)])
        wait_for(panel.bus.all_secure.is_set, what="Secure Channel up")
        sim.reader(1).tamper(True)
        assert "tamper" in panel.wait(lambda m: isinstance(m, ReaderFault), what="tamper")[0].reason
        sim.reader(1).tamper(False)
        panel.wait(lambda m: isinstance(m, ReaderRestored), what="tamper cleared")
        panel.seen.clear()
        sim.reader(1).silent = True  # the cable is cut
        fault = panel.wait(lambda m: isinstance(m, ReaderFault), what="silence noticed before libosdp gives up (8 s)")
        assert fault[0].reason.startswith("stopped answering")
        sim.reader(1).silent = False
        panel.wait(lambda m: isinstance(m, ReaderRestored), timeout=15, what="reader back")


def test_a_reader_that_never_answers_is_reported(panels):
    with SimulatedBus([]) as sim:
        panel = panels(sim.port, [OsdpReaderSpec("main-in", 7, KEY)])
        fault = panel.wait(lambda m: isinstance(m, ReaderFault), timeout=15, what="fault")
        assert fault[0].reason.startswith("not answering (OSDP address 7")


def test_a_missing_port_is_reported(panels):
    panel = panels("/dev/does-not-exist", [OsdpReaderSpec("main-in", 1, KEY)])
    fault = panel.wait(lambda m: isinstance(m, ReaderFault), what="fault")
    assert "does-not-exist" in fault[0].reason


# --- through the whole agent ---------------------------------------------------------------


def _osdp_site(tmp_path, port: str, key_file, *, install_mode: bool = False):

    return Rig(
        tmp_path,
        reader=False,
        readers=f"""
[[readers]]
id = "main-in"
type = "osdp"
door = "main"
port = "{port}"
baudrate = 115200
address = 1
scbk_file = "{key_file}"
install_mode = {str(install_mode).lower()}
""",
    )


def _key_file(path, key: bytes = KEY):
    path.write_text(key.hex())
    path.chmod(0o600)
    return path


def test_an_osdp_card_opens_the_door_and_the_reader_shows_the_answer(tmp_path):

    with SimulatedBus([SimulatedReader(1, KEY)]) as sim:
        rig = _osdp_site(tmp_path, sim.port, _key_file(tmp_path / "main-in.key"))
        agent = rig.agent()
        thread = running(agent)
        try:
            wait_for(agent.hw.readers[0].all_secure.is_set, what="Secure Channel up")
            reader = sim.reader(1)
            reader.present_uid(CARD.removeprefix("uid:"))
            wait_for(lambda: rig.pin(17).state, what="lock pin active")
            granted = wait_for(lambda: rig.events("access.granted"), what="granted event")
            assert granted[0]["reader"] == "main-in" and granted[0]["credential"] == "c1001"
            wait_for(lambda: [c for c in reader.commands if c.get("on_color") == osdp_sys.LED_COLOR_GREEN], what="green LED")
            reader.present_uid("DEADBEEF")
            denied = wait_for(lambda: rig.events("access.denied"), what="denied event")
            assert denied[0]["reason"] == "unknown_card"
            wait_for(lambda: [c for c in reader.commands if c.get("on_color") == osdp_sys.LED_COLOR_RED], what="red LED")

            reader.tamper(True)
            fault = wait_for(lambda: rig.events("reader.fault"), what="reader.fault event")
            assert fault[0]["reader"] == "main-in" and "tamper" in fault[0]["reason"]
            wait_for(lambda: not agent.net.status.readers()["main-in"]["ok"], what="fault in the status")
            assert "tamper" in agent.net.status.readers()["main-in"]["fault"]
            reader.tamper(False)
            wait_for(lambda: agent.net.status.readers()["main-in"] == {"ok": True, "fault": None}, what="fault cleared")
        finally:
            agent.post(Stop())
            thread.join(5)
        assert not thread.is_alive() and not thread.errors
        assert agent.net.status.document(time.time())["readers"] == {"main-in": {"ok": True, "fault": None}}
        rig.close()


def test_install_mode_through_the_agent_writes_a_key_and_ends_for_good(tmp_path, caplog):

    key_file = tmp_path / "keys" / "main-in.key"
    key_file.parent.mkdir()
    with SimulatedBus([SimulatedReader(1, None)]) as sim:
        rig = _osdp_site(tmp_path, sim.port, key_file, install_mode=True)
        try:
            agent = rig.agent()
            thread = running(agent)
            try:
                assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
                wait_for(agent.hw.readers[0].all_secure.is_set, what="the reader works with its new key")
                assert sim.reader(1).key == osdp_keys.read_key(key_file)
                assert "install mode ended" in caplog.text
            finally:
                agent.post(Stop())
                thread.join(5)
            # the configuration still says install_mode, but that reader has its key: a swapped-in new one is refused
            sim.replace(SimulatedReader(1, None))
            caplog.clear()
            agent = rig.agent()
            thread = running(agent)
            try:
                assert "install_mode ignored" in caplog.text
                fault = wait_for(lambda: rig.events("reader.fault"), timeout=12, what="the newcomer is refused")
                assert "has another key" in fault[-1]["reason"] and sim.reader(1).key is None
            finally:
                agent.post(Stop())
                thread.join(5)
        finally:
            rig.close()
