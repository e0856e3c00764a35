"""API-server latency end to end: the agent on a namespace "node" whose
kubeconfig points at an "API server" in a peer namespace, reached over the
node's interface. Every TCP connection the watcher opens is one SYN/SYN-ACK
pair there: the handshake histogram counts exactly the connections the
server accepted, and the latency histogram at least one answer for each.

Needs root; skips otherwise, fails instead with RETINA_REQUIRE_PRIVILEGED=1."""
import os
import pathlib
import re
import time

import yaml

from netns_node import node as netns_node, sh

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE_IP, SERVER_IP, SERVER_PORT = "10.128.0.1", "10.128.0.2", 6443

# Accepts connections, answers every request 404 and counts the connections.
# Each connection is served on its own thread: the accept loop never waits on
# a slow client, so a connection whose handshake the kernel completed is
# counted at once, not after the ones queued ahead of it.
SERVER = r'''
import os, socket, sys, threading
count_file = sys.argv[1]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[3]))); s.listen(64)

def serve(c):
    c.settimeout(2)
    try:
        c.recv(65536)
        c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass
    c.close()

n = 0
while True:
    c, _ = s.accept(); n += 1
    # Replaced whole, so the test never reads a half-written count.
    with open(count_file + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(count_file + ".tmp", count_file)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''


def metrics(n, port):
    out = sh(n.in_node(f"curl -sS --max-time 5 http://127.0.0.1:{port}/metrics"))
    values = {}
    for line in out.splitlines():
        m = re.match(r"^(networkobservability_adv_node_apiserver_\w+?)(\{[^}]*\})? (\S+)$", line)
        if m:
            values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def test_apiserver_latency_counts_every_connection():
    agent = os.environ.get("RETINA_AGENT", str(ROOT / "build/tools/retina-agent/retina-agent"))
    assert os.access(agent, os.X_OK), f"no agent binary at {agent} (set RETINA_AGENT)"
    with netns_node("lat", NODE_IP, SERVER_IP) as n:
        check_latency(n, agent)


def check_latency(n, agent):
    work = n.work
    (work / "server.py").write_text(SERVER)
    count = work / "accepted"
    n.start(f"ip netns exec {n.peer} /usr/bin/python3 {work}/server.py {count} {SERVER_IP} {SERVER_PORT}", "server.log")
    (work / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://{SERVER_IP}:{SERVER_PORT}"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {}}]}))
    port = 10093
    (work / "config.yaml").write_text(yaml.safe_dump({
        "apiServer": {"host": "127.0.0.1", "port": port},
        "enabledPlugin": ["packetparser"],
        "dataAggregationLevel": "low",  # the node's interface is attached: TO_NETWORK / FROM_NETWORK
        "podInterfacePrefixes": ["nopods"],  # the uplink is the node's interface, not a pod's
        "enablePodLevel": True,
        "metricsConfiguration": {"contextOptions": [
            {"metricName": m} for m in ("node_apiserver_latency", "node_apiserver_tcp_handshake_latency",
                                        "node_apiserver_no_response")]},
    }))
    n.start(n.in_node(f"{agent} --config {work}/config.yaml --kubeconfig {work}/kubeconfig "
                      f"--health-probe-bind-address=127.0.0.1:0"), "agent.log")
    deadline = time.monotonic() + 30
    while f"attached to {n.up}" not in n.log("agent.log"):
        assert time.monotonic() < deadline, n.log("agent.log")
        time.sleep(0.2)

    hs = "networkobservability_adv_node_apiserver_tcp_handshake_latency_count"

    def settled():
        # Quiet for a moment: no connection in flight between the two readings,
        # on either side. The server counts a connection when it accepts it,
        # the agent when its event has been read from the ring buffer, a
        # little later; a snapshot taken between the two would skew every
        # delta taken against it by one.
        a0 = int(count.read_text()) if count.exists() else 0
        m0 = metrics(n, port)
        time.sleep(0.3)
        a1 = int(count.read_text()) if count.exists() else 0
        m1 = metrics(n, port)
        return (a1, m1) if a0 == a1 and m0.get(hs) == m1.get(hs) else None

    lat = "networkobservability_adv_node_apiserver_latency_count"
    first = None
    deadline = time.monotonic() + 30
    while first is None or first[0] < 1:
        assert time.monotonic() < deadline, "the watcher never connected"
        first = settled()
    # The watcher retries: wait for more connections, then compare deltas.
    last, accepted, handshakes = None, 0, 0
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        last = settled()
        if last and last[0] >= first[0] + 3:
            accepted = last[0] - first[0]
            handshakes = last[1].get(hs, 0) - first[1].get(hs, 0)
            if handshakes == accepted:
                break
        time.sleep(0.5)
    print(f"\naccepted {accepted} connections, {handshakes:.0f} handshakes timed")
    assert accepted >= 3 and handshakes == accepted
    m = last[1]
    # Every connection sent a request that was answered: at least one latency per handshake.
    assert m[lat] >= m[hs] > 0
    assert m['networkobservability_adv_node_apiserver_latency_bucket{le="+Inf"}'] == m[lat]
    # A connection's last packet (the ACK of the server's FIN) is never
    # answered: counted once it is 500 ms old, as Retina counts it.
    assert 'networkobservability_adv_node_apiserver_no_response{no_response="no_response"}' in m
