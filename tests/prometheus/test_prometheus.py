"""A real Prometheus (Debian's) scrapes the agent on a network-namespace
"node" while traffic runs, with Retina's scrape job (deploy/prometheus), and
every PromQL expression of the shipped dashboards and rules is evaluated
through Prometheus' HTTP API: each returns data, or is listed below as
needing a cluster (kube-state-metrics series).

Needs root (namespaces, BPF); skips otherwise, fails instead with
RETINA_REQUIRE_PRIVILEGED=1. RETINA_AGENT is the agent binary."""
import copy
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("gen_dashboards", ROOT / "scripts/gen-dashboards.py")
gen_dashboards = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_dashboards)

# Expressions on kube-state-metrics series: no data without a cluster.
NEEDS_CLUSTER = re.compile(r"\bkube_[a-z_]+")
# Dashboard variables as "All" selects them.
VARIABLES = {"$cluster": ".*", "$instance": ".*", "$namespace": ".*", "$pod": ".*",
             "$__rate_interval": "1m", "$__range": "5m"}
TAG = str(os.getpid())
NODE, PEER = f"rtk-prom-{TAG}-node", f"rtk-prom-{TAG}-peer"
UP, DOWN = f"rpu{TAG}", f"rpd{TAG}"
NODE_IP, PEER_IP = "10.127.0.1", "10.127.0.2"
NODE_NAME = "prom-node"


def privileged():
    if os.geteuid() == 0:
        return
    if os.environ.get("RETINA_REQUIRE_PRIVILEGED") == "1":
        pytest.fail("not root, and RETINA_REQUIRE_PRIVILEGED=1")
    pytest.skip("needs root (network namespaces, BPF)")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True, **kw).stdout


def in_node(cmd):
    # nsenter keeps /sys and the cgroup mounts (ip netns exec would remount /sys).
    return f"nsenter --net=/run/netns/{NODE} {cmd}"


def get(port, path, params=None):
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    out = subprocess.run(in_node(f"curl -sS --max-time 10 '{url}'"), shell=True, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def query(port, expr):
    body = json.loads(get(port, "/api/v1/query", {"query": expr}))
    assert body["status"] == "success", body
    return body["data"]["result"]


# An alert's threshold is what it decides on; the series under it must exist.
THRESHOLD = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*[0-9.]+\s*$")


def expressions():
    """(where, expr) of every dashboard target and every rule (alerts without
    their threshold comparison)."""
    out = []
    for name, d in gen_dashboards.DASHBOARDS.items():
        for p in d["panels"]:
            for t in p["targets"]:
                out.append((f"{name}: {p['title']}", t["expr"]))
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yaml").read_text())
    for g in rules["groups"]:
        for r in g["rules"]:
            out.append((f"rules.yaml: {r.get('alert') or r.get('record')}", THRESHOLD.sub("", r["expr"])))
    return out


def substitute(expr):
    for k in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(k, VARIABLES[k])
    return expr


def scrape_config(work, agent_port):
    """Retina's shipped scrape job, its pod discovery replaced by a file whose
    targets carry the labels Kubernetes' pod discovery gives the agent's pod
    (Debian's Prometheus is built without Kubernetes discovery); the
    relabel rules are the shipped ones, unchanged."""
    shipped = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yaml").read_text())
    cfg = copy.deepcopy(shipped)
    cfg["global"]["scrape_interval"] = "1s"
    cfg["global"]["evaluation_interval"] = "1s"
    cfg["rule_files"] = [str(ROOT / "deploy/prometheus/rules.yaml")]
    (job,) = cfg["scrape_configs"]
    assert job["relabel_configs"] == shipped["scrape_configs"][0]["relabel_configs"]
    del job["kubernetes_sd_configs"]
    targets = work / "targets.json"
    targets.write_text(json.dumps([
        # The agent's pod, as pod discovery sees it (one target per container port).
        {"targets": [f"127.0.0.1:{agent_port}"],
         "labels": {"__meta_kubernetes_pod_container_name": "retina",
                    "__meta_kubernetes_pod_annotation_prometheus_io_port": str(agent_port),
                    "__meta_kubernetes_pod_node_name": NODE_NAME}},
        # Another pod's container on the node: Retina's rules keep only "retina".
        {"targets": ["127.0.0.1:1"],
         "labels": {"__meta_kubernetes_pod_container_name": "coredns",
                    "__meta_kubernetes_pod_node_name": NODE_NAME}},
    ]))
    job["file_sd_configs"] = [{"files": [str(targets)], "refresh_interval": "1s"}]
    path = work / "prometheus.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def node():
    privileged()
    for tool in ("prometheus", "promtool", "dnsmasq", "dig", "curl", "nsenter", "iptables"):
        assert shutil.which(tool), f"{tool} is not installed (scripts/install-deps.sh)"
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"retina-prom-{TAG}-"))
    procs = []
    try:
        for ns in (NODE, PEER):
            sh(f"ip netns add {ns}")
            sh(f"ip -n {ns} link set lo up")
        sh(f"ip link add {UP} netns {NODE} type veth peer name {DOWN} netns {PEER}")
        sh(f"ip -n {NODE} addr add {NODE_IP}/30 dev {UP} && ip -n {NODE} link set {UP} up")
        sh(f"ip -n {PEER} addr add {PEER_IP}/30 dev {DOWN} && ip -n {PEER} link set {DOWN} up")
        sh(f"ip -n {NODE} route add default via {PEER_IP}")
        yield work, procs
    finally:
        # Each process leads its own group (start()): signal the whole group,
        # so nothing a shell started outlives the test.
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for ns in (NODE, PEER):
            subprocess.run(f"ip netns del {ns}", shell=True, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def start(procs, cmd, log):
    p = subprocess.Popen("exec " + cmd, shell=True, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    procs.append(p)
    return p


def test_shipped_rules_and_config_check():
    assert subprocess.run(["promtool", "check", "rules", str(ROOT / "deploy/prometheus/rules.yaml")]).returncode == 0
    with tempfile.TemporaryDirectory() as d:
        cfg = scrape_config(pathlib.Path(d), 10093)
        r = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_dashboards_and_rules_return_data(node):
    work, procs = node
    agent = os.environ.get("RETINA_AGENT", str(ROOT / "build/tools/retina-agent/retina-agent"))
    assert os.access(agent, os.X_OK), f"no agent binary at {agent} (set RETINA_AGENT)"
    agent_port, prom_port = 10093, 19090  # inside the node's own namespace

    # The peer is a pod "server" with a DNS server; the node's address a pod "client".
    (work / "endpoints.yaml").write_text(yaml.safe_dump({"endpoints": [
        {"kind": "pod", "namespace": "demo", "name": "server", "ips": [PEER_IP],
         "workload": {"kind": "Deployment", "name": "server"}},
        {"kind": "pod", "namespace": "demo", "name": "client", "ips": [NODE_IP]},
    ]}))
    (work / "config.yaml").write_text(yaml.safe_dump({
        "apiServer": {"host": "127.0.0.1", "port": agent_port},
        "metricsIntervalDuration": "1s",
        "enablePodLevel": True,
        "dataAggregationLevel": "low",
        "endpointsFile": str(work / "endpoints.yaml"),
        "nodeName": NODE_NAME,
        "metricsConfiguration": {"contextOptions": [
            {"metricName": m, "sourceLabels": ["namespace", "podname", "workload"]}
            for m in ("forward", "drop", "dns", "tcpflags", "tcpretrans")]},
    }))
    start(procs, in_node(f"{agent} --config {work}/config.yaml --health-probe-bind-address=127.0.0.1:18081"),
          work / "agent.log")
    wait(lambda: "msg=plugins" in (work / "agent.log").read_text(), 60, "the agent's plugins")
    cfg = scrape_config(work, agent_port)
    assert subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True).returncode == 0
    start(procs, in_node(f"prometheus --config.file={cfg} --storage.tsdb.path={work}/tsdb "
                         f"--web.listen-address=127.0.0.1:{prom_port} --log.level=warn"), work / "prometheus.log")
    wait(lambda: subprocess.run(in_node(f"curl -sf http://127.0.0.1:{prom_port}/-/ready"), shell=True,
                                capture_output=True).returncode == 0, 60, "Prometheus ready")

    # Traffic while Prometheus scrapes: pings, DNS answers and NXDOMAINs, UDP
    # to a port the server's iptables drops, and TCP SYNs it drops (retransmitted).
    start(procs, f"ip netns exec {PEER} dnsmasq --no-daemon --no-resolv --no-hosts --port=53 "
                 f"--listen-address={PEER_IP} --bind-interfaces --address=/ok.test/10.1.2.3 --local=/test/",
          work / "dnsmasq.log")
    sh(f"ip netns exec {PEER} iptables -A INPUT -p udp --dport 7501 -j DROP")
    sh(f"ip netns exec {PEER} iptables -A INPUT -p tcp --dport 7502 -j DROP")
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        sh(in_node(f"ping -q -c 5 -i 0.05 {PEER_IP}"))
        subprocess.run(in_node(f"dig +tries=1 +time=1 @{PEER_IP} ok.test A"), shell=True, capture_output=True)
        subprocess.run(in_node(f"dig +tries=1 +time=1 @{PEER_IP} missing.test AAAA"), shell=True, capture_output=True)
        subprocess.run(in_node(f"bash -c 'echo x > /dev/udp/{PEER_IP}/7501'"), shell=True, capture_output=True)
        subprocess.run(in_node(f"timeout 2 bash -c 'echo > /dev/tcp/{PEER_IP}/7502'"), shell=True, capture_output=True)

    # The target is up under Retina's relabeling: instance is the node name,
    # and only the container named "retina" is scraped.
    up = query(prom_port, 'up{job="retina-pods"}')
    assert [(r["metric"]["instance"], r["value"][1]) for r in up] == [(NODE_NAME, "1")], up

    missing, cluster_only = [], []
    for where, expr in expressions():
        e = substitute(expr)
        result = query(prom_port, e)
        if NEEDS_CLUSTER.search(e):
            assert not result, f"{where}: {e} has data without a cluster?"
            cluster_only.append(where)
        elif not result:
            missing.append(f"{where}: {e}")
    print(f"\nneeds a cluster (kube-state-metrics): {len(cluster_only)}")
    for w in cluster_only:
        print("  " + w)
    log = (work / "agent.log").read_text()
    assert not missing, "no data:\n  " + "\n  ".join(missing) + "\n\nagent log tail:\n" + "\n".join(
        log.splitlines()[-30:])
    # Retina's values on the way: the iptables drops as IPTABLE_RULE_DROP, direction unknown.
    drops = query(prom_port, 'networkobservability_drop_count{reason="IPTABLE_RULE_DROP"}')
    assert drops and all(r["metric"]["direction"] == "unknown" for r in drops), drops
