"""The engine, started from Python, sees exactly the UDP traffic sent
between two namespaces: per direction, the flows in the DataFrame add up
to the datagrams sent, and the forward metrics agree with the flows."""
import time

import pytest

import retina

PAYLOAD = 1000
COUNT = 200
WIRE = PAYLOAD + 8 + 20 + 14  # UDP, IPv4 and Ethernet headers: skb->len at the veth's TC hooks
WARM_SPORT = 41001
SPORT = 41002
DPORT = 42000

RECEIVER = f"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("0.0.0.0", {DPORT}))
s.settimeout(30)
print("ready", flush=True)
got = 0
try:
    while got < {COUNT}:
        data = s.recv(65536)
        if data[:1] == b"M" and len(data) == {PAYLOAD}:
            got += 1
except socket.timeout:
    pass
print(got, flush=True)
"""


def sender(dst: str, sport: int, count: int, mark: bytes) -> str:
    return f"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", {sport}))
for i in range({count}):
    s.sendto({mark!r} + b"x" * {PAYLOAD - 1}, ("{dst}", {DPORT}))
    if i % 50 == 49:
        time.sleep(0.01)
"""


def sum_by(df, sport):
    sel = df[(df["src_port"] == sport) & (df["proto"] == "UDP")]
    return {d: (int(g["packets"].sum()), int(g["bytes"].sum()), len(g))
            for d, g in sel.groupby("direction")}


@pytest.mark.parametrize("tcx", ["off", "auto"])
def test_engine_counts_udp_between_namespaces(node, tcx):
    import pandas as pd

    engine = retina.Engine(enabled_plugins=["packetparser"], data_aggregation_level="low", enable_tcx=tcx,
                           host_interfaces=[], pod_interface_prefixes=[node.prefix], log_level="warn",
                           metrics_interval=1,
                           # forward_* from the pods' veths (Retina's are the node NIC totals)
                           pod_forward_metrics=True)
    engine.cache.upsert(namespace="test", name="pod-a", ips=[node.ips[0]], workloads="Deployment/a")
    engine.cache.upsert(namespace="test", name="pod-b", ips=[node.ips[1]])
    # Subscribed before start: the stream sees every flow the metrics count.
    stream = engine.subscribe("pytest", capacity=1 << 20)
    frames = []
    try:
        engine.start()
        status = {p["name"]: p for p in engine.plugin_status()}
        assert status["packetparser"]["state"] == "running", status
        assert engine.ready()

        # Attachment follows the interface watcher: send marked warm-up
        # datagrams until both veths report them.
        deadline = time.monotonic() + 20
        seen = set()
        while seen != {"EGRESS", "INGRESS"}:
            assert time.monotonic() < deadline, f"packetparser never reported both veths (saw {seen})"
            node.run_in(0, sender(node.ips[1], WARM_SPORT, 1, b"W")).wait(10)
            df = stream.poll_df(timeout=0.3)
            frames.append(df)
            seen |= set(df[df["src_port"] == WARM_SPORT]["direction"])

        rx = node.run_in(1, RECEIVER)
        assert rx.stdout.readline().strip() == "ready"
        tx = node.run_in(0, sender(node.ips[1], SPORT, COUNT, b"M"))
        assert tx.wait(30) == 0, tx.stderr.read()
        out, err = rx.communicate(timeout=40)
        assert int(out.split()[-1]) == COUNT, err

        # Every datagram crossed both veths: wait for all of their flows.
        deadline = time.monotonic() + 20
        while True:
            frames.append(stream.poll_df(timeout=0.2))
            got = sum_by(pd.concat(frames), SPORT)
            if got.get("EGRESS", (0,))[0] >= COUNT and got.get("INGRESS", (0,))[0] >= COUNT:
                break
            assert time.monotonic() < deadline, f"flows missing: {got}"
        time.sleep(0.5)  # anything extra would show up now
        frames.append(stream.poll_df())
        df = pd.concat(frames, ignore_index=True)

        # Aggregation low: one flow per packet, exact packets and bytes.
        assert sum_by(df, SPORT) == {"EGRESS": (COUNT, COUNT * WIRE, COUNT),
                                     "INGRESS": (COUNT, COUNT * WIRE, COUNT)}
        m = df[df["src_port"] == SPORT]
        egress, ingress = m[m["direction"] == "EGRESS"], m[m["direction"] == "INGRESS"]
        assert set(egress["observation_point"]) == {"TO_STACK"}
        assert set(egress["ifindex"]) == {node.ifindex[0]}
        assert set(ingress["observation_point"]) == {"TO_ENDPOINT"}
        assert set(ingress["ifindex"]) == {node.ifindex[1]}
        assert set(m["src_ip"]) == {node.ips[0]} and set(m["dst_ip"]) == {node.ips[1]}
        assert set(m["dst_port"]) == {DPORT} and set(m["verdict"]) == {"FORWARDED"}
        assert set(m["src_pod"]) == {"pod-a"} and set(m["src_workload"]) == {"a"}
        assert set(m["dst_pod"]) == {"pod-b"} and set(m["dst_namespace"]) == {"test"}
        now = pd.Timestamp.utcnow().tz_localize(None)
        assert (now - m["time"]).max() < pd.Timedelta(minutes=5)

        # The basic metrics counted exactly what the stream saw.
        assert stream.dropped == 0
        for direction in ("egress", "ingress"):
            sel = df[df["direction"] == direction.upper()]
            assert engine.metric("networkobservability_forward_count", direction=direction) == sel["packets"].sum()
            assert engine.metric("networkobservability_forward_bytes", direction=direction) == sel["bytes"].sum()
        mdf = engine.metrics()
        assert {"name", "labels", "value", "type"} == set(mdf.columns)
        assert engine.pipeline_stats()["rejected"] == {}
    finally:
        engine.stop()

    assert not engine.running
    for host_if, ifindex in zip(node.host_ifs, node.ifindex):
        assert "retina" not in node.tc_filters(host_if)
        for direction in ("ingress", "egress"):
            assert not [p for p in retina._retina._tcx_programs(ifindex, direction) if p.startswith("retina")]


def test_engine_stops_at_interpreter_exit(node):
    """An engine left running when the interpreter exits detaches its programs."""
    import subprocess
    import sys
    import os

    code = f"""
import retina
e = retina.Engine(enabled_plugins=["packetparser"], data_aggregation_level="low", enable_tcx="off",
                  host_interfaces=[], pod_interface_prefixes=["{node.prefix}"], log_level="error")
e.start()
import time
deadline = time.time() + 10
while time.time() < deadline:
    import subprocess
    if "retina" in subprocess.run(["tc", "filter", "show", "dev", "{node.host_ifs[0]}", "ingress"],
                                  capture_output=True, text=True).stdout:
        break
    time.sleep(0.1)
else:
    raise SystemExit("never attached")
print("attached", flush=True)
"""
    # The child inherits this thread's namespace (the node's).
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "attached"
    for host_if in node.host_ifs:
        assert "retina" not in node.tc_filters(host_if)
