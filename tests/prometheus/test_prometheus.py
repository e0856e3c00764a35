"""A real Prometheus (Debian's) scrapes the agent, in Hubble mode, on a
network-namespace "node" while traffic runs, with Retina's scrape jobs
(deploy/prometheus: the agent's metrics port and the hubble_* port), and
every PromQL expression of the shipped dashboards (Hubble's included) and
rules is evaluated through Prometheus' HTTP API: each returns data, or is
listed below as needing a cluster (kube-state-metrics series).

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


def wait(pred, timeout, what, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    tail = "\n".join(log.read_text().splitlines()[-30:]) if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}" + (f"; {log.name} tail:\n{tail}" if tail else ""))


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


HUBBLE_JOB = "networkobservability-hubble"


def scrape_config(work, agent_port, hubble_port):
    """Retina's shipped scrape jobs, their pod discovery replaced by a file
    whose targets carry the labels Kubernetes' pod discovery gives the
    agent's pod (Debian's Prometheus is built without Kubernetes discovery);
    the relabel rules are the shipped ones, unchanged but for the hubble
    job's fixed port 9965, which is hubble_port here."""
    shipped = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yaml").read_text())
    cfg = copy.deepcopy(shipped)
    cfg["global"]["scrape_interval"] = "1s"
    cfg["global"]["evaluation_interval"] = "1s"
    cfg["rule_files"] = [str(ROOT / "deploy/prometheus/rules.yaml")]
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert list(jobs) == ["retina-pods", HUBBLE_JOB]
    for j in jobs.values():
        del j["kubernetes_sd_configs"]
    (port_rule,) = [r for r in jobs[HUBBLE_JOB]["relabel_configs"] if r.get("target_label") == "__address__"]
    assert port_rule["replacement"] == "$1:9965"
    port_rule["replacement"] = f"$1:{hubble_port}"
    # The agent's pod, as pod discovery sees it: one target per declared
    # container port, "retina" only (deploy/manifests/daemonset.yaml).
    pod = {"__meta_kubernetes_namespace": "kube-system",
           "__meta_kubernetes_pod_label_k8s_app": "retina",
           "__meta_kubernetes_pod_label_app_kubernetes_io_name": "retina",
           "__meta_kubernetes_pod_container_name": "retina",
           "__meta_kubernetes_pod_annotation_prometheus_io_port": str(agent_port),
           "__meta_kubernetes_pod_node_name": NODE_NAME}
    targets = work / "targets.json"
    targets.write_text(json.dumps([
        {"targets": [f"127.0.0.1:{agent_port}"],
         "labels": {**pod, "__meta_kubernetes_pod_container_port_name": "retina"}},
        # Another kube-system pod's container on the node: Retina's rules keep
        # only the container named "retina" and the pods labeled k8s-app=retina.
        {"targets": ["127.0.0.1:1"],
         "labels": {"__meta_kubernetes_namespace": "kube-system", "__meta_kubernetes_pod_label_k8s_app": "kube-dns",
                    "__meta_kubernetes_pod_container_name": "coredns",
                    "__meta_kubernetes_pod_node_name": NODE_NAME}},
    ]))
    for j in jobs.values():
        j["file_sd_configs"] = [{"files": [str(targets)], "refresh_interval": "1s"}]
    path = work / "prometheus.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_shipped_rules_and_config_check():
    assert subprocess.run(["promtool", "check", "rules", str(ROOT / "deploy/prometheus/rules.yaml")]).returncode == 0
    with tempfile.TemporaryDirectory() as d:
        cfg = scrape_config(pathlib.Path(d), 10093, 19965)
        r = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_dashboards_and_rules_return_data():
    for tool in ("prometheus", "promtool", "dnsmasq", "dig", "curl", "nsenter", "iptables"):
        assert shutil.which(tool), f"{tool} is not installed (scripts/install-deps.sh)"
    with netns_node("prom", NODE_IP, PEER_IP) as n:
        check_dashboards(n)


def free_ports(n, count):
    """Loopback ports free in the node's namespace (all held until all are picked)."""
    code = ("import socket; s = [socket.socket() for _ in range({})]; "
            "[x.bind(('127.0.0.1', 0)) for x in s]; print(*[x.getsockname()[1] for x in s])").format(count)
    return [int(p) for p in sh(n.in_node(f'/usr/bin/python3 -c "{code}"')).split()]


def check_dashboards(n):
    work = n.work
    agent = os.environ.get("RETINA_AGENT", str(ROOT / "build/tools/retina-agent/retina-agent"))
    assert os.access(agent, os.X_OK), f"no agent binary at {agent} (set RETINA_AGENT)"
    agent_port, prom_port = 10093, 19090  # inside the node's own namespace
    # Hubble's Observer and hubble_* metrics, away from their defaults 4244 / 9965.
    grpc_port, hubble_port = free_ports(n, 2)

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
        # Hubble mode with the default hubbleMetrics, which the Hubble dashboards read.
        "enableHubble": True,
        "hubbleListenAddress": f"127.0.0.1:{grpc_port}",
        "hubbleMetricsServer": f"127.0.0.1:{hubble_port}",
        "metricsConfiguration": {"contextOptions": [
            {"metricName": m, "sourceLabels": ["namespace", "podname", "workload"]}
            for m in ("forward", "drop", "dns", "tcpflags", "tcpretrans")]},
    }))
    n.start(n.in_node(f"{agent} --config {work}/config.yaml --health-probe-bind-address=127.0.0.1:18081"),
            "agent.log")
    wait(lambda: "msg=plugins" in (work / "agent.log").read_text(), 60, "the agent's plugins", work / "agent.log")
    cfg = scrape_config(work, agent_port, hubble_port)
    assert subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True).returncode == 0
    n.start(n.in_node(f"prometheus --config.file={cfg} --storage.tsdb.path={work}/tsdb "
                      f"--web.listen-address=127.0.0.1:{prom_port} --log.level=warn"), "prometheus.log")
    wait(lambda: subprocess.run(n.in_node(f"curl -sf http://127.0.0.1:{prom_port}/-/ready"), shell=True,
                                capture_output=True).returncode == 0, 60, "Prometheus ready")

    # Traffic while Prometheus scrapes: pings, DNS answers and NXDOMAINs (over
    # UDP and TCP), UDP to a port the server's iptables drops and to one the
    # node's drops on the way out, and TCP SYNs the server drops (retransmitted).
    n.start(f"ip netns exec {n.peer} dnsmasq --no-daemon --no-resolv --no-hosts --port=53 "
                 f"--listen-address={PEER_IP} --bind-interfaces --address=/ok.test/10.1.2.3 --local=/test/",
            "dnsmasq.log")
    sh(f"ip netns exec {n.peer} iptables -A INPUT -p udp --dport 7501 -j DROP")
    sh(f"ip netns exec {n.peer} iptables -A INPUT -p tcp --dport 7502 -j DROP")
    # A drop on the client's way out: the Hubble outgoing-drop panels.
    sh(n.in_node("iptables -A OUTPUT -p udp --dport 7503 -j DROP"))
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        sh(n.in_node(f"ping -q -c 5 -i 0.05 {PEER_IP}"))
        subprocess.run(n.in_node(f"dig +tries=1 +time=1 @{PEER_IP} ok.test A"), shell=True, capture_output=True)
        subprocess.run(n.in_node(f"dig +tries=1 +time=1 @{PEER_IP} missing.test AAAA"), shell=True, capture_output=True)
        # Over TCP: an answered handshake (SYN, SYN-ACK, FIN) for the TCP flag panels.
        subprocess.run(n.in_node(f"dig +tcp +tries=1 +time=1 @{PEER_IP} ok.test A"), shell=True, capture_output=True)
        subprocess.run(n.in_node(f"bash -c 'echo x > /dev/udp/{PEER_IP}/7501'"), shell=True, capture_output=True)
        subprocess.run(n.in_node(f"bash -c 'echo x > /dev/udp/{PEER_IP}/7503'"), shell=True, capture_output=True)
        subprocess.run(n.in_node(f"timeout 2 bash -c 'echo > /dev/tcp/{PEER_IP}/7502'"), shell=True, capture_output=True)

    # Each job's one target is up under Retina's relabeling: instance is the
    # node name, and only the agent's pod is kept.
    active = json.loads(get(n, prom_port, "/api/v1/targets", {"state": "active"}))["data"]["activeTargets"]
    for job in ("retina-pods", HUBBLE_JOB):
        up = query(n, prom_port, f'up{{job="{job}"}}')
        assert [(r["metric"]["instance"], r["value"][1]) for r in up] == [(NODE_NAME, "1")], (job, up)
        assert len([t for t in active if t["scrapePool"] == job]) == 1, active
    # The hubble job keeps only hubble_* series.
    names = {r["metric"]["__name__"] for r in query(n, prom_port, f'{{job="{HUBBLE_JOB}"}}')} - {
        "up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
        "scrape_series_added"}
    assert names and all(x.startswith("hubble_") for x in names), names

    def evaluate():
        missing, cluster_only = [], []
        for where, expr in expressions():
            e = substitute(expr)
            result = query(n, prom_port, e)
            if NEEDS_CLUSTER.search(e):
                assert not result, f"{where}: {e} has data without a cluster?"
                cluster_only.append(where)
            elif not result:
                missing.append(f"{where}: {e}")
        return missing, cluster_only

    # A loaded machine can miss a scrape: rate() over a window needs two
    # samples, so give the panels a few more scrape intervals before failing.
    deadline = time.monotonic() + 30
    missing, cluster_only = evaluate()
    while missing and time.monotonic() < deadline:
        time.sleep(2)
        missing, cluster_only = evaluate()
    print(f"\nneeds a cluster (kube-state-metrics, an API server): {len(cluster_only)}")
    for w in cluster_only:
        print("  " + w)
    log = (work / "agent.log").read_text()
    assert not missing, "no data:\n  " + "\n  ".join(missing) + "\n\nagent log tail:\n" + "\n".join(
        log.splitlines()[-30:])
    # Retina's values on the way: the iptables drops as IPTABLE_RULE_DROP, direction unknown.
    drops = query(n, prom_port, 'networkobservability_drop_count{reason="IPTABLE_RULE_DROP"}')
    assert drops and all(r["metric"]["direction"] == "unknown" for r in drops), drops
