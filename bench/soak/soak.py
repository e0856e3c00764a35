#!/usr/bin/python3
"""Soak test: the agent over a long run with pods churning and a failing API server.

A "node" network namespace holds a bridge (pods), dnsmasq and the agent
(packetparser at aggregation high, dropreason, dns, pod-level metrics,
Kubernetes). Every --churn seconds a pod namespace is created on the bridge
and the oldest is deleted (IPs are reused every 200 pods), and the fake API
server below reports the pod ADDED and DELETED. Between live pods each cycle
sends TCP, UDP, DNS queries and packets dropped by an iptables rule.

The fake API server (a thread of this script, on a veth into the node
namespace) misbehaves on purpose: watches cut mid-line, 500s, HTTP 410 and
ERROR-410 events, and a full restart (port closed for a few seconds) every
--restart-every seconds.

Every --sample seconds it records the agent's RSS, open fds, threads,
/metrics series count, lost events and the watch's error counters. At the
end churn stops and exact counts are checked on two fresh pods: N packets
dropped by iptables add exactly N to drop_count{reason="IPTABLE_RULE_DROP"},
N DNS queries add exactly N to dns_request_count, and lost events are 0.

Not in CI. Needs root, dnsmasq and a built agent.

  bench/soak/soak.py --minutes 30 --json soak.json
  bench/soak/soak.py --minutes 2 --agent build/tools/retina-agent/retina-agent   # a smoke run
"""

import argparse
import collections
import http.server
import json
import os
import random
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "e2e"))
from run import in_ns, sh, stop_process  # noqa: E402  (shared helpers)

PREFIX = f"rsoak{os.getpid()}"
NODE = f"{PREFIX}-node"
BRIDGE_IP = "10.213.0.1"
UPLINK_HOST_IP, UPLINK_NODE_IP = "10.214.0.1", "10.214.0.2"
DROP_PORT = 9
DNS_NAME = "web.soak.test"
NAMESPACE = "soak"


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------ fake API server

class ApiState:
    """Pods, the event history watches replay, and the failure dice."""

    KEEP_EVENTS = 200  # older resourceVersions answer 410 Gone

    def __init__(self, node):
        self.cv = threading.Condition()
        self.rv = 1
        self.pods = {}
        self.events = []  # (rv, type, pod object)
        self.node = node
        self.faults = {"cut": 0, "http500": 0, "http410": 0, "event410": 0, "restart": 0}

    def pod_obj(self, name, ip, rv):
        return {"kind": "Pod", "apiVersion": "v1",
                "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}",
                             "resourceVersion": str(rv), "labels": {"app": name.rsplit("-", 1)[0]}},
                "spec": {"nodeName": self.node},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}

    def upsert(self, name, ip):
        with self.cv:
            self.rv += 1
            obj = self.pod_obj(name, ip, self.rv)
            kind = "MODIFIED" if name in self.pods else "ADDED"
            self.pods[name] = obj
            self.events.append((self.rv, kind, obj))
            del self.events[:-self.KEEP_EVENTS]
            self.cv.notify_all()

    def delete(self, name):
        with self.cv:
            obj = self.pods.pop(name, None)
            if obj is None:
                return
            self.rv += 1
            obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self.rv)))
            self.events.append((self.rv, "DELETED", obj))
            del self.events[:-self.KEEP_EVENTS]
            self.cv.notify_all()

    def other(self, resource):
        if resource == "namespaces":
            return [{"kind": "Namespace", "apiVersion": "v1",
                     "metadata": {"name": NAMESPACE, "resourceVersion": "1", "labels": {}}}]
        if resource == "nodes":
            return [{"kind": "Node", "apiVersion": "v1", "metadata": {"name": self.node, "resourceVersion": "1",
                                                                       "labels": {}},
                     "status": {"addresses": [{"type": "InternalIP", "address": UPLINK_NODE_IP}]}}]
        return []


RESOURCES = {"/api/v1/pods": ("pods", "PodList", "v1"), "/api/v1/services": ("services", "ServiceList", "v1"),
             "/api/v1/nodes": ("nodes", "NodeList", "v1"), "/api/v1/namespaces": ("namespaces", "NamespaceList", "v1"),
             "/apis/apps/v1/replicasets": ("replicasets", "ReplicaSetList", "apps/v1")}


class ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # a watch ends when the connection closes

    def log_message(self, *args):
        pass

    def status(self, code, reason):
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                           "code": code, "message": reason}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.server.state
        path, _, query = self.path.partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        if path not in RESOURCES:
            return self.status(404, "NotFound")
        resource, list_kind, api_version = RESOURCES[path]
        dice = random.random()
        if dice < 0.05:
            st.faults["http500"] += 1
            return self.status(500, "InternalError")
        if params.get("watch") != "1":
            with st.cv:
                items = list(st.pods.values()) if resource == "pods" else st.other(resource)
                rv = st.rv
            body = json.dumps({"kind": list_kind, "apiVersion": api_version,
                               "metadata": {"resourceVersion": str(rv)}, "items": items}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        since = int(params.get("resourceVersion") or 0)
        if dice < 0.10:
            st.faults["http410"] += 1
            return self.status(410, "Expired")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if dice < 0.15:
            st.faults["event410"] += 1
            self.line({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                   "reason": "Expired", "code": 410, "message": "too old"}})
            return
        cut_after = time.time() + random.uniform(1, 20) if dice < 0.35 else None
        end = time.time() + min(int(params.get("timeoutSeconds") or 60), 60)
        while time.time() < end and not self.server.closing:
            if resource != "pods":
                time.sleep(0.5)
                continue
            with st.cv:
                if st.events and st.events[0][0] > since + 1 and since < st.rv:
                    gone = True
                else:
                    gone = False
                    batch = [e for e in st.events if e[0] > since]
                    if not batch:
                        st.cv.wait(0.5)
                        continue
            if gone:
                st.faults["event410"] += 1
                self.line({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                       "reason": "Expired", "code": 410, "message": "too old"}})
                return
            for rv, kind, obj in batch:
                if cut_after is not None and time.time() >= cut_after:
                    st.faults["cut"] += 1
                    self.wfile.write(json.dumps({"type": kind, "object": obj}).encode()[:40])  # mid-line
                    self.wfile.flush()
                    return
                self.line({"type": kind, "object": obj})
                since = rv

    def line(self, ev):
        self.wfile.write(json.dumps(ev).encode() + b"\n")
        self.wfile.flush()


class ApiServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeApi:
    """Runs the server and restarts it every `restart_every` seconds."""

    def __init__(self, state, host, restart_every):
        self.state, self.host, self.restart_every = state, host, restart_every
        probe = socket.socket()
        probe.bind((host, 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            srv = ApiServer((self.host, self.port), ApiHandler)
            srv.state, srv.closing = self.state, False
            t = threading.Thread(target=srv.serve_forever, daemon=True)
            t.start()
            self.stop.wait(self.restart_every)
            srv.closing = True
            srv.shutdown()
            srv.server_close()
            if not self.stop.is_set():
                self.state.faults["restart"] += 1
                self.stop.wait(random.uniform(2, 6))  # down: connections refused

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=70)


# ----------------------------------------------------------------- the node

class Node:
    def __init__(self, workdir):
        self.workdir = workdir
        self.pods = []  # (ns, name, ip)
        self.serial = 0

    def __enter__(self):
        sh(f"ip netns add {NODE}")
        sh(in_ns(NODE, "ip link set lo up"))
        sh(in_ns(NODE, "ip link add br0 type bridge"))
        sh(in_ns(NODE, f"ip addr add {BRIDGE_IP}/24 dev br0"))
        sh(in_ns(NODE, "ip link set br0 up"))
        sh(f"ip link add {PREFIX}h type veth peer name up0 netns {NODE}")
        sh(f"ip addr add {UPLINK_HOST_IP}/30 dev {PREFIX}h")
        sh(f"ip link set {PREFIX}h up")
        sh(in_ns(NODE, f"ip addr add {UPLINK_NODE_IP}/30 dev up0"))
        sh(in_ns(NODE, "ip link set up0 up"))
        sh(in_ns(NODE, f"iptables -A INPUT -p udp --dport {DROP_PORT} -j DROP"))
        self.dnsmasq = subprocess.Popen(
            ["ip", "netns", "exec", NODE, "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
             f"--listen-address={BRIDGE_IP}", "--bind-interfaces", f"--address=/{DNS_NAME}/10.213.0.250",
             f"--pid-file={self.workdir}/dnsmasq.pid"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc):
        self.dnsmasq.terminate()
        self.dnsmasq.wait()
        for ns, _, _ in self.pods:
            sh(f"ip netns del {ns}", check=False)
        sh(f"ip netns pids {NODE} | xargs -r kill -9", check=False)
        sh(f"ip netns del {NODE}", check=False)
        sh(f"ip link del {PREFIX}h", check=False)

    def add_pod(self):
        self.serial += 1
        n = self.serial
        ns, host = f"{PREFIX}-p{n}", f"vs{n}"
        ip = f"10.213.0.{10 + n % 200}"
        sh(f"ip netns add {ns}")
        sh(in_ns(ns, "ip link set lo up"))
        sh(in_ns(NODE, f"ip link add {host} type veth peer name eth0 netns {ns}"))
        sh(in_ns(NODE, f"ip link set {host} master br0 up"))
        sh(in_ns(ns, f"ip addr add {ip}/24 dev eth0"))
        sh(in_ns(ns, "ip link set eth0 up"))
        sh(in_ns(ns, f"ip route add default via {BRIDGE_IP}"))
        pod = (ns, f"web-{n}", ip)
        self.pods.append(pod)
        return pod

    def remove_oldest(self):
        ns, name, ip = self.pods.pop(0)
        sh(f"ip netns del {ns}", check=False)
        return name


def traffic(src, dst_ip, udp=20, dns=2, drops=5):
    """TCP (connect, 32 KiB, close), UDP, DNS queries and dropped packets from pod `src`."""
    script = (
        "import socket,sys\n"
        "d=sys.argv[1]\n"
        "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"[u.sendto(b'x'*64,(d,7000)) for _ in range({udp})]\n"
        f"[u.sendto(b'drop',('{BRIDGE_IP}',{DROP_PORT})) for _ in range({drops})]\n"
        "try:\n"
        " t=socket.create_connection((d,7001),timeout=1);t.sendall(b'y'*32768);t.close()\n"
        "except OSError: pass\n")
    subprocess.run(["ip", "netns", "exec", src[0], "python3", "-c", script, dst_ip], timeout=10,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if dns:
        dns_queries(src, dns)


def dns_queries(src, n):
    """n DNS queries from pod `src`, one datagram each (no retries), answers awaited briefly."""
    script = (
        "import socket,struct,sys\n"
        "n=int(sys.argv[1])\n"
        "q=b''.join(bytes([len(p)])+p.encode() for p in sys.argv[2].split('.'))+b'\\0'+struct.pack('>HH',1,1)\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(0.5)\n"
        "for i in range(n):\n"
        " s.sendto(struct.pack('>HHHHHH',i+1,0x0100,1,0,0,0)+q,(sys.argv[3],53))\n"
        " try: s.recv(512)\n"
        " except OSError: pass\n")
    subprocess.run(["ip", "netns", "exec", src[0], "python3", "-c", script, str(n), DNS_NAME, BRIDGE_IP],
                   timeout=30 + n, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tcp_sink(pod):
    """A TCP listener on 7001 in the pod that reads and closes, until the pod goes."""
    script = ("import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
              "s.bind(('0.0.0.0',7001));s.listen(64)\n"
              "while True:\n c,_=s.accept()\n while c.recv(65536): pass\n c.close()\n")
    return subprocess.Popen(["ip", "netns", "exec", pod[0], "python3", "-c", script],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --------------------------------------------------------------- the agent

class Agent:
    def __init__(self, binary, workdir, api_port):
        self.binary, self.workdir = binary, workdir
        self.port = 19193 + os.getpid() % 500
        kubeconfig = os.path.join(workdir, "kubeconfig.yaml")
        with open(kubeconfig, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "soak",
                       "clusters": [{"name": "soak", "cluster": {"server": f"http://{UPLINK_HOST_IP}:{api_port}"}}],
                       "users": [{"name": "soak", "user": {"token": "soak"}}],
                       "contexts": [{"name": "soak", "context": {"cluster": "soak", "user": "soak"}}]}, f)
        self.cfg = {"apiServer": {"host": "127.0.0.1", "port": self.port}, "logLevel": "warn",
                    "enabledPlugin": ["packetparser", "dropreason", "dns"], "dataAggregationLevel": "high",
                    "enablePodLevel": True, "remoteContext": True, "podInterfacePrefixes": ["vs"],
                    "nodeName": NODE}
        self.kubeconfig = kubeconfig

    def __enter__(self):
        cfg_path = os.path.join(self.workdir, "agent.yaml")
        with open(cfg_path, "w") as f:
            json.dump(self.cfg, f)
        self.log_path = os.path.join(self.workdir, "agent.log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", NODE, "sh", "-c",
                                      'mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup; '
                                      'exec "$0" --config "$1" --kubeconfig "$2"', self.binary, cfg_path,
                                      self.kubeconfig], stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}; see {self.log_path}")
            if self.get("/readyz") is not None:
                return self
            time.sleep(0.5)
        raise RuntimeError(f"agent not ready within 60 s; see {self.log_path}")

    def __exit__(self, *exc):
        stop_process(self.proc)
        self.log_file.close()

    def get(self, path):
        r = subprocess.run(in_ns(NODE, f"curl -sf --max-time 10 http://127.0.0.1:{self.port}{path}"), shell=True,
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return r.stdout if r.returncode == 0 else None

    def sample(self):
        pid = self.proc.pid  # `ip netns exec` execs the agent: same pid
        s = {"t": time.time()}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "VmRSS":
                    s["rss_kib"] = int(v.split()[0])
                elif k == "Threads":
                    s["threads"] = int(v)
        fds = os.listdir(f"/proc/{pid}/fd")
        s["fds"] = len(fds)
        # What the fds are ("socket", "anon_inode:bpf-map", a file...), so a
        # change between samples can be told apart.
        kinds = collections.Counter()
        for fd in fds:
            try:
                kinds[re.sub(r":\[\d+\]$", "", os.readlink(f"/proc/{pid}/fd/{fd}"))] += 1
            except OSError:
                pass
        s["fd_kinds"] = dict(kinds)
        text = self.get("/metrics") or ""
        s["series"] = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        s["families"] = dict(collections.Counter(
            re.split(r"[{ ]", line, 1)[0] for line in text.splitlines() if line and not line.startswith("#")))
        s["lost"] = metric_sum(text, "controlplane_networkobservability_lost_events_counter")
        s["watch_errors"] = metric_sum(text, "controlplane_networkobservability_k8s_watch_errors_total")
        s["relists"] = metric_sum(text, "controlplane_networkobservability_k8s_relists_total")
        s["pod_series"] = metric_sum(text, "networkobservability_adv_forward_count", count=True)
        return s, text


def metric_sum(text, name, match="", count=False):
    total = 0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " ") and match in line:
            total += 1 if count else float(line.rsplit(" ", 1)[1])
    return total


# ------------------------------------------------------------------- main

def exact_checks(agent, node, api, n):
    """Fresh pods, churn stopped: every dropped packet and DNS query counts once."""
    a, b = node.add_pod(), node.add_pod()
    api.upsert(a[1], a[2])
    api.upsert(b[1], b[2])
    time.sleep(5)  # attach to the new veths
    _, before = agent.sample()
    drops0 = metric_sum(before, "networkobservability_drop_count", 'reason="IPTABLE_RULE_DROP"')
    dns0 = metric_sum(before, "networkobservability_dns_request_count")
    traffic(a, b[2], udp=0, dns=0, drops=n)
    dns_queries(a, n)
    time.sleep(5)
    _, after = agent.sample()
    drops = metric_sum(after, "networkobservability_drop_count", 'reason="IPTABLE_RULE_DROP"') - drops0
    dns = metric_sum(after, "networkobservability_dns_request_count") - dns0
    lost = metric_sum(after, "controlplane_networkobservability_lost_events_counter")
    return {"drops_sent": n, "drops_counted": drops, "dns_sent": n, "dns_counted": dns, "lost": lost,
            "ok": drops == n and dns == n and lost == 0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agent", default=os.path.join(ROOT, "build", "tools", "retina-agent", "retina-agent"))
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--churn", type=float, default=3, help="seconds between pod creations")
    ap.add_argument("--pods", type=int, default=6, help="live pods at a time")
    ap.add_argument("--sample", type=float, default=30, help="seconds between samples")
    ap.add_argument("--restart-every", type=float, default=120, help="seconds between API server restarts")
    ap.add_argument("--exact", type=int, default=200, help="packets and queries of the final exact checks")
    ap.add_argument("--json", help="write the samples and results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("soak: needs root")
    for tool in ("dnsmasq", "iptables"):
        if not shutil.which(tool):
            sys.exit(f"soak: needs {tool}")

    workdir = tempfile.mkdtemp(prefix="retina-soak-")
    state = ApiState(NODE)
    samples, sinks = [], {}
    result = {"ok": False}
    try:
        with Node(workdir) as node, FakeApi(state, UPLINK_HOST_IP, args.restart_every) as api_srv:
            with Agent(args.agent, workdir, api_srv.port) as agent:
                log(f"agent pid {agent.proc.pid}, API on {UPLINK_HOST_IP}:{api_srv.port}, for {args.minutes} min")
                end = time.time() + args.minutes * 60
                next_sample = time.time()
                while time.time() < end:
                    pod = node.add_pod()
                    sinks[pod[0]] = tcp_sink(pod)
                    state.upsert(pod[1], pod[2])
                    if len(node.pods) > args.pods:
                        old_ns = node.pods[0][0]
                        state.delete(node.remove_oldest())
                        p = sinks.pop(old_ns, None)
                        if p:
                            p.kill()
                            p.wait()
                    live = list(node.pods)
                    if len(live) >= 2:
                        src, dst = random.sample(live, 2)
                        traffic(src, dst[2])
                    if agent.proc.poll() is not None:
                        raise RuntimeError(f"agent exited with {agent.proc.returncode}; see {agent.log_path}")
                    if time.time() >= next_sample:
                        s, _ = agent.sample()
                        s["faults"] = dict(state.faults)
                        samples.append(s)
                        log(f"rss {s['rss_kib']} KiB fds {s['fds']} threads {s['threads']} series {s['series']} "
                            f"lost {s['lost']:.0f} watch_errors {s['watch_errors']:.0f} relists {s['relists']:.0f} "
                            f"faults {state.faults}")
                        next_sample += args.sample
                    time.sleep(args.churn)
                for p in sinks.values():
                    p.kill()
                    p.wait()
                sinks.clear()
                checks = exact_checks(agent, node, state, args.exact)
                final, _ = agent.sample()
                samples.append(final)
                first = samples[min(2, len(samples) - 1)]  # after warm-up
                result = {"start": first, "end": final, "exact": checks, "faults": dict(state.faults),
                          "pods_created": node.serial,
                          "ok": checks["ok"] and all(s["lost"] == 0 for s in samples)}
    finally:
        for p in sinks.values():
            p.kill()
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"samples": samples, "result": result}, f, indent=1)
        shutil.rmtree(workdir, ignore_errors=True)
    s, e = result.get("start"), result.get("end")
    if s and e:
        for k in ("rss_kib", "fds", "threads", "series", "lost"):
            print(f"{k:>10}: start {s[k]:>8}  end {e[k]:>8}")
        for k in ("fd_kinds", "families"):
            a, b = s.get(k, {}), e.get(k, {})
            for name in sorted(set(a) | set(b)):
                if a.get(name, 0) != b.get(name, 0):
                    print(f"  {k} {name}: {a.get(name, 0)} -> {b.get(name, 0)}")
    print(f"exact checks: {result.get('exact')}")
    print(f"faults injected: {result.get('faults')}, pods created: {result.get('pods_created')}")
    print("PASS" if result["ok"] else "FAIL")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
