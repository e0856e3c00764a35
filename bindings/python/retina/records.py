"""Builders for ring-buffer records, laid out as include/retina/abi/events.h
says, for tests, demos and replaying captured traffic.

    rec = records.packet("10.0.0.5", "10.0.0.9", sport=40000, dport=80,
                         proto="tcp", tcp_flags="SYN", bytes=74)
    flow = retina.decode(rec, boot_offset_ns=0)

Addresses are text (or ipaddress objects); IPv4 is stored IPv4-mapped, as
the kernel writes it. Ports are host order. ``ts_ns`` is CLOCK_BOOTTIME.
"""
from __future__ import annotations

import ipaddress
import struct
from typing import Iterable, Sequence

from . import _retina

# enum retina_event_type
EV_PACKET = 1
EV_DROP = 2
EV_DNS = 3
EV_TCPRETRANS = 4
EV_BATCH = 5
BATCH_HDR_SIZE = 24

# enum retina_obs_point
OBS_FROM_ENDPOINT = 0
OBS_TO_ENDPOINT = 1
OBS_FROM_NETWORK = 2
OBS_TO_NETWORK = 3
OBS_KERNEL = 4

# packet event flags
PKT_F_REPLY = 0x01
PKT_F_CT_REPORT = 0x02
PKT_F_NO_PACKET = 0x04
PKT_F_DIR_UNKNOWN = 0x08

# enum retina_report_reason
REPORT_PACKET = 0
REPORT_NEW = 1
REPORT_FLAGS = 2
REPORT_INTERVAL = 3
REPORT_TIMEOUT = 4
REPORT_MAP_FULL = 5

TCP_FLAGS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10,
             "URG": 0x20, "ECE": 0x40, "CWR": 0x80, "NS": 0x100}
PROTOS = {"icmp": 1, "icmpv4": 1, "tcp": 6, "udp": 17, "icmpv6": 58}
DNS_QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
              "AAAA": 28, "SRV": 33, "HTTPS": 65, "ANY": 255}

_HDR = struct.Struct("<HBxHxxQ")          # type, version, len, ts_ns
_TUPLE = struct.Struct("<16s16sHHBBxx")   # saddr, daddr, sport, dport, proto, family
_PACKET = struct.Struct("<IIBBHB3xIIQ9I4x")
_DROP = struct.Struct("<IIIB3xI4xQ")
_DNS = struct.Struct("<IBxHI4x")
_RETRANS = struct.Struct("<BxHIH6x")

PACKET_SIZE = _HDR.size + _TUPLE.size + _PACKET.size
DROP_SIZE = _HDR.size + _TUPLE.size + _DROP.size
DNS_FIXED_SIZE = _HDR.size + _TUPLE.size + _DNS.size
TCPRETRANS_SIZE = _HDR.size + _TUPLE.size + _RETRANS.size
DNS_MAX_PAYLOAD = _retina.DNS_MAX_PAYLOAD


def _addr(a) -> tuple[bytes, int]:
    ip = ipaddress.ip_address(str(a))
    if ip.version == 4:
        return b"\0" * 10 + b"\xff\xff" + ip.packed, 4
    return ip.packed, 6


def _proto(p) -> int:
    if isinstance(p, int):
        return p
    try:
        return PROTOS[str(p).lower()]
    except KeyError:
        raise ValueError(f"proto: {p!r} is not one of tcp, udp, icmp, icmpv6 or a number") from None


def tcp_flag_bits(flags) -> int:
    """"SYN|ACK", ["SYN", "ACK"] or an int -> RETINA_TCP_* bits."""
    if isinstance(flags, int):
        return flags
    if isinstance(flags, str):
        flags = [f for f in flags.replace(",", "|").split("|") if f]
    bits = 0
    for f in flags:
        try:
            bits |= TCP_FLAGS[f.strip().upper()]
        except KeyError:
            raise ValueError(f"tcp_flags: unknown flag {f!r}") from None
    return bits


def _tuple(src, dst, sport, dport, proto) -> bytes:
    if src is None and dst is None:
        return _TUPLE.pack(b"\0" * 16, b"\0" * 16, 0, 0, 0, 0)
    s, fam = _addr(src)
    d, fam_d = _addr(dst)
    if fam != fam_d:
        raise ValueError("src and dst must both be IPv4 or both IPv6")
    return _TUPLE.pack(s, d, sport, dport, _proto(proto), fam)


def _hdr(type_: int, length: int, ts_ns: int, version: int = 1) -> bytes:
    return _HDR.pack(type_, version, length, ts_ns)


def packet(src, dst, *, sport: int = 0, dport: int = 0, proto="tcp", bytes: int = 0,
           obs_point: int = OBS_FROM_ENDPOINT, ifindex: int = 0, flags: int = 0, tcp_flags=0,
           report_reason: int = REPORT_PACKET, prev_packets: int = 0, prev_bytes: int = 0,
           prev_flag_counts: Sequence[int] | dict | None = None, tcp_id: int = 0,
           ts_ns: int = 0) -> bytes:
    """A struct retina_packet_event (128 bytes)."""
    counts = [0] * 9
    if isinstance(prev_flag_counts, dict):
        names = list(TCP_FLAGS)
        for k, v in prev_flag_counts.items():
            counts[names.index(k.upper())] = v
    elif prev_flag_counts is not None:
        counts = list(prev_flag_counts) + [0] * (9 - len(prev_flag_counts))
    body = _PACKET.pack(ifindex, bytes, obs_point, flags, tcp_flag_bits(tcp_flags), report_reason,
                        prev_packets, tcp_id, prev_bytes, *counts)
    return _hdr(EV_PACKET, PACKET_SIZE, ts_ns) + _tuple(src, dst, sport, dport, proto) + body


def drop(src=None, dst=None, *, sport: int = 0, dport: int = 0, proto="tcp", bytes: int = 0,
         reason: int = 0, direction: int = 0, ifindex: int = 0, suppressed: int = 0,
         location: int = 0, ts_ns: int = 0) -> bytes:
    """A struct retina_drop_event (88 bytes); src=dst=None for a non-IP packet."""
    body = _DROP.pack(ifindex, bytes, reason, direction, suppressed, location)
    return _hdr(EV_DROP, DROP_SIZE, ts_ns) + _tuple(src, dst, sport, dport, proto) + body


def dns(src, dst, message: bytes, *, sport: int = 0, dport: int = 53, proto="udp",
        obs_point: int = OBS_FROM_ENDPOINT, ifindex: int = 0, wire_len: int | None = None,
        full: bool = False, ts_ns: int = 0) -> bytes:
    """A struct retina_dns_event carrying `message` (at most 512 bytes).

    The record ends after the message, as the decoder allows; full=True
    pads it to the whole struct (584 bytes) as the kernel reserves it.
    """
    if len(message) > DNS_MAX_PAYLOAD:
        raise ValueError(f"message: {len(message)} bytes is more than {DNS_MAX_PAYLOAD}")
    wire = len(message) if wire_len is None else wire_len
    payload = message + (b"\0" * (DNS_MAX_PAYLOAD - len(message)) if full else b"")
    length = DNS_FIXED_SIZE + len(payload)
    body = _DNS.pack(ifindex, obs_point, len(message), wire)
    return _hdr(EV_DNS, length, ts_ns) + _tuple(src, dst, sport, dport, proto) + body + payload


def tcpretrans(src, dst, *, sport: int = 0, dport: int = 0, state: int = 1, tcp_flags=0,
               netns_ino: int = 0, segs: int = 1, ts_ns: int = 0) -> bytes:
    """A struct retina_tcpretrans_event (72 bytes)."""
    body = _RETRANS.pack(state, tcp_flag_bits(tcp_flags), netns_ino, segs)
    return _hdr(EV_TCPRETRANS, TCPRETRANS_SIZE, ts_ns) + _tuple(src, dst, sport, dport, "tcp") + body


def _name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode()
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def dns_message(query: str, *, qtype="A", id: int = 1, response: bool = False, rcode: int = 0,
                answers: Iterable = ()) -> bytes:
    """A DNS message: one question, and for responses A/AAAA answers
    (compressed names pointing at the question)."""
    qt = DNS_QTYPES[qtype.upper()] if isinstance(qtype, str) else int(qtype)
    answers = [ipaddress.ip_address(str(a)) for a in answers]
    flags = (0x8000 if response else 0) | 0x0100 | (0x0080 if response else 0) | (rcode & 0xF)
    msg = struct.pack(">HHHHHH", id, flags, 1, len(answers), 0, 0)
    msg += _name(query) + struct.pack(">HH", qt, 1)
    for a in answers:
        rtype = 1 if a.version == 4 else 28
        msg += struct.pack(">HHHIH", 0xC00C, rtype, 1, 30, len(a.packed)) + a.packed
    return msg


def batch(records: Sequence[bytes], *, ts_ns: int = 0) -> bytes:
    """A batch record (struct retina_batch_hdr) holding `records`, all of one
    size, as packetparser sends packets at aggregation low. decode_many()
    and Pipeline.feed() take it apart."""
    if not records or len({len(r) for r in records}) != 1 or len(records[0]) % 8:
        raise ValueError("a batch holds one or more records of one size, a multiple of 8")
    stride = len(records[0])
    length = BATCH_HDR_SIZE + stride * len(records)
    return _hdr(EV_BATCH, length, ts_ns) + struct.pack("<HHI", len(records), stride, 0) + b"".join(records)


def concat(records: Iterable[bytes], align: int = 1) -> bytes:
    """Records back to back, each padded to `align` bytes: the buffer form
    decode_many() and Pipeline.feed() read."""
    out = bytearray()
    for r in records:
        out += r
        if align > 1 and len(r) % align:
            out += b"\0" * (align - len(r) % align)
    return bytes(out)
