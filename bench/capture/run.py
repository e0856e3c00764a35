#!/usr/bin/python3
"""Capturing a pod's veth under a 64-byte UDP flood: retina versus tcpdump.

A "node" network namespace holds the host side of one pod's veth; the pod
namespace floods 64-byte frames (iperf3 -u -l 22 -b 0) to an iperf3 server
in the node namespace. Each run measures the pod's packet rate from the
veth's kernel counters over the same window, three ways, in alternating
order within each repetition:

  none     no capture
  retina   a retina-agent capture of the veth (POST /captures, interfaces
           [veth]), read back from its status: packets written and kernel
           drops (pcap_stats)
  tcpdump  tcpdump -i veth -w FILE on the same veth; its exit summary gives
           packets captured and dropped by the kernel

and prints per case the pod's packet rate, its ratio to no capture, the
packets written per second and the kernel drops (median of the repetitions).

Needs root, iperf3, tcpdump and a built agent
(cmake --build build --target retina-agent). Standard library only.

  bench/capture/run.py                   # 3 repetitions of 5 s
  bench/capture/run.py --duration 3 --repeat 1
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PID = os.getpid()
NODE = f"capb-node-{PID}"
POD = f"capb-pod-{PID}"
VETH = f"capb{PID}"[:15]
NODE_IP, POD_IP = "10.231.0.1", "10.231.0.2"


def sh(cmd, check=True, capture=True):
    return subprocess.run(cmd, shell=True, check=check, text=True,
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None).stdout


def setup():
    sh(f"ip netns add {NODE}")
    sh(f"ip netns add {POD}")
    sh(f"ip -n {NODE} link set lo up")
    sh(f"ip -n {POD} link set lo up")
    sh(f"ip -n {NODE} link add {VETH} type veth peer name eth0 netns {POD}")
    sh(f"ip -n {NODE} addr add {NODE_IP}/24 dev {VETH}")
    sh(f"ip -n {POD} addr add {POD_IP}/24 dev eth0")
    sh(f"ip -n {NODE} link set {VETH} up")
    sh(f"ip -n {POD} link set eth0 up")


def teardown():
    sh(f"ip netns del {POD}", check=False)
    sh(f"ip netns del {NODE}", check=False)


def rx_packets():
    out = sh(f"ip -n {NODE} -s -j link show {VETH}")
    return json.loads(out)[0]["stats64"]["rx"]["packets"]


def free_port():
    # Ports are per network namespace; pick one nobody uses in the node.
    while True:
        port = 20000 + (os.urandom(2)[0] << 8 | os.urandom(1)[0]) % 20000
        if str(port) not in sh(f"ip netns exec {NODE} ss -Htuln"):
            return port


def flood(seconds, port):
    """Runs the flood; returns packets/s the veth received from the pod."""
    before = rx_packets()
    t0 = time.monotonic()
    sh(f"ip netns exec {POD} iperf3 -c {NODE_IP} -p {port} -u -l 22 -b 0 -t {seconds} --connect-timeout 3000")
    elapsed = time.monotonic() - t0
    return (rx_packets() - before) / elapsed, elapsed


class Agent:
    def __init__(self, binary, tmp):
        self.port = free_port()
        self.root = os.path.join(tmp, "captures")
        cfg = os.path.join(tmp, "agent.yaml")
        with open(cfg, "w") as f:
            f.write(f"apiServer:\n  host: 127.0.0.1\n  port: {self.port}\nenabledPlugin: [linuxutil]\n"
                    f"enableCapture: true\ncaptureOutputRoot: {self.root}\nnodeName: bench\n"
                    f"captureMaxDuration: 10m\n")
        self.log = open(os.path.join(tmp, "agent.log"), "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", NODE, binary, "--config", cfg],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if self.call("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("agent did not become ready")

    def call(self, method, path, body=None):
        # The API listens inside the node namespace: talk to it from there.
        data = "" if body is None else json.dumps(body)
        out = sh(f"ip netns exec {NODE} curl -s -o /dev/stdout -w '\\n%{{http_code}}' -X {method} "
                 f"-H 'Content-Type: application/json' --data-binary @- http://127.0.0.1:{self.port}{path} <<'EOF'\n{data}\nEOF",
                 check=False)
        text, _, code = out.rpartition("\n")
        return int(code or 0), text

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


def run_none(args, port, _ctx):
    pps, _ = flood(args.duration, port)
    return {"pps": pps, "written_pps": 0, "dropped": 0}


def run_retina(args, port, ctx):
    agent = ctx["agent"]
    ctx["n"] += 1
    name = f"bench-{ctx['n']}"
    spec = {"name": name, "spec": {"captureConfiguration": {
        "captureOption": {"duration": "5m", "interfaces": [VETH], "maxCaptureSize": 1000},
        "includeMetadata": False}}}
    code, text = agent.call("POST", "/captures", spec)
    if code != 201:
        raise RuntimeError(f"POST /captures: {code} {text}")
    pps, elapsed = flood(args.duration, port)
    agent.call("DELETE", f"/captures/{name}")
    for _ in range(300):
        code, text = agent.call("GET", f"/captures/{name}")
        st = json.loads(text)
        if st["state"] in ("Completed", "Cancelled", "Failed"):
            break
        time.sleep(0.1)
    agent.call("DELETE", f"/captures/{name}")
    for f in os.listdir(os.path.join(agent.root, "captures")):
        os.unlink(os.path.join(agent.root, "captures", f))
    return {"pps": pps, "written_pps": st["packets"] / elapsed, "dropped": st["kernelDropped"]}


def run_tcpdump(args, port, ctx):
    out = os.path.join(ctx["tmp"], "tcpdump.pcap")
    proc = subprocess.Popen(["ip", "netns", "exec", NODE, "tcpdump", "-i", VETH, "-w", out, "-n"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # tcpdump has no readiness signal; it prints "listening on" first
    pps, elapsed = flood(args.duration, port)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    captured = int(re.search(r"(\d+) packets captured", err).group(1))
    dropped = int(re.search(r"(\d+) packets dropped by kernel", err).group(1))
    os.unlink(out)
    return {"pps": pps, "written_pps": captured / elapsed, "dropped": dropped}


CASES = {"none": run_none, "retina": run_retina, "tcpdump": run_tcpdump}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--agent", default=os.path.join(ROOT, "build/tools/retina-agent/retina-agent"))
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    for tool in ("iperf3", "tcpdump", "curl"):
        if not shutil.which(tool):
            sys.exit(f"needs {tool}")
    tmp = tempfile.mkdtemp(prefix="retina-capbench-")
    setup()
    server = None
    agent = None
    try:
        port = free_port()
        server = subprocess.Popen(["ip", "netns", "exec", NODE, "iperf3", "-s", "-p", str(port), "-B", NODE_IP],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        agent = Agent(args.agent, tmp)
        ctx = {"agent": agent, "tmp": tmp, "n": 0}
        results = {c: [] for c in CASES}
        order = list(CASES)
        for r in range(args.repeat):
            for case in (order if r % 2 == 0 else list(reversed(order))):
                results[case].append(CASES[case](args, port, ctx))
        base = statistics.median(x["pps"] for x in results["none"])
        print(f"64-byte UDP flood into a pod veth, {args.duration} s x {args.repeat} (median)")
        print(f"{'case':<9} {'pod pps':>12} {'vs none':>8} {'written/s':>12} {'kernel drops':>13}")
        summary = {}
        for case, runs in results.items():
            pps = statistics.median(x["pps"] for x in runs)
            written = statistics.median(x["written_pps"] for x in runs)
            drops = statistics.median(x["dropped"] for x in runs)
            summary[case] = {"pps": pps, "ratio": pps / base, "written_pps": written, "dropped": drops, "runs": runs}
            print(f"{case:<9} {pps:>12,.0f} {pps / base:>8.3f} {written:>12,.0f} {drops:>13,.0f}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(summary, f, indent=1)
    finally:
        if agent:
            agent.stop()
        if server:
            server.terminate()
            server.wait()
        teardown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
