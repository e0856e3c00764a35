"""Privileged tests: real BPF, real attach, real traffic between network
namespaces. Without the privilege they skip with the reason printed; with
RETINA_REQUIRE_PRIVILEGED=1 (CI) they fail instead, as the C++ suite does."""
import ctypes
import json
import os
import random
import shutil
import string
import subprocess
import sys

import pytest

import retina

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def privilege_problem() -> str:
    why = retina._retina._privilege_problem()
    if not why and shutil.which("ip") is None:
        why = "no `ip` command (iproute2)"
    if not why and shutil.which("tc") is None:
        why = "no `tc` command (iproute2)"
    return why


def required() -> bool:
    return os.environ.get("RETINA_REQUIRE_PRIVILEGED", "") not in ("", "0")


@pytest.fixture
def privileged():
    why = privilege_problem()
    if why:
        if required():
            pytest.fail(f"cannot run: {why}")
        print(f"SKIPPED: {why}", file=sys.stderr)
        pytest.skip(why)


def sh(*args: str, check: bool = True) -> str:
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


class Node:
    """A bridge in a fresh "node" namespace with two pod namespaces joined
    to it by veth pairs; the calling thread enters the node namespace (so
    an engine started from it sees only these interfaces) until close().
    Names carry the pid and a random tag; everything is deleted on close."""

    def __init__(self):
        tag = f"{os.getpid() % 1000000}{''.join(random.choices(string.ascii_lowercase, k=2))}"
        self.prefix = f"rpy{tag}"[:12]              # host-side veth names start with this
        self.node_ns = f"retina-py-node-{tag}"
        self.pods = [f"retina-py-a-{tag}", f"retina-py-b-{tag}"]
        self.host_ifs = [self.prefix + "a", self.prefix + "b"]
        self.ips = ["10.251.0.2", "10.251.0.3"]
        self.bridge = f"rbr{tag}"[:15]             # not under the prefix: not a pod veth
        self._orig = None
        self._made = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self):
        for ns in [self.node_ns] + self.pods:
            sh("ip", "netns", "add", ns)
            self._made.append(ns)
            # No IPv6: no router solicitations, DAD or MLD on the wire.
            for key in ("all", "default"):
                sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
        self._orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.node_ns}", os.O_RDONLY)
        try:
            setns(fd)
        finally:
            os.close(fd)
        sh("ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "link", "set", self.bridge, "up")
        for pod, host_if, ip in zip(self.pods, self.host_ifs, self.ips):
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", pod)
            sh("ip", "link", "set", host_if, "master", self.bridge, "up")
            sh("ip", "-n", pod, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", pod, "link", "set", "lo", "up")
            sh("ip", "-n", pod, "link", "set", "eth0", "up")
        # Permanent neighbours: no ARP, so the only packets are the test's own.
        macs = [json.loads(sh("ip", "-n", pod, "-j", "link", "show", "eth0"))[0]["address"] for pod in self.pods]
        for i, pod in enumerate(self.pods):
            j = 1 - i
            sh("ip", "-n", pod, "neigh", "replace", self.ips[j], "lladdr", macs[j], "dev", "eth0", "nud", "permanent")
        self.ifindex = [json.loads(sh("ip", "-j", "link", "show", h))[0]["ifindex"] for h in self.host_ifs]

    def run_in(self, i: int, code: str, **kw) -> subprocess.Popen:
        """Starts Debian's python3 with `code` inside pod i's namespace."""
        return subprocess.Popen(["ip", "netns", "exec", self.pods[i], sys.executable, "-c", code],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    def tc_filters(self, host_if: str) -> str:
        return sh("tc", "filter", "show", "dev", host_if, "ingress") + sh("tc", "filter", "show", "dev", host_if,
                                                                          "egress")

    def close(self):
        if self._orig is not None:
            setns(self._orig)
            os.close(self._orig)
            self._orig = None
        # Pod namespaces first (their veth pairs go with them), the node last.
        for ns in reversed(self._made):
            sh("ip", "netns", "del", ns, check=False)
        self._made = []


@pytest.fixture
def node(privileged):
    n = Node()
    try:
        yield n
    finally:
        n.close()
