import gzip
import json

import numpy as np
import pytest

import retina
from retina import records


def _flows(cache):
    recs = [
        records.packet("10.0.0.5", "10.0.0.9", sport=40000, dport=5432, proto="tcp", bytes=74,
                       tcp_flags="SYN|ACK", obs_point=records.OBS_FROM_ENDPOINT, ifindex=4, ts_ns=5_000_000),
        records.packet("fd00::5", "fd00::9", sport=5353, dport=53, proto="udp", bytes=90, ts_ns=6_000_123),
        records.packet("10.0.0.5", "10.96.0.10", sport=5353, dport=53, proto="udp", bytes=0,
                       prev_packets=3, prev_bytes=270, report_reason=records.REPORT_INTERVAL,
                       flags=records.PKT_F_CT_REPORT | records.PKT_F_NO_PACKET | records.PKT_F_REPLY),
        records.dns("10.96.0.10", "10.0.0.5",
                    records.dns_message("example.com", response=True, answers=["1.2.3.4"]),
                    sport=53, dport=999),
        records.tcpretrans("10.0.0.5", "10.0.0.9", sport=40000, dport=5432),
    ]
    return retina.decode_flows(recs, boot_offset_ns=1_700_000_000_000_000_000, cache=cache)


# Columns the JSON cannot carry: the kernel's numeric drop reason, and the
# exact kind of an endpoint that is neither a pod nor a service.
_NOT_IN_JSON = {"drop_reason_code"}


def test_read_flows_matches_the_engine_columns(cache, tmp_path):
    flows = _flows(cache)
    path = tmp_path / "flows.jsonl"
    path.write_text("".join(retina.flow_json(f, node_name="n") + "\n" for f in flows) +
                    '{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":"3"}}\n')
    got = retina.read_flows(path)
    want = retina.to_frame(flows)
    assert list(got.columns) == list(retina.COLUMNS)
    assert len(got) == len(flows)
    for c, dtype in retina.COLUMNS.items():
        assert str(got[c].dtype) == str(want[c].dtype), c
        if c in _NOT_IN_JSON:
            continue
        assert list(got[c]) == list(want[c]), c


def test_read_flows_gzip_and_errors(cache, tmp_path):
    flows = _flows(cache)
    gz = tmp_path / "flows.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        for fl in flows:
            f.write(retina.flow_json(fl) + "\n")
    assert len(retina.read_flows(gz)) == len(flows)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(retina.flow_json(flows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match="line 2"):
        retina.read_flows(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert list(retina.read_flows(empty).columns) == list(retina.COLUMNS)
