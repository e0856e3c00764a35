"""Hubble JSON lines (a retina flow log, GET /flows, `hubble observe -o json`
or `retina observe -o json`) as the DataFrame columns of FlowStream."""
from __future__ import annotations

import gzip
import io
import json
import urllib.request

import numpy as np

from . import _retina
from ._frames import COLUMNS

_TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")
# Retina's verdicts that Hubble's enum does not name travel as numbers.
_VERDICTS = {0: "VERDICT_UNKNOWN", 1: "FORWARDED", 2: "DROPPED", 3: "ERROR", 15: "RETRANSMISSION", 16: "DNS"}


def _open(path_or_url):
    if hasattr(path_or_url, "read"):
        return path_or_url
    text = str(path_or_url)
    if text.startswith(("http://", "https://")):
        return io.TextIOWrapper(urllib.request.urlopen(text), encoding="utf-8")
    if text.endswith(".gz"):
        return gzip.open(text, "rt", encoding="utf-8")
    return open(text, encoding="utf-8")


def _origin(flow, verdict):
    # Which data source produced the flow, from what the JSON keeps.
    if "dns" in flow.get("l7", {}):
        return "dns"
    if verdict == "RETRANSMISSION":
        return "tcpretrans"
    if flow.get("event_type", {}).get("type") == 1:
        return "dropreason"
    return "packetparser"


def _endpoint(ep, service):
    # The JSON names pods; any other endpoint shows only through its
    # service, and its exact kind (node, external) is not kept. No
    # endpoint at all (address not in the cache): everything empty.
    if ep is None:
        return {"kind": "", "namespace": "", "name": "", "pod": "", "workload": "", "workload_kind": "",
                "service": ""}
    pod = ep.get("pod_name", "")
    service = service or {}
    workloads = ep.get("workloads") or [{}]
    is_service = not pod and bool(service.get("name"))
    return {
        "kind": "pod" if pod else "service" if is_service else "unknown",
        "namespace": ep.get("namespace", ""),
        "name": pod or (service["name"] if is_service else ""),
        "pod": pod,
        "workload": workloads[0].get("name", ""),
        "workload_kind": workloads[0].get("kind", ""),
        "service": service.get("name", ""),
    }


def _row(line):
    doc = json.loads(line)
    flow = doc.get("flow")
    if flow is None:  # lost_events and other non-flow responses
        return None
    ext = flow.get("extensions", {}).get("value", {})
    v = flow.get("verdict", 0)
    verdict = _VERDICTS.get(v, str(v)) if isinstance(v, int) else v
    ip = flow.get("IP", {})
    l4 = flow.get("l4", {})
    proto, ports = "", {}
    for name in ("TCP", "UDP", "ICMPv4", "ICMPv6"):
        if name in l4:
            proto, ports = name, l4[name]
    flags = ports.get("flags", {}) if proto == "TCP" else {}
    dns = flow.get("l7", {}).get("dns")
    src = _endpoint(flow.get("source"), flow.get("source_service"))
    dst = _endpoint(flow.get("destination"), flow.get("destination_service"))
    bytes_ = int(ext.get("bytes", 0))
    prev_packets = int(ext.get("previously_observed_packets", 0))
    reply = flow.get("is_reply")
    origin = _origin(flow, verdict)
    row = {
        "time": np.datetime64(flow["time"].rstrip("Z"), "ns"),
        "verdict": verdict,
        "origin": origin,
        "ip_version": ip.get("ipVersion", "IP_NOT_USED"),
        "src_ip": ip.get("source", ""),
        "dst_ip": ip.get("destination", ""),
        "proto": proto,
        "src_port": ports.get("source_port", 0),
        "dst_port": ports.get("destination_port", 0),
        "tcp_flags": "|".join(f for f in _TCP_FLAGS if flags.get(f)),
        "direction": flow.get("traffic_direction", "TRAFFIC_DIRECTION_UNKNOWN"),
        "observation_point": flow.get("trace_observation_point", "UNKNOWN_POINT"),
        "is_reply": bool(reply),
        "is_reply_known": reply is not None,
        # A report stands for its own packet plus earlier ones, except a
        # packetparser flush of pending counts (no packet of its own, bytes 0).
        "packets": prev_packets + (0 if origin == "packetparser" and not bytes_ else 1),
        "bytes": bytes_ + int(ext.get("previously_observed_bytes", 0)),
        "drop_reason": ext.get("drop_reason", "") if verdict == "DROPPED" else "",
        # The kernel's numeric reason is not in the JSON.
        "drop_reason_code": 0,
        "dns_query": dns.get("query", "") if dns else "",
        "dns_qtype": (dns.get("qtypes") or [""])[0] if dns else "",
        "dns_rcode": _retina.dns_rcode_name(int(dns.get("rcode", 0))) if dns else "",
        "dns_ips": tuple(dns.get("ips", ())) if dns else (),
        "ifindex": flow.get("interface", {}).get("index", 0),
    }
    for side, ep, zone in (("src", src, ext.get("source_zone", "")), ("dst", dst, ext.get("destination_zone", ""))):
        for k, x in ep.items():
            row[f"{side}_{k}"] = x
        row[f"{side}_zone"] = zone
    return row


def read_flows(path_or_url):
    """Hubble JSON lines from a file (.gz too), an open text file or an
    http(s) URL such as http://node:10093/flows?max=1000, as a DataFrame
    with the columns of FlowStream.collect_df() (retina.COLUMNS). Lines
    that carry no flow (lost events) are skipped; a malformed line raises
    ValueError naming its line number."""
    import pandas as pd

    rows = []
    with _open(path_or_url) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = _row(line)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"line {n}: not a Hubble flow: {e}") from None
            if row is not None:
                rows.append(row)
    cols = {}
    for c, dtype in COLUMNS.items():
        values = [r[c] for r in rows]
        if dtype == "object":
            arr = np.empty(len(values), dtype=object)
            for i, x in enumerate(values):
                arr[i] = x
            cols[c] = arr
        else:
            cols[c] = np.asarray(values, dtype=dtype)
    return pd.DataFrame(cols)
