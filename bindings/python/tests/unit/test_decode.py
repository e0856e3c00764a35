"""Offline decoding of ring-buffer records built per include/retina/abi/events.h."""
import random
import struct
import time

import pytest

import retina
from retina import records

L = retina._retina.ABI_LAYOUTS


def test_record_builders_match_the_abi():
    assert records.PACKET_SIZE == L["retina_packet_event"]["size"] == 128
    assert records.DROP_SIZE == L["retina_drop_event"]["size"] == 88
    assert records.DNS_FIXED_SIZE == L["retina_dns_event"]["payload"] == 72
    assert records.TCPRETRANS_SIZE == L["retina_tcpretrans_event"]["size"] == 72
    r = records.packet("10.0.0.1", "10.0.0.2", sport=1, dport=2, bytes=0x11223344, prev_bytes=7,
                       tcp_id=0x55667788, ifindex=9, ts_ns=0x0102030405060708)
    p = L["retina_packet_event"]
    assert struct.unpack_from("<I", r, p["bytes"])[0] == 0x11223344
    assert struct.unpack_from("<Q", r, p["prev_bytes"])[0] == 7
    assert struct.unpack_from("<I", r, p["tcp_id"])[0] == 0x55667788
    assert struct.unpack_from("<I", r, p["ifindex"])[0] == 9
    assert struct.unpack_from("<Q", r, L["retina_event_hdr"]["ts_ns"])[0] == 0x0102030405060708
    t = p["tuple"]
    assert r[t:t + 16] == b"\0" * 10 + b"\xff\xff" + bytes([10, 0, 0, 1])
    assert struct.unpack_from("<HH", r, t + L["retina_tuple"]["sport"]) == (1, 2)


def test_packet_record_decodes_to_hubble_fields():
    rec = records.packet("10.0.0.5", "10.0.0.9", sport=40000, dport=80, proto="tcp", bytes=100,
                         tcp_flags="SYN|ACK", obs_point=records.OBS_FROM_ENDPOINT, ifindex=7,
                         flags=records.PKT_F_CT_REPORT | records.PKT_F_REPLY,
                         report_reason=records.REPORT_INTERVAL, prev_packets=3, prev_bytes=300,
                         prev_flag_counts={"ACK": 3, "PSH": 1}, tcp_id=42, ts_ns=1_000_000_123)
    f = retina.decode(rec, boot_offset_ns=1_700_000_000_000_000_000)
    assert isinstance(f, retina.Flow)
    assert f.time_ns == 1_700_000_001_000_000_123
    assert str(f.time) == "2023-11-14T22:13:21.000000123"
    assert (f.verdict, f.origin, f.ip_version, f.proto) == ("FORWARDED", "packetparser", "IPv4", "TCP")
    assert (f.src_ip, f.dst_ip, f.src_port, f.dst_port) == ("10.0.0.5", "10.0.0.9", 40000, 80)
    assert f.tcp_flags == "SYN|ACK" and f.tcp_flag_bits == 0x12
    assert f.trace_observation_point == f.observation_point == "TO_STACK"
    assert f.traffic_direction == f.direction == "EGRESS"
    assert f.is_reply is True
    assert (f.event_type, f.event_sub_type, f.ifindex) == (4, 3, 7)
    assert (f.packets, f.bytes, f.packet_bytes, f.prev_packets, f.prev_bytes) == (4, 400, 100, 3, 300)
    assert f.prev_flag_counts == {"FIN": 0, "SYN": 0, "RST": 0, "PSH": 1, "ACK": 3, "URG": 0, "ECE": 0,
                                  "CWR": 0, "NS": 0}
    assert f.tcp_id == 42
    assert f.dns is None and f.source is None and f.destination is None
    assert f.drop_reason == "" and f.l7_type == "UNKNOWN_L7_TYPE"
    assert repr(f) == "Flow(FORWARDED TCP 10.0.0.5:40000 -> 10.0.0.9:80 EGRESS TO_STACK packets=4 bytes=400)"


@pytest.mark.parametrize("obs,point,direction,sub_type", [
    (records.OBS_FROM_ENDPOINT, "TO_STACK", "EGRESS", 3),
    (records.OBS_TO_ENDPOINT, "TO_ENDPOINT", "INGRESS", 0),
    (records.OBS_FROM_NETWORK, "FROM_NETWORK", "INGRESS", 10),
    (records.OBS_TO_NETWORK, "TO_NETWORK", "EGRESS", 11),
])
def test_observation_points_follow_retina(obs, point, direction, sub_type):
    f = retina.decode(records.packet("10.0.0.1", "10.0.0.2", proto="udp", obs_point=obs), boot_offset_ns=0)
    assert (f.observation_point, f.direction, f.event_sub_type) == (point, direction, sub_type)


def test_direction_unknown_and_no_packet_flush():
    f = retina.decode(records.packet("fd00::1", "fd00::2", proto="udp", sport=5, dport=6,
                                     flags=records.PKT_F_CT_REPORT | records.PKT_F_DIR_UNKNOWN |
                                     records.PKT_F_NO_PACKET,
                                     bytes=999, prev_packets=2, prev_bytes=2000), boot_offset_ns=0)
    assert f.ip_version == "IPv6" and f.src_ip == "fd00::1"
    assert f.is_reply is None
    assert (f.packets, f.bytes) == (2, 2000)
    assert f.tcp_flags == ""  # UDP carries none


def test_drop_record():
    f = retina.decode(records.drop("10.1.0.1", "10.1.0.2", sport=1234, dport=443, proto="tcp", bytes=60,
                                   reason=6, direction=1, suppressed=5, ifindex=3), boot_offset_ns=0)
    assert (f.verdict, f.origin, f.direction) == ("DROPPED", "dropreason", "INGRESS")
    assert f.drop_reason == f.drop_reason_desc == "UNKNOWN"  # no kernel names offline
    assert (f.drop_reason_code, f.suppressed, f.bytes, f.packets, f.event_type) == (6, 5, 60, 1, 1)
    nonip = retina.decode(records.drop(bytes=42, reason=2), boot_offset_ns=0)
    assert nonip.ip_version == "IP_NOT_USED" and nonip.src_ip == "" and nonip.proto == ""


def test_dns_record():
    msg = records.dns_message("example.com", qtype="A", id=7, response=True, answers=["93.184.216.34", "1.2.3.4"])
    f = retina.decode(records.dns("10.0.0.10", "10.0.0.5", msg, sport=53, dport=40000,
                                  obs_point=records.OBS_TO_ENDPOINT), boot_offset_ns=0)
    assert (f.verdict, f.origin, f.l7_type, f.is_reply, f.event_type) == ("DNS", "dns", "RESPONSE", True, 129)
    assert f.dns == {"query": "example.com.", "id": 7, "qtype": "A", "qtypes": ("A",), "rcode": "NOERROR",
                     "rcode_code": 0, "answer_count": 2, "is_response": True,
                     "ips": ["93.184.216.34", "1.2.3.4"]}
    q = retina.decode(records.dns("10.0.0.5", "10.0.0.10", records.dns_message("x.test", qtype="AAAA"),
                                  sport=40000, full=True), boot_offset_ns=0)
    assert (q.l7_type, q.is_reply, q.dns["qtype"], q.dns["ips"]) == ("REQUEST", False, "AAAA", [])
    nx = retina.decode(records.dns("10.0.0.10", "10.0.0.5", records.dns_message("no.test", response=True, rcode=3),
                                   sport=53), boot_offset_ns=0)
    assert nx.dns["rcode"] == "NXDOMAIN"


def test_tcpretrans_record():
    f = retina.decode(records.tcpretrans("10.0.0.1", "10.0.0.2", sport=5000, dport=80, state=1,
                                         tcp_flags="PSH|ACK"), boot_offset_ns=0)
    assert (f.verdict, f.origin, f.tcp_flags, f.tcp_state, f.proto) == ("RETRANSMISSION", "tcpretrans",
                                                                        "PSH|ACK", 1, "TCP")


def test_default_boot_offset_gives_wall_clock_time():
    with open("/proc/uptime") as fh:
        up = float(fh.read().split()[0])  # CLOCK_BOOTTIME seconds, near enough
    f = retina.decode(records.packet("10.0.0.1", "10.0.0.2", ts_ns=int(up * 1e9)))
    assert abs(f.time_ns / 1e9 - time.time()) < 5


@pytest.mark.parametrize("data,reason", [
    (b"", "too_short"),
    (b"\x01\x00\x01\x00" + b"\0" * 8, "too_short"),
    (records.packet("10.0.0.1", "10.0.0.2")[:100], "length_mismatch"),
    (struct.pack("<HBxHxxQ", 9, 1, 16, 0), "unknown_type"),
    (struct.pack("<HBxHxxQ", 1, 2, 16, 0), "unsupported_version"),
    (struct.pack("<HBxHxxQ", 1, 1, 16, 0), "too_short"),
])
def test_bad_records_raise_decode_error(data, reason):
    with pytest.raises(retina.DecodeError) as e:
        retina.decode(data, boot_offset_ns=0)
    assert e.value.reason == reason
    assert isinstance(e.value, ValueError)
    assert str(e.value) == f"decode: {reason}"


def test_bad_fields_raise():
    rec = bytearray(records.packet("10.0.0.1", "10.0.0.2"))
    rec[L["retina_packet_event"]["obs_point"]] = 9
    with pytest.raises(retina.DecodeError, match="bad_field"):
        retina.decode(bytes(rec), boot_offset_ns=0)
    dns = bytearray(records.dns("10.0.0.1", "10.0.0.2", b"\x00" * 5))
    with pytest.raises(retina.DecodeError, match="dns_malformed"):
        retina.decode(bytes(dns), boot_offset_ns=0)


def test_decode_accepts_any_buffer():
    rec = records.packet("10.0.0.1", "10.0.0.2", proto="udp")
    assert retina.decode(bytearray(rec), boot_offset_ns=0).proto == "UDP"
    assert retina.decode(memoryview(rec), boot_offset_ns=0).proto == "UDP"
    with pytest.raises(TypeError):
        retina.decode("not bytes")


def _corpus():
    msg = records.dns_message("a.b.example", answers=["1.1.1.1"], response=True)
    return [records.packet("10.0.0.1", "10.0.0.2"), records.drop("fd00::1", "fd00::2"),
            records.dns("10.0.0.1", "10.0.0.2", msg), records.tcpretrans("10.0.0.1", "10.0.0.2")]


def test_random_bytes_never_crash_decode():
    rng = random.Random(1234)
    corpus = _corpus()
    ok = bad = 0
    for i in range(20000):
        if i % 2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 700)))
        else:
            data = bytearray(rng.choice(corpus))
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data[: rng.randrange(0, len(data) + 1)] if rng.random() < 0.3 else data)
        try:
            f = retina.decode(data, boot_offset_ns=0)
        except retina.DecodeError as e:
            assert e.reason in {"too_short", "length_mismatch", "unknown_type", "unsupported_version",
                                "bad_field", "dns_malformed"}
            bad += 1
        else:
            f.to_dict()
            f.to_json()
            repr(f)
            ok += 1
    assert ok > 0 and bad > 0


def test_random_buffers_never_crash_decode_many():
    rng = random.Random(99)
    corpus = _corpus()
    for _ in range(2000):
        parts = [rng.choice(corpus) for _ in range(rng.randrange(0, 5))]
        data = bytearray(b"".join(parts))
        for _ in range(rng.randrange(0, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.getrandbits(8)
        for errors in ("raise", "skip"):
            try:
                df = retina.decode_many(bytes(data), boot_offset_ns=0, errors=errors)
            except retina.DecodeError:
                continue
            assert list(df.columns) == list(retina.COLUMNS)


def test_batch_records_decode_as_the_records_they_hold():
    pkts = [records.packet("10.0.0.5", "10.0.0.9", sport=40000 + i, dport=80, bytes=100 + i, ts_ns=i)
            for i in range(5)]
    buf = records.concat([records.batch(pkts[:3]), pkts[3], records.batch(pkts[4:])], align=8)
    df = retina.decode_many(buf, boot_offset_ns=0)
    assert len(df) == 5
    assert list(df["src_port"]) == [40000 + i for i in range(5)]
    assert list(df["bytes"]) == [100 + i for i in range(5)]
    # A list item may be a batch too.
    assert len(retina.decode_many([records.batch(pkts)], boot_offset_ns=0)) == 5
    # A batch whose framing is bad is one reject, with its reason.
    bad = bytearray(records.batch(pkts[:2]))
    bad[16:18] = struct.pack("<H", 0)  # count 0
    with pytest.raises(retina.DecodeError, match="bad_field"):
        retina.decode_many(bytes(bad), boot_offset_ns=0)
    with pytest.raises(ValueError):
        records.batch([])
