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
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest
import yaml

from netns_node import node as netns_node, sh

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("gen_dashboards", ROOT / "scripts/gen-dashboards.py")
gen_dashboards = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_dashboards)

# Expressions on kube-state-metrics series, and the API-server latency
# (tests/prometheus/test_apiserver_latency.py checks it against a stand-in
# API server): no data without a cluster.
NEEDS_CLUSTER = re.compile(r"\bkube_[a-z_]+|_node_apiserver_")
# Dashboard variables as "All" selects them.
VARIABLES = {"$cluster": ".*", "$instance": ".*", "$namespace": ".*", "$pod": ".*",
             "$__rate_interval": "1m", "$__range": "5m"}
NODE_IP, PEER_IP = "10.127.0.1", "10.127.0.2"
NODE_NAME = "prom-node"


def get(n, port, path, params=None):
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    out = subprocess.run(n.in_node(f"curl -sS --max-time 10 '{url}'"), shell=True, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def query(n, port, expr):
    body = json.loads(get(n, port, "/api/v1/query", {"query": expr}))
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


def test_shipped_rules_and_config_check():
    assert subprocess.run(["promtool", "check", "rules", str(ROOT / "deploy/prometheus/rules.yaml")]).returncode == 0
    with tempfile.TemporaryDirectory() as d:
        cfg = scrape_config(pathlib.Path(d), 10093)
        r = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_dashboards_and_rules_return_data():
    for tool in ("prometheus", "promtool", "dnsmasq", "dig", "curl", "nsenter", "iptables"):
        assert shutil.which(tool), f"{tool} is not installed (scripts/install-deps.sh)"
    with netns_node("prom", NODE_IP, PEER_IP) as n:
        check_dashboards(n)


def check_dashboards(n):
    work = n.work
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
    n.start(n.in_node(f"{agent} --config {work}/config.yaml --health-probe-bind-address=127.0.0.1:18081"),
            "agent.log")
    wait(lambda: "msg=plugins" in (work / "agent.log").read_text(), 60, "the agent's plugins")
    cfg = scrape_config(work, agent_port)
    assert subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True).returncode == 0
    n.start(n.in_node(f"prometheus --config.file={cfg} --storage.tsdb.path={work}/tsdb "
                      f"--web.listen-address=127.0.0.1:{prom_port} --log.level=warn"), "prometheus.log")
    wait(lambda: subprocess.run(n.in_node(f"curl -sf http://127.0.0.1:{prom_port}/-/ready"), shell=True,
                                capture_output=True).returncode == 0, 60, "Prometheus ready")

    # Traffic while Prometheus scrapes: pings, DNS answers and NXDOMAINs, UDP
    # to a port the server's iptables drops, and TCP SYNs it drops (retransmitted).
    n.start(f"ip netns exec {n.peer} dnsmasq --no-daemon --no-resolv --no-hosts --port=53 "
                 f"--listen-address={PEER_IP} --bind-interfaces --address=/ok.test/10.1.2.3 --local=/test/",
            "dnsmasq.log")
    sh(f"ip netns exec {n.peer} iptables -A INPUT -p udp --dport 7501 -j DROP")
    sh(f"ip netns exec {n.peer} iptables -A INPUT -p tcp --dport 7502 -j DROP")
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        sh(n.in_node(f"ping -q -c 5 -i 0.05 {PEER_IP}"))
        subprocess.run(n.in_node(f"dig +tries=1 +time=1 @{PEER_IP} ok.test A"), shell=True, capture_output=True)
        subprocess.run(n.in_node(f"dig +tries=1 +time=1 @{PEER_IP} missing.test AAAA"), shell=True, capture_output=True)
        subprocess.run(n.in_node(f"bash -c 'echo x > /dev/udp/{PEER_IP}/7501'"), shell=True, capture_output=True)
        subprocess.run(n.in_node(f"timeout 2 bash -c 'echo > /dev/tcp/{PEER_IP}/7502'"), shell=True, capture_output=True)

    # The target is up under Retina's relabeling: instance is the node name,
    # and only the container named "retina" is scraped.
    up = query(n, prom_port, 'up{job="retina-pods"}')
    assert [(r["metric"]["instance"], r["value"][1]) for r in up] == [(NODE_NAME, "1")], up

    missing, cluster_only = [], []
    for where, expr in expressions():
        e = substitute(expr)
        result = query(n, prom_port, e)
        if NEEDS_CLUSTER.search(e):
            assert not result, f"{where}: {e} has data without a cluster?"
            cluster_only.append(where)
        elif not result:
            missing.append(f"{where}: {e}")
    print(f"\nneeds a cluster (kube-state-metrics, an API server): {len(cluster_only)}")
    for w in cluster_only:
        print("  " + w)
    log = (work / "agent.log").read_text()
    assert not missing, "no data:\n  " + "\n  ".join(missing) + "\n\nagent log tail:\n" + "\n".join(
        log.splitlines()[-30:])
    # Retina's values on the way: the iptables drops as IPTABLE_RULE_DROP, direction unknown.
    drops = query(n, prom_port, 'networkobservability_drop_count{reason="IPTABLE_RULE_DROP"}')
    assert drops and all(r["metric"]["direction"] == "unknown" for r in drops), drops
