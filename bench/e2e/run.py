#!/usr/bin/python3
"""End-to-end cost of the agent on the traffic it watches.

Builds a node from network namespaces -- a "node" namespace with a bridge,
two pod namespaces on veths and an uplink veth (its default route) to a
"remote" namespace -- runs the agent inside the node namespace, and measures
iperf3 TCP throughput and 64-byte UDP packet rate, pod to pod and pod to
remote, with the agent off and in each agent configuration. Each case is
repeated (--repeat): every repetition runs all tests without the agent and
with it, back to back, in alternating order, and the table shows the median
of these paired ratios with their range, so neither the drift of a shared
machine over minutes nor an order effect passes for the agent's cost.

Per case and test it prints: throughput versus baseline, agent CPU
(user+sys from /proc) per million packets, agent peak RSS, events reported
by the kernel, decoded by user space and lost (from the agent's own
counters), and each BPF program's run time per invocation (run_time_ns /
run_cnt with kernel.bpf_stats_enabled). Results are written as JSON too.

Needs root, iperf3 and a built agent (scripts/test.sh or
`cmake --build build --target retina-agent`). Uses only the standard library.

  sudo bench/e2e/run.py                           # every case, 4 pairs of 5 s runs per test
  sudo bench/e2e/run.py --duration 3 --cases high,low --tests udp
  sudo bench/e2e/run.py --json results.json --compare previous.json
  sudo bench/e2e/run.py --pin 0,1,1 --cases off,tc-nop,high,low --paths pod-pod
  sudo bench/e2e/run.py --pin 0,1,1 --cases high,retina-high,low,retina-low --retina-src ~/src/retina

--retina-src takes a checkout of github.com/microsoft/retina: the retina-*
cases build its packetparser.c as Retina does and run it with perf_reader.c,
a minimal C reader, so Retina's kernel program is measured beside the whole
retina agent on the same traffic and hooks.

--pin CLIENT,SERVER,AGENT pins the iperf3 client, the iperf3 server and the
agent (all its threads) to those CPUs and runs at least 8 pairs: on a
2-vCPU machine the scheduler moving the three around is most of the noise.
Every row shows the median ratio with a 95 % bootstrap confidence interval
of that median (resampling the pairs), so a 2 % difference can be told from
noise: it is real when the intervals of two cases do not overlap.
"""

import argparse
import contextlib
import datetime
import ipaddress
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "re2e"
NODE = f"{PREFIX}-node"
PODS = [f"{PREFIX}-p1", f"{PREFIX}-p2"]
REMOTE = f"{PREFIX}-remote"
POD_NET = "10.211.0.0/24"
BRIDGE_IP = "10.211.0.1"
POD_IPS = ["10.211.0.11", "10.211.0.12"]
UPLINK_NODE_IP = "10.212.0.1"
UPLINK_REMOTE_IP = "10.212.0.2"
AGENT_PORT = 19093
IPERF_PORT = 5201

ALL_PLUGINS = ["packetparser", "dropreason", "packetforward", "linuxutil", "dns", "tcpretrans"]

HUBBLE_PORT = 14244
HUBBLE = {"enableHubble": True, "hubbleListenAddress": f"127.0.0.1:{HUBBLE_PORT}",
          "hubbleMetricsServer": "127.0.0.1:19965"}

# name -> (agent config, description). None is the baseline (no agent).
# Keys starting with "_" are for this script: "_env" adds to the agent's
# environment, "_followers" starts that many Hubble clients.
CASES = {
    # The agent off in both runs of a pair: the table's noise floor.
    "off": (None, "no agent in either run: how far two runs of the same thing differ here"),
    # No agent; a do-nothing tc program on the hooks packetparser uses: what
    # the kernel's hook costs before any work is done in it.
    "tc-nop": ("tc-nop", "no agent; a tc program that only returns TC_ACT_UNSPEC on both pod veths, both ways"),
    "high": ({"enabledPlugin": ["packetparser"], "dataAggregationLevel": "high"},
             "packetparser, aggregation high"),
    "low": ({"enabledPlugin": ["packetparser"], "dataAggregationLevel": "low"},
            "packetparser, aggregation low (a record per packet, sent in per-CPU batches)"),
    # The same with bpf_timer turned off: a ring-buffer record reserved per
    # packet, as on a kernel before 5.15.
    "low-unbatched": ({"enabledPlugin": ["packetparser"], "dataAggregationLevel": "low",
                       "_env": {"RETINA_KERNEL_FEATURES_OFF": "bpf_timer"}},
                      "packetparser, aggregation low, a ring-buffer reservation per packet (no batches)"),
    # Hubble mode with 10 `retina observe --follow -o json` clients, each
    # taking every flow. The clients run at nice 19 on any CPU (they stand
    # for Relay or a CLI elsewhere, and are not what is measured); the
    # agent's threads serving them run at nice 10. A follower that falls
    # behind loses flows of its own (counted in hubble_lost_events_total).
    "hubble-high": ({"enabledPlugin": ["packetparser"], "dataAggregationLevel": "high", **HUBBLE, "_followers": 10},
                    "packetparser, aggregation high, Hubble mode with 10 following clients"),
    "hubble-low": ({"enabledPlugin": ["packetparser"], "dataAggregationLevel": "low", **HUBBLE, "_followers": 10},
                   "packetparser, aggregation low, Hubble mode with 10 following clients"),
    # Retina's own packetparser program (its kernel side only, built from a
    # Retina checkout given with --retina-src) drained by perf_reader.c, a
    # minimal C reader: the cost of Retina's kernel program, beside which the
    # whole retina agent should cost less.
    "retina-high": ("retina-kernel:high",
                    "Retina's packetparser.c at aggregation high, drained by a minimal C reader (no agent)"),
    "retina-low": ("retina-kernel:low",
                   "Retina's packetparser.c at aggregation low, drained by a minimal C reader (no agent)"),
    "all-high": ({"enabledPlugin": ALL_PLUGINS, "dataAggregationLevel": "high", "enablePodLevel": True,
                  "remoteContext": True},
                 "every Linux plugin and pod-level metrics, aggregation high"),
    "all-low": ({"enabledPlugin": ALL_PLUGINS, "dataAggregationLevel": "low", "enablePodLevel": True,
                 "remoteContext": True},
                "every Linux plugin and pod-level metrics, aggregation low"),
}

# Cases a run without --cases leaves out: comparisons and modes of their own.
OPT_IN = ("low-unbatched", "hubble-high", "hubble-low", "retina-high", "retina-low")

TARGETS = {  # (case, test) -> minimum ratio to baseline, from the numbers
    ("high", "tcp"): 0.98, ("high", "udp64"): 0.98, ("all-high", "tcp"): 0.98, ("all-high", "udp64"): 0.98,
    ("low", "tcp"): 0.90, ("low", "udp64"): 0.90, ("all-low", "tcp"): 0.90, ("all-low", "udp64"): 0.90,
}
BPF_TARGET_NS = {"high": 60, "low": 150}


def log(msg):
    print(f"[e2e] {msg}", file=sys.stderr, flush=True)


def sh(cmd, check=True, capture=False, timeout=None):
    r = subprocess.run(cmd, shell=True, text=True, timeout=timeout,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError(f"`{cmd}` failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout if capture else r.returncode


def in_ns(ns, cmd):
    return f"ip netns exec {ns} {cmd}"


# ------------------------------------------------------------------ topology


def stop_process(proc, grace=30):
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

class Topology:
    """node: br0 (pods) + eth0 (uplink, default route) ; pods ; remote."""

    def __init__(self):
        self.created = []

    def __enter__(self):
        self.destroy_stale()
        try:
            self.build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def build(self):
        for ns in [NODE, *PODS, REMOTE]:
            sh(f"ip netns add {ns}")
            self.created.append(ns)
            sh(in_ns(ns, "ip link set lo up"))
        sh(in_ns(NODE, "sysctl -qw net.ipv4.ip_forward=1"))
        sh(in_ns(NODE, "ip link add br0 type bridge"))
        sh(in_ns(NODE, f"ip addr add {BRIDGE_IP}/24 dev br0"))
        sh(in_ns(NODE, "ip link set br0 up"))
        for i, (pod, ip) in enumerate(zip(PODS, POD_IPS)):
            host = f"vpod{i + 1}"
            sh(in_ns(NODE, f"ip link add {host} type veth peer name eth0 netns {pod}"))
            sh(in_ns(NODE, f"ip link set {host} master br0 up"))
            sh(in_ns(pod, f"ip addr add {ip}/24 dev eth0"))
            sh(in_ns(pod, "ip link set eth0 up"))
            sh(in_ns(pod, f"ip route add default via {BRIDGE_IP}"))
        sh(in_ns(NODE, f"ip link add eth0 type veth peer name eth0 netns {REMOTE}"))
        sh(in_ns(NODE, f"ip addr add {UPLINK_NODE_IP}/30 dev eth0"))
        sh(in_ns(NODE, "ip link set eth0 up"))
        sh(in_ns(NODE, f"ip route add default via {UPLINK_REMOTE_IP}"))
        sh(in_ns(REMOTE, f"ip addr add {UPLINK_REMOTE_IP}/30 dev eth0"))
        sh(in_ns(REMOTE, "ip link set eth0 up"))
        sh(in_ns(REMOTE, f"ip route add {POD_NET} via {UPLINK_NODE_IP}"))
        # Bridged traffic must not detour through iptables if br_netfilter is loaded.
        sh(in_ns(NODE, "sysctl -qw net.bridge.bridge-nf-call-iptables=0"), check=False)
        for pod in PODS:
            sh(in_ns(pod, f"ping -c1 -W2 {UPLINK_REMOTE_IP}"), check=False)
        sh(in_ns(PODS[0], f"ping -c1 -W2 {POD_IPS[1]}"))
        sh(in_ns(PODS[0], f"ping -c1 -W2 {UPLINK_REMOTE_IP}"))

    def __exit__(self, *exc):
        for ns in reversed(self.created):
            sh(f"ip netns pids {ns} | xargs -r kill -9", check=False)
            sh(f"ip netns del {ns}", check=False)
        self.created.clear()

    @staticmethod
    def destroy_stale():
        out = sh("ip netns list", capture=True)
        for line in out.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(PREFIX + "-"):
                sh(f"ip netns pids {name} | xargs -r kill -9", check=False)
                sh(f"ip netns del {name}", check=False)


# ------------------------------------------------------------- tc-nop case

NOP_PROGRAM = """
#define SEC(n) __attribute__((section(n), used))
struct __sk_buff;
SEC("tc") int nop(struct __sk_buff *skb) { return -1; /* TC_ACT_UNSPEC */ }
char LICENSE[] SEC("license") = "GPL";
"""


class NopFilters:
    """The tc-nop case: a do-nothing program where packetparser would sit."""

    def __init__(self, workdir):
        self.obj = os.path.join(workdir, "nop.o")
        src = os.path.join(workdir, "nop.bpf.c")
        with open(src, "w") as f:
            f.write(NOP_PROGRAM)
        clang = shutil.which("clang") or shutil.which("clang-14") or "clang"
        sh(f"{clang} -target bpf -O2 -c {src} -o {self.obj}")

    def __enter__(self):
        for dev in ("vpod1", "vpod2"):
            sh(in_ns(NODE, f"tc qdisc add dev {dev} clsact"))
            for d in ("ingress", "egress"):
                sh(in_ns(NODE, f"tc filter add dev {dev} {d} bpf da obj {self.obj} sec tc"))
        return None  # measured like the agent-off runs

    def __exit__(self, *exc):
        for dev in ("vpod1", "vpod2"):
            sh(in_ns(NODE, f"tc qdisc del dev {dev} clsact"), check=False)


# ------------------------------------------------ Retina's kernel program

RETINA_ARCH = {"x86_64": ("amd64", "x86"), "aarch64": ("arm64", "arm64")}


def build_retina_kernel(src, level, workdir):
    """Retina's packetparser.c compiled as Retina compiles it (its include
    layout; dynamic.h as its Generate step writes it: every packet looked at,
    no conntrack metrics, the aggregation level asked for), from a copy of
    the checkout's sources so the checkout is left as it was."""
    plugin = os.path.join(src, "pkg", "plugin")
    pp_src = os.path.join(plugin, "packetparser", "_cprog")
    if not os.path.isfile(os.path.join(pp_src, "packetparser.c")):
        raise RuntimeError(f"--retina-src {src}: no pkg/plugin/packetparser/_cprog/packetparser.c there")
    out = os.path.join(workdir, f"retina-{level}")
    obj = os.path.join(out, "packetparser.o")
    if os.path.exists(obj):  # built for an earlier repetition
        return obj
    pp = os.path.join(out, "packetparser")
    ct = os.path.join(out, "conntrack")
    shutil.copytree(pp_src, pp)
    shutil.copytree(os.path.join(plugin, "conntrack", "_cprog"), ct)
    with open(os.path.join(pp, "dynamic.h"), "w") as f:
        f.write(f"#define BYPASS_LOOKUP_IP_OF_INTEREST 1\n#define DATA_AGGREGATION_LEVEL {1 if level == 'high' else 0}\n")
    with open(os.path.join(ct, "dynamic.h"), "w") as f:
        f.write("")  # conntrack metrics off, Retina's default
    go_arch, our_arch = RETINA_ARCH.get(platform.machine(), ("amd64", "x86"))
    lib = os.path.join(plugin, "lib")
    includes = [os.path.join(lib, f"_{go_arch}"), os.path.join(ROOT, "bpf", "vmlinux", our_arch),  # vmlinux.h
                os.path.join(lib, "common", "libbpf", "_src"), "/usr/include/bpf",  # bpf_helpers.h
                os.path.join(lib, "common", "libbpf", "_include", "linux"),
                os.path.join(lib, "common", "libbpf", "_include", "uapi", "linux"),
                os.path.join(lib, "common", "libbpf", "_include", "asm"),
                os.path.join(plugin, "filter", "_cprog"), ct]
    clang = shutil.which("clang") or shutil.which("clang-14") or "clang"
    sh(f"{clang} -target bpf -Wall -Wno-parentheses -D__TARGET_ARCH_{our_arch} -g -O2 -c {pp}/packetparser.c -o {obj} "
       + " ".join(f"-I{d}" for d in includes if os.path.isdir(d)))
    return obj


def build_perf_reader(workdir):
    built = os.path.join(ROOT, "build", "bench", "perf_reader")  # the bench build makes it
    if os.path.exists(built):
        return built
    exe = os.path.join(workdir, "perf_reader")
    if not os.path.exists(exe):
        cc = shutil.which("cc") or shutil.which("gcc") or "cc"
        sh(f"{cc} -O2 -o {exe} {os.path.join(ROOT, 'bench', 'e2e', 'perf_reader.c')} "
           "$(pkg-config --cflags --libs libbpf)")
    return exe


class RetinaKernel:
    """A retina-* case: Retina's packetparser program, attached where Retina
    attaches it (both pod veths; at low also the node's default-route
    interface), drained by perf_reader. It answers what measure() asks of an
    agent: CPU, memory and event counts."""

    def __init__(self, src, level, workdir, cpu=None):
        self.obj = build_retina_kernel(src, level, workdir)
        self.reader = build_perf_reader(workdir)
        self.level, self.workdir, self.cpu = level, workdir, cpu
        self.stats_path = os.path.join(workdir, f"retina-{level}.stats")
        self.log_path = os.path.join(workdir, f"retina-{level}.log")
        self.states = {"retina packetparser.c": "running"}
        self.proc = None

    def __enter__(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.stats_path)
        args = [self.reader, self.obj, self.stats_path, "vpod1,vpod2"] + (["eth0"] if self.level == "low" else [])
        pin = [] if self.cpu is None else ["taskset", "-c", str(self.cpu)]
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([*pin, "ip", "netns", "exec", NODE, *args], stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while not os.path.exists(self.stats_path):
            if self.proc.poll() is not None or time.time() > deadline:
                stop_process(self.proc)
                with open(self.log_path) as f:
                    raise RuntimeError(f"perf_reader did not start: {f.read().strip()}")
            time.sleep(0.1)
        self.pid = self.proc.pid
        time.sleep(1.0)
        return self

    def __exit__(self, *exc):
        stop_process(self.proc)
        self.log_file.close()
        if self.proc.returncode not in (0, None) and not exc[0]:
            raise RuntimeError(f"perf_reader exited with {self.proc.returncode}; see {self.log_path}")

    def cpu_ticks(self):
        return Agent.cpu_ticks(self)

    def status(self):
        return Agent.status(self)

    def resident(self):
        return Agent.resident(self)

    def counters(self):
        with open(self.stats_path) as f:
            kv = dict(line.split() for line in f if line.strip())
        samples, lost = float(kv["samples"]), float(kv["lost"])
        return {"reports": samples + lost, "kernel_ringbuf_full": lost, "parsed": samples, "lost": lost,
                "sampled_out": 0}


# ---------------------------------------------------------------------- agent

def endpoints_file(path, count, as_json=False):
    """count pods (plus the real ones) so the cache holds what a busy node's would;
    YAML, or JSON (which the agent parses without yaml-cpp's node tree)."""
    eps = [{"kind": "pod", "namespace": "bench", "name": f"{pod}-0", "ips": [ip], "labels": {"app": pod},
            "workload": {"kind": "Deployment", "name": pod}, "node": NODE, "zone": "zone-a"}
           for pod, ip in zip(PODS, POD_IPS)]
    eps.append({"kind": "external", "name": "remote", "ips": [UPLINK_REMOTE_IP]})
    base = int(ipaddress.ip_address("10.64.0.0"))
    for i in range(count):
        eps.append({"kind": "pod", "namespace": f"ns-{i % 100}", "name": f"pod-{i}",
                    "ips": [str(ipaddress.ip_address(base + i))], "labels": {"app": f"app-{i % 500}"},
                    "workload": {"kind": "Deployment", "name": f"app-{i % 500}"}, "node": f"node-{i % 50}"})
    with open(path, "w") as f:
        if as_json:
            json.dump({"endpoints": eps}, f)
            return
        f.write("endpoints:\n")
        for e in eps:  # block style, one field a line, as people write it
            f.write("  - " + "\n    ".join(f"{k}: {yaml_flow(v)}" for k, v in e.items()) + "\n")


def yaml_flow(v):
    if isinstance(v, list):
        return "[" + ", ".join(v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {x}" for k, x in v.items()) + "}"
    return v


class Agent:
    def __init__(self, binary, case, cfg, workdir, endpoints, cpu=None):
        self.binary, self.case, self.workdir, self.cpu = binary, case, workdir, cpu
        self.cfg = dict(cfg)
        self.env = dict(os.environ, **self.cfg.pop("_env", {}))
        self.followers = self.cfg.pop("_followers", 0)
        self.clients = []
        self.cfg.update({"apiServer": {"host": "127.0.0.1", "port": AGENT_PORT}, "logLevel": "info",
                         "endpointsFile": endpoints,
                         "podInterfacePrefixes": ["vpod"]})
        self.proc = None

    def __enter__(self):
        cfg_path = os.path.join(self.workdir, f"agent-{self.case}.yaml")
        with open(cfg_path, "w") as f:
            json.dump(self.cfg, f)  # JSON is YAML
        self.log_path = os.path.join(self.workdir, f"agent-{self.case}.log")
        self.log_file = open(self.log_path, "w")
        # `ip netns exec` mounts a fresh /sys, which hides the cgroup2 tree
        # the dns plugin attaches to: mount it again in that mount namespace.
        pin = [] if self.cpu is None else ["taskset", "-c", str(self.cpu)]
        self.proc = subprocess.Popen([*pin, "ip", "netns", "exec", NODE, "sh", "-c",
                                      'mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup; '
                                      'exec "$0" --config "$1"', self.binary, cfg_path],
                                     stdout=self.log_file, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}; see {self.log_path}")
            try:
                h = json.loads(self.http("/healthz", fail=False))  # 503 when a plugin failed
                states = {p["name"]: p["state"] for p in h.get("plugins", [])}
                pending = [n for n, s in states.items() if s == "pending"]
                if self.http("/readyz") is not None and not pending:
                    self.states = states
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"agent not ready within 60 s; see {self.log_path}")
        # The agent binary is exec'd by `ip netns exec` (and taskset): same pid.
        self.pid = self.proc.pid
        not_running = {n: s for n, s in self.states.items() if s != "running"}
        if not_running:
            log(f"case {self.case}: plugins not running: {not_running} (see {self.log_path})")
        cli = os.path.join(os.path.dirname(os.path.dirname(self.binary)), "retina", "retina")
        for _ in range(self.followers):
            self.clients.append(subprocess.Popen(
                ["nice", "-n", "19", "ip", "netns", "exec", NODE, cli, "observe", "--server", f"127.0.0.1:{HUBBLE_PORT}",
                 "--follow", "-o", "json"], stdout=subprocess.DEVNULL, stderr=self.log_file))
        time.sleep(1.0)  # attach to the pod veths, first metrics poll
        gone = [c.returncode for c in self.clients if c.poll() is not None]
        if gone:
            raise RuntimeError(f"{len(gone)} Hubble followers exited ({gone}); see {self.log_path}")
        return self

    def __exit__(self, *exc):
        # Every follower must have stayed connected to the end.
        gone = sum(1 for c in self.clients if c.poll() is not None)
        for c in self.clients:
            stop_process(c)
        self.clients = []
        if self.proc:
            stop_process(self.proc)
        self.log_file.close()
        if gone and not exc[0]:
            raise RuntimeError(f"{gone} Hubble followers exited during the run; see {self.log_path}")

    def http(self, path, fail=True):
        # The agent listens inside the node namespace: reach it from there.
        flags = "-sf" if fail else "-s"
        out = subprocess.run(in_ns(NODE, f"curl {flags} --max-time 5 http://127.0.0.1:{AGENT_PORT}{path}"),
                             shell=True, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if out.returncode != 0:
            raise OSError(f"GET {path} failed")
        return out.stdout

    def cpu_ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def status(self):
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
        return out

    def resident(self):
        """Where the resident pages are, from /proc/<pid>/smaps: heap and
        other private anonymous memory, BPF maps mapped into the agent (the
        ring buffers), thread stacks and the pages of each file (the
        executable and its shared libraries), in bytes."""
        kinds, files, name = {"anon": 0, "bpf maps": 0, "stacks": 0, "files": 0}, {}, None
        with open(f"/proc/{self.pid}/smaps") as f:
            for line in f:
                head = line.split()
                if head and "-" in head[0] and not head[0].endswith(":"):
                    name = head[5] if len(head) > 5 else ""
                elif head and head[0] == "Rss:":
                    kb = int(head[1]) * 1024
                    if name.startswith("anon_inode:bpf"):
                        kinds["bpf maps"] += kb
                    elif name.startswith("[stack"):
                        kinds["stacks"] += kb
                    elif name.startswith("/"):
                        kinds["files"] += kb
                        files[name] = files.get(name, 0) + kb
                    else:
                        kinds["anon"] += kb
        kinds["top files"] = dict(sorted(files.items(), key=lambda kv: -kv[1])[:8])
        kinds["mapped files"] = len(files)
        return kinds

    def counters(self):
        """The agent's own event accounting, summed over labels."""
        text = self.http("/metrics")
        c = {"reports": 0, "kernel_ringbuf_full": 0, "parsed": 0, "lost": 0, "sampled_out": 0}  # parsed: packetparser
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, rest = line.partition("{") if "{" in line.split(" ")[0] else (line.split(" ")[0], "", "")
            try:
                value = float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
            if name == "controlplane_networkobservability_bpf_events_total":
                if 'stat="reports"' in rest:
                    c["reports"] += value
                elif 'stat="ringbuf_full"' in rest:
                    c["kernel_ringbuf_full"] += value
                elif 'stat="sampled_out"' in rest:
                    c["sampled_out"] += value
            elif name == "controlplane_networkobservability_parsed_packets_counter":
                c["parsed"] += value
            elif name == "controlplane_networkobservability_lost_events_counter":
                c["lost"] += value
        return c


# ----------------------------------------------------------------- measuring

# Program names (as the kernel keeps them, 15 characters) this script
# profiles: retina's, and Retina's packetparser programs for the retina-* cases.
BPF_PROGRAMS = ("retina_", "endpoint_ingres", "endpoint_egress", "host_ingress_fi", "host_egress_fil")


def bpf_prog_stats():
    """{name: (run_time_ns, run_cnt)} summed over every loaded program named in BPF_PROGRAMS."""
    out = sh("bpftool -j prog show", capture=True)
    stats = {}
    for p in json.loads(out or "[]"):
        name = p.get("name", "")
        if not name.startswith(BPF_PROGRAMS):
            continue
        t, n = stats.get(name, (0, 0))
        stats[name] = (t + p.get("run_time_ns", 0), n + p.get("run_cnt", 0))
    return stats


def veth_packets():
    """Packets through the pod veths' host sides (rx + tx), as the node sees them."""
    out = sh(in_ns(NODE, "cat /proc/net/dev"), capture=True)
    total = 0
    for line in out.splitlines():
        if ":" not in line:
            continue
        ifname, data = line.split(":", 1)
        if ifname.strip().startswith("vpod"):
            f = data.split()
            total += int(f[1]) + int(f[9])
    return total


def pinned(cpu, cmd):
    """cmd run on one CPU (and every thread it starts), or as is."""
    return cmd if cpu is None else f"taskset -c {cpu} {cmd}"


def iperf(test, path, duration, streams, pin=None):
    server_ns = PODS[1] if path == "pod-pod" else REMOTE
    server_ip = POD_IPS[1] if path == "pod-pod" else UPLINK_REMOTE_IP
    client_cpu, server_cpu = (pin[0], pin[1]) if pin else (None, None)
    srv = subprocess.Popen(pinned(server_cpu, in_ns(server_ns, f"iperf3 -s -1 -p {IPERF_PORT}")), shell=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if sh(in_ns(server_ns, f"ss -ltnH sport = :{IPERF_PORT}"), capture=True).strip():
                break
            time.sleep(0.1)
        if test == "tcp":
            args = f"-P {streams}"
        else:  # 64-byte datagrams as fast as one sender can go
            args = "-u -l 64 -b 0"
        out = sh(pinned(client_cpu, in_ns(PODS[0], f"iperf3 -c {server_ip} -p {IPERF_PORT} -J -t {duration} {args}")),
                 capture=True, timeout=duration + 60)
    finally:
        srv.wait(timeout=30) if srv.poll() is None else None
    r = json.loads(out)
    end = r["end"]
    if test == "tcp":
        s = end["sum_received"]
        return {"value": s["bits_per_second"], "unit": "bit/s", "seconds": s["seconds"]}
    s = end["sum"]
    received = s["packets"] - s["lost_packets"]
    return {"value": received / s["seconds"], "unit": "packet/s", "seconds": s["seconds"],
            "sent_packets": s["packets"], "lost_packets": s["lost_packets"]}


def set_bpf_stats(on):
    sh(f"sysctl -qw kernel.bpf_stats_enabled={1 if on else 0}")


def measure(test, path, args, agent=None, profile=False):
    """One iperf3 run. With profile, kernel.bpf_stats_enabled is on during
    it: the programs' run time is recorded, at the price of two clock reads
    per program run, so ratios come from runs without it."""
    before = {}
    if agent:
        before = {"cpu": agent.cpu_ticks(), "ctr": agent.counters(), "bpf": bpf_prog_stats(), "pk": veth_packets()}
    if profile:
        set_bpf_stats(True)
    try:
        res = iperf(test, path, args.duration, args.streams, args.pin)
    finally:
        if profile:
            set_bpf_stats(False)
    if not agent:
        return res
    time.sleep(1.2)  # let the agent drain and poll the kernel counters
    after = {"cpu": agent.cpu_ticks(), "ctr": agent.counters(), "bpf": bpf_prog_stats(), "pk": veth_packets()}
    hz = os.sysconf("SC_CLK_TCK")
    packets = after["pk"] - before["pk"]
    cpu_s = (after["cpu"] - before["cpu"]) / hz
    res["veth_packets"] = packets
    res["agent_cpu_seconds"] = cpu_s
    res["agent_cpu_ms_per_mpkt"] = cpu_s * 1e3 / (packets / 1e6) if packets else None
    res["events"] = {k: after["ctr"][k] - before["ctr"][k] for k in after["ctr"]}
    # Whether the reader keeps up: records the kernel submitted per second of
    # traffic against packetparser records user space decoded (the agent
    # drained for 1.2 s more, so "read" counts what it caught up on).
    res["records_per_s"] = {"produced": res["events"]["reports"] / res["seconds"],
                            "read": res["events"]["parsed"] / res["seconds"]}
    bpf = {}
    for name, (t, n) in after["bpf"].items():
        t0, n0 = before["bpf"].get(name, (0, 0))
        if n - n0 > 0:
            bpf[name] = {"runs": n - n0, "ns_per_run": (t - t0) / (n - n0)}
    res["bpf"] = bpf
    st = agent.status()
    res["agent_rss_bytes"] = st.get("VmRSS")
    res["agent_peak_rss_bytes"] = st.get("VmHWM")
    return res


# ---------------------------------------------------------------- reporting

def fmt_rate(r):
    if r["unit"] == "bit/s":
        return f"{r['value'] / 1e9:7.2f} Gbit/s"
    return f"{r['value'] / 1e6:7.3f} Mpkt/s"


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def bootstrap_ci(xs, rounds=2000, level=0.95):
    """Confidence interval of the median of xs, by resampling xs with
    replacement (seeded: the same runs give the same interval)."""
    if len(xs) < 2:
        return (xs[0], xs[0]) if xs else (None, None)
    rng = random.Random(12)
    meds = sorted(median(rng.choices(xs, k=len(xs))) for _ in range(rounds))
    lo = meds[int((1 - level) / 2 * rounds)]
    hi = meds[min(rounds - 1, int((1 + level) / 2 * rounds))]
    return lo, hi


def summarize(path, test, pairs, profile, target):
    """One table row from the repetitions of one test: medians, the
    agent-side counters summed over the repetitions, and the BPF run times
    of the profiling run."""
    ratios = [x["ratio"] for x in pairs]
    agents = [x["agent"] for x in pairs]
    row = {"path": path, "test": test, "unit": agents[0]["unit"],
           "baseline": median([x["baseline"]["value"] for x in pairs]),
           "agent": median([a["value"] for a in agents]),
           "ratio": median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios), "target_ratio": target,
           "ratio_ci95": bootstrap_ci(ratios),
           "agent_cpu_ms_per_mpkt": None, "agent_rss_bytes": None, "agent_peak_rss_bytes": None,
           "events": None, "bpf": {}, "runs": pairs, "profile_run": profile}
    if "events" not in agents[0]:  # cases without an agent: nothing more to report
        return row
    cpu = [a["agent_cpu_ms_per_mpkt"] for a in agents if a["agent_cpu_ms_per_mpkt"] is not None]
    row.update({"agent_cpu_ms_per_mpkt": median(cpu) if cpu else None,
                "agent_rss_bytes": max(a["agent_rss_bytes"] for a in agents),
                "agent_peak_rss_bytes": max(a["agent_peak_rss_bytes"] for a in agents),
                "events": {k: sum(a["events"][k] for a in agents) for k in agents[0]["events"]},
                "records_per_s": {k: median([a["records_per_s"][k] for a in agents]) for k in ("read", "produced")},
                "bpf": profile["bpf"]})
    return row


def fmt_value(v, unit):
    return fmt_rate({"value": v, "unit": unit})


def fmt_ci(ci):
    lo, hi = ci
    return f"{lo * 100:5.1f}-{hi * 100:4.1f}%" if lo is not None else f"{'-':>11}"


def print_case(name, desc, rows, idle_rss):
    rss = f"  (idle RSS {idle_rss / 2**20:.1f} MiB)" if idle_rss else ""
    print(f"\n== {name}: {desc}{rss}")
    hdr = (f"{'path':10} {'test':5} {'baseline':>14} {'agent':>14} {'ratio':>7} {'95% CI':>11} {'min-max':>11} {'target':>6} "
           f"{'cpu ms/Mpkt':>11} {'RSS':>8} {'peak':>8} {'records':>9} {'lost':>5} {'read/produced k/s':>17}  bpf ns/run")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        if r["events"] is None:
            print(f"{r['path']:10} {r['test']:5} {fmt_value(r['baseline'], r['unit']):>14} "
                  f"{fmt_value(r['agent'], r['unit']):>14} {r['ratio'] * 100:6.1f}% {fmt_ci(r['ratio_ci95'])} "
                  f"{r['ratio_min'] * 100:5.1f}-{r['ratio_max'] * 100:4.1f}%")
            continue
        ev = r["events"]
        bpf = ", ".join(f"{k.replace('retina_', '')}={v['ns_per_run']:.0f}" for k, v in sorted(r["bpf"].items()))
        t = r["target_ratio"]
        cpu = r["agent_cpu_ms_per_mpkt"]
        print(f"{r['path']:10} {r['test']:5} {fmt_value(r['baseline'], r['unit']):>14} "
              f"{fmt_value(r['agent'], r['unit']):>14} {r['ratio'] * 100:6.1f}% {fmt_ci(r['ratio_ci95'])} "
              f"{r['ratio_min'] * 100:5.1f}-{r['ratio_max'] * 100:4.1f}% {(f'{t * 100:.0f}%' if t else '-'):>6} "
              f"{(f'{cpu:.1f}' if cpu is not None else '-'):>11} {r['agent_rss_bytes'] / 2**20:6.1f}Mi "
              f"{r['agent_peak_rss_bytes'] / 2**20:6.1f}Mi {ev['reports']:>9.0f} {ev['lost']:>5.0f} "
              f"{r['records_per_s']['read'] / 1e3:>8.1f}/{r['records_per_s']['produced'] / 1e3:<8.1f}  {bpf}")


def compare(prev_path, result):
    with open(prev_path) as f:
        prev = json.load(f)
    old = {(c["case"], r["path"], r["test"]): r["ratio"] for c in prev.get("cases", []) for r in c["rows"]}
    print(f"\n== ratio change versus {prev_path}")
    for c in result["cases"]:
        for r in c["rows"]:
            k = (c["case"], r["path"], r["test"])
            if k in old:
                print(f"{k[0]:9} {k[1]:8} {k[2]:5} {old[k] * 100:6.1f}% -> {r['ratio'] * 100:6.1f}%")


def memory(args, work):
    """Idle and start-up peak RSS of the agent with every plugin and the
    endpoints file in each format, the median of --repeat starts."""
    cfg = dict(CASES["all-high"][0])
    rows = []
    for fmt in ("yaml", "json"):
        eps = os.path.join(work, f"endpoints.{fmt}")
        endpoints_file(eps, args.endpoints, as_json=fmt == "json")
        idle, peak = [], []
        for rep in range(args.repeat):
            with Agent(args.agent, f"memory-{fmt}", cfg, work, eps, args.pin[2] if args.pin else None) as agent:
                time.sleep(3)  # past start-up: the first scrapes and sweeps ran
                st = agent.status()
                where = agent.resident()
            idle.append(st["VmRSS"])
            peak.append(st["VmHWM"])
            log(f"memory {fmt} #{rep + 1}: idle {st['VmRSS'] / 2**20:.1f} MiB, peak {st['VmHWM'] / 2**20:.1f} MiB; "
                + ", ".join(f"{k} {v / 2**20:.1f}" for k, v in where.items() if isinstance(v, int) and k != "mapped files")
                + f" MiB; {where['mapped files']} files, most: "
                + ", ".join(f"{os.path.basename(k)} {v / 2**20:.1f}" for k, v in where["top files"].items()))
        rows.append({"format": fmt, "idle_rss_bytes": median(idle), "peak_rss_bytes": median(peak),
                     "idle_runs": idle, "peak_runs": peak})
        print(f"memory, every plugin, {args.endpoints} endpoints ({fmt}): idle RSS {median(idle) / 2**20:.1f} MiB "
              f"({min(idle) / 2**20:.1f}-{max(idle) / 2**20:.1f}), start-up peak {median(peak) / 2**20:.1f} MiB "
              f"({min(peak) / 2**20:.1f}-{max(peak) / 2**20:.1f}), {args.repeat} starts")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default=os.path.join(ROOT, "build/tools/retina-agent/retina-agent"))
    ap.add_argument("--cases", default=",".join(c for c in CASES if c not in OPT_IN),
                    help=f"comma-separated: {', '.join(CASES)} (default: all but {', '.join(OPT_IN)})")
    ap.add_argument("--tests", default="tcp,udp64", help="tcp, udp64")
    ap.add_argument("--paths", default="pod-pod,pod-remote", help="pod-pod, pod-remote")
    ap.add_argument("--duration", type=int, default=5, help="seconds per iperf3 run")
    ap.add_argument("--repeat", type=int, default=4, help="baseline/agent pairs per case, in alternating order "
                    "(medians are shown)")
    ap.add_argument("--streams", type=int, default=4, help="parallel TCP streams")
    ap.add_argument("--endpoints", type=int, default=10000, help="endpoints cached by the agent")
    ap.add_argument("--pin", help="CLIENT,SERVER,AGENT: pin the iperf3 client, server and the agent to these CPUs "
                    "(and run at least 8 pairs)")
    ap.add_argument("--retina-src", help="a checkout of github.com/microsoft/retina, for the retina-high and "
                    "retina-low cases (its packetparser.c is built from it)")
    ap.add_argument("--memory", action="store_true", help="only measure the agent's idle and start-up peak RSS "
                    "with every plugin, for a YAML and a JSON endpoints file")
    ap.add_argument("--json", help="write the results here (default: build/bench-e2e-<time>.json)")
    ap.add_argument("--compare", help="an earlier JSON result to compare ratios with")
    args = ap.parse_args()

    if args.pin:
        try:
            args.pin = [int(x) for x in args.pin.split(",")]
        except ValueError:
            args.pin = []
        ncpu = os.cpu_count() or 1
        if len(args.pin) != 3 or not all(0 <= c < ncpu for c in args.pin):
            sys.exit(f"bench/e2e/run.py: --pin takes CLIENT,SERVER,AGENT CPU numbers below {ncpu}")
        args.repeat = max(args.repeat, 8)
    if os.geteuid() != 0:
        sys.exit("bench/e2e/run.py: needs root (network namespaces, BPF)")
    for tool in ("iperf3", "bpftool", "curl", "ip", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench/e2e/run.py: {tool} not found (scripts/install-deps.sh installs it)")
    if not os.access(args.agent, os.X_OK):
        sys.exit(f"bench/e2e/run.py: no agent at {args.agent}; build it first")
    cases = [c for c in args.cases.split(",") if c]
    tests = [t for t in args.tests.split(",") if t]
    paths = [p for p in args.paths.split(",") if p]
    for c in cases:
        if c not in CASES:
            sys.exit(f"unknown case {c!r}; known: {', '.join(CASES)}")
        if c.startswith("retina-") and not args.retina_src:
            sys.exit(f"case {c} needs --retina-src (a checkout of github.com/microsoft/retina)")
    for t in tests:
        if t not in ("tcp", "udp64"):
            sys.exit(f"unknown test {t!r}")
    for p in paths:
        if p not in ("pod-pod", "pod-remote"):
            sys.exit(f"unknown path {p!r}")

    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        stats_before = f.read().strip()
    set_bpf_stats(False)
    # SIGTERM/SIGINT unwind through the context managers, so nothing stays behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    result = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(), "kernel": platform.release(),
              "cpus": os.cpu_count(), "args": vars(args), "cases": []}
    keys = [(p, t) for p in paths for t in tests]
    try:
        with tempfile.TemporaryDirectory(prefix="retina-e2e-") as work, Topology():
            if args.memory:
                result["memory"] = memory(args, work)
                cases = []
            eps = os.path.join(work, "endpoints.yaml")
            endpoints_file(eps, args.endpoints)
            for c in cases:
                cfg, desc = CASES[c]
                # Each repetition measures every test without the agent and
                # then with it, back to back: the ratio of a pair is immune
                # to the drift of a shared VM over minutes.
                pairs = {k: [] for k in keys}
                profiles = {}
                idle, states = {}, {}
                for rep in range(args.repeat):
                    # Alternate which half of the pair runs first: on this
                    # kind of machine the second of two identical runs is
                    # often slower, and a fixed order would charge that to
                    # the agent.
                    agent_first = rep % 2 == 1
                    base, runs = {}, {}

                    def baseline_half():
                        for p, t in keys:
                            base[(p, t)] = measure(t, p, args)
                            log(f"{c} #{rep + 1} baseline {p} {t}: {fmt_rate(base[(p, t)])}")

                    if not agent_first:
                        baseline_half()
                    if cfg == "tc-nop":
                        under_test = NopFilters(work)
                    elif isinstance(cfg, str) and cfg.startswith("retina-kernel:"):
                        under_test = RetinaKernel(args.retina_src, cfg.split(":", 1)[1], work,
                                                  args.pin[2] if args.pin else None)
                    elif cfg:
                        under_test = Agent(args.agent, c, cfg, work, eps, args.pin[2] if args.pin else None)
                    else:
                        under_test = contextlib.nullcontext()
                    with under_test as agent:
                        if agent and not idle:
                            idle, states = agent.status(), agent.states
                        for p, t in keys:
                            runs[(p, t)] = measure(t, p, args, agent)
                            log(f"{c} #{rep + 1} agent    {p} {t}: {fmt_rate(runs[(p, t)])}")
                        if agent and rep == args.repeat - 1:  # one more run of each test for the BPF run times
                            for p, t in keys:
                                prof = measure(t, p, args, agent, profile=True)
                                profiles[(p, t)] = prof
                                log(f"{c} profile {p} {t}: " + ", ".join(
                                    f"{k}={v['ns_per_run']:.0f} ns" for k, v in sorted(prof["bpf"].items())))
                    if agent_first:
                        baseline_half()
                    for k in keys:
                        ratio = runs[k]["value"] / base[k]["value"]
                        log(f"{c} #{rep + 1} {k[0]} {k[1]}: {ratio * 100:.1f}%")
                        pairs[k].append({"baseline": base[k], "agent": runs[k], "ratio": ratio,
                                         "agent_first": agent_first})
                rows = [summarize(p, t, pairs[(p, t)], profiles.get((p, t)), TARGETS.get((c, t))) for p, t in keys]
                print_case(c, desc, rows, idle.get("VmRSS", 0))
                result["cases"].append({"case": c, "description": desc, "config": cfg, "plugin_states": states,
                                        "idle_rss_bytes": idle.get("VmRSS"), "rows": rows})
            if cases:
                print(f"\nBPF targets: packetparser <= {BPF_TARGET_NS['high']} ns per run at high, "
                      f"<= {BPF_TARGET_NS['low']} ns at low (pp_ing / pp_egr above)")
    finally:
        sh(f"sysctl -qw kernel.bpf_stats_enabled={stats_before}", check=False)

    out = args.json or os.path.join(ROOT, "build", f"bench-e2e-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"results: {out}")
    if args.compare:
        compare(args.compare, result)


if __name__ == "__main__":
    main()
