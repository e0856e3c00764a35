"""A "node" network namespace with an uplink veth to a peer namespace and a
default route through it, and processes started in them, all removed after:
the privileged Python tests' shared harness."""
import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile

import pytest


def privileged():
    if os.geteuid() == 0:
        return
    if os.environ.get("RETINA_REQUIRE_PRIVILEGED") == "1":
        pytest.fail("not root, and RETINA_REQUIRE_PRIVILEGED=1")
    pytest.skip("needs root (network namespaces, BPF)")


def sh(cmd):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout


class Node:
    def __init__(self, tag, node_ip, peer_ip):
        pid = os.getpid()
        self.name, self.peer = f"rtk-{tag}-{pid}-node", f"rtk-{tag}-{pid}-peer"
        self.up, self.down = f"r{tag[:2]}u{pid}", f"r{tag[:2]}d{pid}"
        self.node_ip, self.peer_ip = node_ip, peer_ip
        self.work = pathlib.Path(tempfile.mkdtemp(prefix=f"retina-{tag}-{pid}-"))
        self.procs = []

    def in_node(self, cmd):
        # nsenter keeps /sys and the cgroup mounts (ip netns exec would remount /sys).
        return f"nsenter --net=/run/netns/{self.name} {cmd}"

    def start(self, cmd, log):
        """Runs `cmd` as the leader of its own process group."""
        p = subprocess.Popen("exec " + cmd, shell=True, stdout=open(self.work / log, "w"),
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def log(self, name):
        return (self.work / name).read_text()

    def setup(self):
        for ns in (self.name, self.peer):
            sh(f"ip netns add {ns}")
            sh(f"ip -n {ns} link set lo up")
            # No IPv6: router and neighbour solicitations would add traffic of their own.
            sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        sh(f"ip link add {self.up} netns {self.name} type veth peer name {self.down} netns {self.peer}")
        sh(f"ip -n {self.name} addr add {self.node_ip}/30 dev {self.up} && ip -n {self.name} link set {self.up} up")
        sh(f"ip -n {self.peer} addr add {self.peer_ip}/30 dev {self.down} && ip -n {self.peer} link set {self.down} up")
        sh(f"ip -n {self.name} route add default via {self.peer_ip}")

    def teardown(self):
        # Signal each whole group, so nothing a shell started outlives the test.
        for p in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for ns in (self.name, self.peer):
            subprocess.run(f"ip netns del {ns}", shell=True, capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)


@contextlib.contextmanager
def node(tag, node_ip, peer_ip):
    privileged()
    n = Node(tag, node_ip, peer_ip)
    try:
        n.setup()
        yield n
    finally:
        n.teardown()
