import json

import retina
from retina import records


def test_flow_json_is_hubble_shaped(cache):
    rec = records.packet("10.0.0.5", "10.0.0.9", sport=40000, dport=5432, proto="tcp", bytes=74,
                         tcp_flags="SYN", obs_point=records.OBS_FROM_ENDPOINT, ifindex=4, ts_ns=5_000_000)
    [f] = retina.decode_flows([rec], boot_offset_ns=1_700_000_000_000_000_000, cache=cache)
    text = retina.flow_json(f, node_name="node-1")
    assert text == f.to_json(node_name="node-1")
    doc = json.loads(text)
    assert doc == {
        "flow": {
            "time": "2023-11-14T22:13:20.005Z",
            "verdict": "FORWARDED",
            "IP": {"source": "10.0.0.5", "destination": "10.0.0.9", "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": 40000, "destination_port": 5432, "flags": {"SYN": True}}},
            "source": {"namespace": "shop", "labels": ["app=web"], "pod_name": "web-7d9f",
                       "workloads": [{"name": "web", "kind": "Deployment"}]},
            "destination": {"namespace": "db", "pod_name": "pg-0",
                            "workloads": [{"name": "pg", "kind": "StatefulSet"}]},
            "Type": "L3_L4",
            "node_name": "node-1",
            "event_type": {"type": 4, "sub_type": 3},
            "source_service": {"name": "web-svc", "namespace": "shop"},
            "traffic_direction": "EGRESS",
            "trace_observation_point": "TO_STACK",
            "is_reply": False,
            "interface": {"index": 4},
            "extensions": {"@type": "type.googleapis.com/google.protobuf.Struct",
                           "value": {"bytes": 74, "destination_zone": "zone-b", "source_zone": "zone-a"}},
        },
        "node_name": "node-1",
        "time": "2023-11-14T22:13:20.005Z",
    }


def test_dns_json():
    msg = records.dns_message("example.com", response=True, answers=["1.2.3.4"])
    f = retina.decode(records.dns("10.0.0.10", "10.0.0.5", msg, sport=53, dport=999), boot_offset_ns=0)
    doc = json.loads(retina.flow_json(f))
    assert doc["flow"]["verdict"] == 16  # Retina's custom DNS verdict, a number in Hubble's JSON
    assert doc["flow"]["l7"] == {"type": "RESPONSE", "dns": {"query": "example.com.", "ips": ["1.2.3.4"],
                                                            "qtypes": ["A"]}}
    assert "node_name" not in doc
