"""DataFrame and numpy forms: exact columns, dtypes and values."""
import numpy as np
import pandas as pd
import pytest

import retina
from retina import records

T0 = 1_700_000_000_000_000_000  # boot offset used throughout: times are T0 + ts_ns


def mixed_records():
    msg = records.dns_message("db.example", qtype="A", id=9, response=True, answers=["10.0.0.9"])
    return [
        records.packet("10.0.0.5", "10.0.0.9", sport=40000, dport=5432, proto="tcp", bytes=74,
                       tcp_flags="SYN", obs_point=records.OBS_FROM_ENDPOINT, ifindex=4, ts_ns=1),
        records.packet("10.0.0.9", "10.0.0.5", sport=5432, dport=40000, proto="tcp", bytes=74,
                       tcp_flags="SYN|ACK", obs_point=records.OBS_TO_ENDPOINT, ifindex=4,
                       flags=records.PKT_F_REPLY, ts_ns=2),
        records.drop("10.0.0.5", "203.0.113.7", sport=1000, dport=443, bytes=60, reason=6, direction=2,
                     ts_ns=3),
        records.dns("10.96.0.10", "10.0.0.5", msg, sport=53, dport=33000, obs_point=records.OBS_TO_ENDPOINT,
                    ts_ns=4),
        records.tcpretrans("fd00::5", "fd00::9", sport=40001, dport=5432, tcp_flags="PSH|ACK", ts_ns=5),
    ]


def test_columns_and_dtypes_are_exact(cache):
    df = retina.decode_many(records.concat(mixed_records()), boot_offset_ns=T0, cache=cache)
    assert list(df.columns) == list(retina.COLUMNS)
    assert {c: str(t) for c, t in df.dtypes.items()} == retina.COLUMNS
    assert len(df) == 5
    assert df.attrs["rejected"] == {}


def test_values_are_exact(cache):
    df = retina.decode_many(mixed_records(), boot_offset_ns=T0, cache=cache)
    assert list(df["time"]) == [pd.Timestamp(T0 + i, unit="ns") for i in range(1, 6)]
    assert list(df["verdict"]) == ["FORWARDED", "FORWARDED", "DROPPED", "DNS", "RETRANSMISSION"]
    assert list(df["origin"]) == ["packetparser", "packetparser", "dropreason", "dns", "tcpretrans"]
    assert list(df["ip_version"]) == ["IPv4"] * 4 + ["IPv6"]
    assert list(df["src_ip"]) == ["10.0.0.5", "10.0.0.9", "10.0.0.5", "10.96.0.10", "fd00::5"]
    assert list(df["dst_ip"]) == ["10.0.0.9", "10.0.0.5", "203.0.113.7", "10.0.0.5", "fd00::9"]
    assert list(df["proto"]) == ["TCP", "TCP", "TCP", "UDP", "TCP"]
    assert list(df["src_port"]) == [40000, 5432, 1000, 53, 40001]
    assert list(df["tcp_flags"]) == ["SYN", "SYN|ACK", "", "", "PSH|ACK"]
    assert list(df["direction"]) == ["EGRESS", "INGRESS", "EGRESS", "INGRESS", "EGRESS"]
    assert list(df["observation_point"]) == ["TO_STACK", "TO_ENDPOINT", "UNKNOWN_POINT", "TO_ENDPOINT",
                                             "UNKNOWN_POINT"]
    assert list(df["is_reply"]) == [False, True, False, True, False]
    assert list(df["is_reply_known"]) == [True, True, False, True, False]
    assert list(df["packets"]) == [1, 1, 1, 1, 1]
    assert list(df["bytes"]) == [74, 74, 60, 0, 0]
    # Enrichment from the cache.
    assert list(df["src_namespace"]) == ["shop", "db", "shop", "kube-system", "shop"]
    assert list(df["src_kind"]) == ["pod", "pod", "pod", "service", "pod"]
    assert list(df["src_pod"]) == ["web-7d9f", "pg-0", "web-7d9f", "", "web-7d9f"]
    assert list(df["src_name"]) == ["web-7d9f", "pg-0", "web-7d9f", "kube-dns", "web-7d9f"]
    assert list(df["src_workload"]) == ["web", "pg", "web", "", "web"]
    assert list(df["src_workload_kind"]) == ["Deployment", "StatefulSet", "Deployment", "", "Deployment"]
    assert list(df["src_service"]) == ["web-svc", "", "web-svc", "kube-dns", "web-svc"]
    assert list(df["src_zone"]) == ["zone-a", "zone-b", "zone-a", "", "zone-a"]
    assert list(df["dst_pod"]) == ["pg-0", "web-7d9f", "", "web-7d9f", ""]
    assert list(df["dst_kind"]) == ["pod", "pod", "", "pod", ""]
    assert list(df["drop_reason"]) == ["", "", "UNKNOWN", "", ""]
    assert list(df["drop_reason_code"]) == [0, 0, 6, 0, 0]
    assert list(df["dns_query"]) == ["", "", "", "db.example.", ""]
    assert list(df["dns_qtype"]) == ["", "", "", "A", ""]
    assert list(df["dns_rcode"]) == ["", "", "", "NOERROR", ""]
    assert list(df["dns_ips"]) == [(), (), (), ("10.0.0.9",), ()]
    assert list(df["ifindex"]) == [4, 4, 0, 0, 0]


def test_equal_strings_share_one_object(cache):
    df = retina.decode_many([records.packet("10.0.0.5", "10.0.0.9")] * 50, boot_offset_ns=0, cache=cache)
    assert len({id(x) for x in df["src_namespace"]}) == 1
    assert len({id(x) for x in df["src_ip"]}) == 1


def test_to_dict_is_a_dataframe_row(cache):
    recs = mixed_records()
    df = retina.decode_many(recs, boot_offset_ns=T0, cache=cache)
    flows = retina.decode_flows(recs, boot_offset_ns=T0, cache=cache)
    for i, f in enumerate(flows):
        row = df.iloc[i].to_dict()
        d = f.to_dict()
        assert list(d) == list(retina.COLUMNS)
        assert pd.Timestamp(d.pop("time")) == row.pop("time")
        assert d == row
    # And a list of Flow converts to the same frame.
    pd.testing.assert_frame_equal(retina.to_frame(flows), df.drop(columns=[]).copy(), check_like=False)


def test_empty_input_gives_typed_empty_frame():
    df = retina.decode_many(b"", boot_offset_ns=0)
    assert len(df) == 0
    assert {c: str(t) for c, t in df.dtypes.items()} == retina.COLUMNS
    assert {c: str(t) for c, t in retina.to_frame([]).dtypes.items()} == retina.COLUMNS


def test_buffer_alignment_and_lists():
    recs = mixed_records()
    a = retina.decode_many(records.concat(recs, align=8), boot_offset_ns=0, align=8)
    b = retina.decode_many(recs, boot_offset_ns=0)
    pd.testing.assert_frame_equal(a, b)
    # Unaligned DNS record in an 8-aligned stream without align=8: framing breaks.
    with pytest.raises(retina.DecodeError):
        retina.decode_many(records.concat(recs, align=8), boot_offset_ns=0)


def test_bad_records_raise_or_are_counted():
    good = records.packet("10.0.0.1", "10.0.0.2")
    bad = bytearray(good)
    bad[retina._retina.ABI_LAYOUTS["retina_packet_event"]["obs_point"]] = 77
    with pytest.raises(retina.DecodeError, match=r"records\[1\]: bad_field") as e:
        retina.decode_many([good, bytes(bad), good], boot_offset_ns=0)
    assert e.value.reason == "bad_field"
    with pytest.raises(retina.DecodeError, match="record 1 at offset 128: bad_field"):
        retina.decode_many(good + bytes(bad), boot_offset_ns=0)
    df = retina.decode_many([good, bytes(bad), b"xx", good], boot_offset_ns=0, errors="skip")
    assert len(df) == 2
    assert df.attrs["rejected"] == {"too_short": 1, "bad_field": 1}
    with pytest.raises(retina.DecodeError, match="record 1 at offset 128: header length 0 does not fit"):
        retina.decode_many(good + b"\0" * 20, boot_offset_ns=0, errors="skip")
    with pytest.raises(ValueError, match="errors"):
        retina.decode_many(good, errors="ignore")
    with pytest.raises(ValueError, match="expected a bytes-like record"):
        retina.decode_many([good, "text"])


def test_numpy_form(cache):
    arr, strings = retina.decode_numpy(mixed_records(), boot_offset_ns=T0, cache=cache)
    assert arr.dtype == retina.NUMPY_DTYPE
    assert arr.dtype.fields["time"][0] == np.dtype("M8[ns]")
    assert list(arr["time"].astype("int64")) == [T0 + i for i in range(1, 6)]
    assert list(arr["verdict"]) == [1, 1, 2, 16, 15]
    assert list(arr["proto"]) == [6, 6, 6, 17, 6]
    assert list(arr["src_ip"]) == [b"10.0.0.5", b"10.0.0.9", b"10.0.0.5", b"10.96.0.10", b"fd00::5"]
    assert list(arr["direction"]) == [2, 1, 2, 1, 2]
    assert list(arr["observation_point"]) == [3, 101, 0, 101, 0]
    assert list(arr["tcp_flags"]) == [0x02, 0x12, 0, 0, 0x18]
    assert list(arr["bytes"]) == [74, 74, 60, 0, 0]
    table = strings.to_list()
    assert table[0] == ""
    assert [table[c] for c in arr["src_pod"]] == ["web-7d9f", "pg-0", "web-7d9f", "", "web-7d9f"]
    assert [table[c] for c in arr["dns_query"]] == ["", "", "", "db.example.", ""]
    assert [table[c] for c in arr["drop_reason"]] == ["", "", "UNKNOWN", "", ""]
    assert list(arr["dns_qtype"]) == [0, 0, 0, 1, 0]
    # Codes stay stable across arrays that share a table.
    arr2, _ = retina.decode_numpy([records.packet("10.0.0.9", "10.0.0.5")], strings, boot_offset_ns=0,
                                  cache=cache)
    assert arr2["src_pod"][0] == arr["src_pod"][1]


def test_numpy_frame_matches_the_dataframe(cache):
    recs = mixed_records()
    arr, strings = retina.decode_numpy(recs, boot_offset_ns=T0, cache=cache)
    from_np = retina.numpy_frame(arr, strings)
    df = retina.decode_many(recs, boot_offset_ns=T0, cache=cache)
    pd.testing.assert_frame_equal(from_np, df[list(from_np.columns)])
    assert set(df.columns) - set(from_np.columns) == {
        "src_kind", "src_name", "src_workload_kind", "src_service", "src_zone", "dst_kind", "dst_name",
        "dst_workload_kind", "dst_service", "dst_zone", "dns_ips"}


def test_large_batch_round_trip():
    n = 20000
    recs = records.concat(records.packet(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "10.255.0.1",
                                         sport=i & 0xFFFF, dport=80, proto="udp", bytes=i % 1500,
                                         ts_ns=i) for i in range(n))
    arr, _ = retina.decode_numpy(recs, boot_offset_ns=0)
    assert len(arr) == n
    assert int(arr["bytes"].sum()) == sum(i % 1500 for i in range(n))
    df = retina.decode_many(recs, boot_offset_ns=0)
    assert int(df["bytes"].sum()) == int(arr["bytes"].sum())
    assert df["src_ip"].nunique() == n
