#!/usr/bin/env python3
"""Writes the Grafana dashboards (deploy/grafana/*.json) and the ConfigMap
Grafana's dashboard sidecar loads them from, from the panel tables below: one
place for every PromQL expression, which tests/prometheus evaluates against
a real Prometheus scraping the agent.

    scripts/gen-dashboards.py           # write
    scripts/gen-dashboards.py --check   # exit 1 naming every file that differs
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy/grafana"

# Every selector carries the cluster and node variables; `cluster` comes from
# Prometheus relabeling (absent series match ".*").
S = 'cluster=~"$cluster", instance=~"$instance"'
POD = S + ', namespace=~"$namespace", podname=~"$pod"'
R = "$__rate_interval"

# (title, unit, [(expr, legend)]) per panel; rows of two.
CLUSTERS = [
    ("Forwarded packets by direction", "pps",
     [(f"sum by (direction) (rate(networkobservability_forward_count{{{S}}}[{R}]))", "{{direction}}")]),
    ("Forwarded bytes by direction", "Bps",
     [(f"sum by (direction) (rate(networkobservability_forward_bytes{{{S}}}[{R}]))", "{{direction}}")]),
    ("Forwarded bytes by node", "Bps",
     [(f"sum by (instance) (rate(networkobservability_forward_bytes{{{S}}}[{R}]))", "{{instance}}")]),
    ("Nodes reporting / nodes in the cluster", "short",
     [(f"count(count by (instance) (networkobservability_forward_count{{{S}}}))", "reporting"),
      ('count(kube_node_info{cluster=~"$cluster"})', "nodes")]),
    ("Dropped packets by reason", "pps",
     [(f"sum by (reason, direction) (rate(networkobservability_drop_count{{{S}}}[{R}]))", "{{reason}} {{direction}}")]),
    ("Dropped bytes by reason", "Bps",
     [(f"sum by (reason) (rate(networkobservability_drop_bytes{{{S}}}[{R}]))", "{{reason}}")]),
    ("Dropped packets by node", "pps",
     [(f"sum by (instance) (rate(networkobservability_drop_count{{{S}}}[{R}]))", "{{instance}}")]),
    ("TCP sockets by state", "short",
     [(f"sum by (state) (networkobservability_tcp_state{{{S}}})", "{{state}}")]),
    ("Established TCP connections by node", "short",
     [(f'sum by (instance) (networkobservability_tcp_connection_remote{{{S}, address="AllIPs"}})', "{{instance}}")]),
    ("TCP retransmissions, resets and timeouts", "short",
     [(f'sum by (statistic_name) (rate(networkobservability_tcp_connection_stats{{{S}, '
       f'statistic_name=~"RetransSegs|OutRsts|TCPTimeouts|TCPSynRetrans"}}[{R}]))', "{{statistic_name}}")]),
    ("IP discards and routing failures", "short",
     [(f'sum by (statistic_name) (rate(networkobservability_ip_connection_stats{{{S}, '
       f'statistic_name=~"InDiscards|OutDiscards|InNoRoutes|OutNoRoutes"}}[{R}]))', "{{statistic_name}}")]),
    ("UDP errors", "short",
     [(f'sum by (statistic_name) (rate(networkobservability_udp_connection_stats{{{S}, '
       f'statistic_name=~"InErrors|NoPorts|RcvbufErrors|SndbufErrors"}}[{R}]))', "{{statistic_name}}")]),
    ("Interface errors and drops", "short",
     [(f'sum by (statistic_name) (rate(networkobservability_interface_stats{{{S}, interface_name="all_interfaces"}}[{R}]))',
       "{{statistic_name}}")]),
    ("Events lost by the agents", "short",
     [(f"sum by (type, reason) (rate(controlplane_networkobservability_lost_events_counter{{{S}}}[{R}]))",
       "{{type}} {{reason}}")]),
    ("Plugins by state", "short",
     [(f"sum by (plugin, state) (controlplane_networkobservability_plugin_state{{{S}}} == 1)", "{{plugin}} {{state}}")]),
    ("Agent CPU", "percentunit",
     [(f'sum by (instance) (rate(process_cpu_seconds_total{{job=~"retina.*", {S}}}[{R}]))', "{{instance}}")]),
    ("Agent resident memory", "bytes",
     [(f'sum by (instance) (process_resident_memory_bytes{{job=~"retina.*", {S}}})', "{{instance}}")]),
    ("API server latency (p50, p99)", "ms",
     [(f"histogram_quantile({q}, sum by (le) (rate(networkobservability_adv_node_apiserver_latency_bucket{{{S}}}[{R}])))",
       f"p{int(q * 100)}") for q in (0.5, 0.99)]),
    ("API server TCP handshake latency (p99) and unanswered packets", "short",
     [(f"histogram_quantile(0.99, sum by (le) (rate(networkobservability_adv_node_apiserver_tcp_handshake_latency_bucket{{{S}}}[{R}])))",
       "handshake p99 (ms)"),
      (f"sum by (instance) (rate(networkobservability_adv_node_apiserver_no_response{{{S}}}[{R}]))",
       "no response {{instance}}")]),
    ("Agent restarts", "short",
     [('sum by (pod) (kube_pod_container_status_restarts_total{cluster=~"$cluster", container="retina"})', "{{pod}}")]),
]

DNS = [
    ("DNS requests", "reqps", [(f"sum(rate(networkobservability_dns_request_count{{{S}}}[{R}]))", "requests")]),
    ("DNS responses", "reqps", [(f"sum(rate(networkobservability_dns_response_count{{{S}}}[{R}]))", "responses")]),
    ("Requests by query type", "reqps",
     [(f"sum by (query_type) (rate(networkobservability_adv_dns_request_count{{{S}}}[{R}]))", "{{query_type}}")]),
    ("Responses by return code", "reqps",
     [(f"sum by (return_code) (rate(networkobservability_adv_dns_response_count{{{S}}}[{R}]))", "{{return_code}}")]),
    ("Top queries", "short",
     [(f"topk(10, sum by (query) (increase(networkobservability_adv_dns_request_count{{{S}}}[$__range])))", "{{query}}")]),
    ("Failed responses by query", "reqps",
     [(f'sum by (query, return_code) (rate(networkobservability_adv_dns_response_count{{{S}, return_code!="NOERROR"}}[{R}]))',
       "{{query}} {{return_code}}")]),
    ("Requests by pod", "reqps",
     [(f"sum by (namespace, podname) (rate(networkobservability_adv_dns_request_count{{{S}}}[{R}]))",
       "{{namespace}}/{{podname}}")]),
    ("CoreDNS pods", "short", [('count(kube_pod_info{cluster=~"$cluster", namespace="kube-system", pod=~"coredns.*"})', "pods")]),
]

PODS = [
    ("Bytes by pod and direction", "Bps",
     [(f"sum by (podname, direction) (rate(networkobservability_adv_forward_bytes{{{POD}}}[{R}]))",
       "{{podname}} {{direction}}")]),
    ("Packets by pod and direction", "pps",
     [(f"sum by (podname, direction) (rate(networkobservability_adv_forward_count{{{POD}}}[{R}]))",
       "{{podname}} {{direction}}")]),
    ("Top pods by traffic", "Bps",
     [(f"topk(5, sum by (podname) (rate(networkobservability_adv_forward_bytes{{{POD}}}[{R}])))", "{{podname}}")]),
    ("Dropped packets by pod and reason", "pps",
     [(f"sum by (podname, reason) (rate(networkobservability_adv_drop_count{{{POD}}}[{R}]))", "{{podname}} {{reason}}")]),
    ("Dropped bytes by pod", "Bps",
     [(f"sum by (podname) (rate(networkobservability_adv_drop_bytes{{{POD}}}[{R}]))", "{{podname}}")]),
    ("TCP flags", "pps",
     [(f"sum by (flag) (rate(networkobservability_adv_tcpflags_count{{{POD}}}[{R}]))", "{{flag}}")]),
    ("TCP retransmissions by pod", "short",
     [(f"sum by (podname, direction) (rate(networkobservability_adv_tcpretrans_count{{{POD}}}[{R}]))",
       "{{podname}} {{direction}}")]),
    ("Pods in the namespace", "short", [('count(kube_pod_info{cluster=~"$cluster", namespace=~"$namespace"})', "pods")]),
]

# Hubble mode (docs/hubble.md): the hubble_* series of the hubbleMetrics
# default, whose `source` / `destination` labels are "namespace/pod", filled
# for egress / ingress flows only (so never both on one series), scraped by
# the networkobservability-hubble job.
# "No Error" is Hubble's rcode name for NOERROR.

HPOD_SRC = S + ', source=~"$namespace/$pod"'
HPOD_DST = S + ', destination=~"$namespace/$pod"'

HUBBLE_CLUSTERS = [
    ("Flows by verdict", "short",
     [(f"sum by (verdict) (rate(hubble_flows_processed_total{{{S}}}[{R}]))", "{{verdict}}")]),
    ("Flows by protocol", "short",
     [(f"sum by (protocol) (rate(hubble_flows_processed_total{{{S}}}[{R}]))", "{{protocol}}")]),
    ("Flows by type and subtype", "short",
     [(f"sum by (type, subtype) (rate(hubble_flows_processed_total{{{S}}}[{R}]))", "{{type}} {{subtype}}")]),
    ("Flows by node", "short",
     [(f"sum by (instance) (rate(hubble_flows_processed_total{{{S}}}[{R}]))", "{{instance}}")]),
    ("Dropped flows by reason", "short",
     [(f"sum by (reason) (rate(hubble_drop_total{{{S}}}[{R}]))", "{{reason}}")]),
    ("Dropped flows by protocol and node", "short",
     [(f"sum by (protocol, instance) (rate(hubble_drop_total{{{S}}}[{R}]))", "{{protocol}} {{instance}}")]),
    ("Share of flows dropped", "percentunit",
     [(f'sum(rate(hubble_flows_processed_total{{{S}, verdict="DROPPED"}}[{R}])) '
       f"/ sum(rate(hubble_flows_processed_total{{{S}}}[{R}]))", "dropped")]),
    ("TCP flags", "short",
     [(f"sum by (flag, family) (rate(hubble_tcp_flags_total{{{S}}}[{R}]))", "{{flag}} {{family}}")]),
    # A SYN without a SYN-ACK is a connection attempt nobody answered.
    ("Unanswered TCP connection attempts", "short",
     [(f'sum(rate(hubble_tcp_flags_total{{{S}, flag="SYN"}}[{R}])) '
       f'- (sum(rate(hubble_tcp_flags_total{{{S}, flag="SYN-ACK"}}[{R}])) or vector(0))', "SYN - SYN-ACK")]),
    ("Top destination ports", "short",
     [(f"topk(10, sum by (protocol, port) (rate(hubble_port_distribution_total{{{S}}}[{R}])))",
       "{{protocol}}/{{port}}")]),
    ("Flows lost by Hubble", "short",
     [(f"sum by (source) (rate(hubble_lost_events_total{{{S}}}[{R}]))", "{{source}}")]),
    ("Nodes reporting flows", "short",
     [(f"count(count by (instance) (hubble_flows_processed_total{{{S}}}))", "nodes")]),
]

HUBBLE_DNS = [
    ("DNS queries by type", "reqps",
     [(f"sum by (qtypes) (rate(hubble_dns_queries_total{{{S}}}[{R}]))", "{{qtypes}}")]),
    ("DNS responses by return code", "reqps",
     [(f"sum by (rcode) (rate(hubble_dns_responses_total{{{S}}}[{R}]))", "{{rcode}}")]),
    ("Queries without a response", "percentunit",
     [(f"clamp_min(1 - sum(increase(hubble_dns_responses_total{{{S}}}[{R}])) "
       f"/ sum(increase(hubble_dns_queries_total{{{S}}}[{R}])), 0)", "missing")]),
    ("IPs returned per response", "reqps",
     [(f'sum by (ips_returned) (rate(hubble_dns_responses_total{{{S}, rcode="No Error"}}[{R}]))',
       "{{ips_returned}} IPs")]),
    ("Top queries", "short",
     [(f"topk(10, sum by (query) (increase(hubble_dns_queries_total{{{S}}}[$__range])))", "{{query}}")]),
    ("Failed responses by query", "reqps",
     [(f'sum by (query, rcode) (rate(hubble_dns_responses_total{{{S}, rcode!="No Error"}}[{R}]))',
       "{{query}} {{rcode}}")]),
    # Queries leave the client pod, responses the DNS server's pod.
    ("Queries by client pod", "reqps",
     [(f'sum by (source) (rate(hubble_dns_queries_total{{{S}, source!=""}}[{R}]))', "{{source}}")]),
    ("Responses by DNS server pod", "reqps",
     [(f'sum by (source, rcode) (rate(hubble_dns_responses_total{{{S}, source!=""}}[{R}]))', "{{source}} {{rcode}}")]),
]

HUBBLE_PODS = [
    ("Outgoing flows by pod", "short",
     [(f"sum by (source) (rate(hubble_flows_processed_total{{{HPOD_SRC}}}[{R}]))", "{{source}}")]),
    ("Incoming flows by pod", "short",
     [(f"sum by (destination) (rate(hubble_flows_processed_total{{{HPOD_DST}}}[{R}]))", "{{destination}}")]),
    ("Outgoing flows by verdict", "short",
     [(f"sum by (verdict) (rate(hubble_flows_processed_total{{{HPOD_SRC}}}[{R}]))", "{{verdict}}")]),
    ("Incoming flows by verdict", "short",
     [(f"sum by (verdict) (rate(hubble_flows_processed_total{{{HPOD_DST}}}[{R}]))", "{{verdict}}")]),
    ("Outgoing drops by pod and reason", "short",
     [(f"sum by (source, reason) (rate(hubble_drop_total{{{HPOD_SRC}}}[{R}]))", "{{source}} {{reason}}")]),
    ("Incoming drops by pod and reason", "short",
     [(f"sum by (destination, reason) (rate(hubble_drop_total{{{HPOD_DST}}}[{R}]))", "{{destination}} {{reason}}")]),
    ("TCP flags sent by pod", "short",
     [(f"sum by (source, flag) (rate(hubble_tcp_flags_total{{{HPOD_SRC}}}[{R}]))", "{{source}} {{flag}}")]),
    ("TCP flags received by pod", "short",
     [(f"sum by (destination, flag) (rate(hubble_tcp_flags_total{{{HPOD_DST}}}[{R}]))", "{{destination}} {{flag}}")]),
    ("DNS queries by pod", "reqps",
     [(f"sum by (source, qtypes) (rate(hubble_dns_queries_total{{{HPOD_SRC}}}[{R}]))", "{{source}} {{qtypes}}")]),
    ("Outgoing flows by protocol", "short",
     [(f"sum by (protocol) (rate(hubble_flows_processed_total{{{HPOD_SRC}}}[{R}]))", "{{protocol}}")]),
]


def variable(name, label, query, regex=""):
    v = {"name": name, "label": label, "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": query, "refId": f"{name}-var"}, "definition": query, "refresh": 2,
         "includeAll": True, "allValue": ".*", "multi": True, "sort": 1,
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}
    if regex:
        v["regex"] = regex  # Grafana keeps the first capture group of each value
    return v


def variables(pod_level, metric="networkobservability_forward_count", hubble_pods=False):
    v = [{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
          "current": {"text": "Prometheus", "value": "prometheus"}},
         variable("cluster", "Cluster", f"label_values({metric}, cluster)"),
         variable("instance", "Node", f'label_values({metric}{{cluster=~"$cluster"}}, instance)')]
    if pod_level:
        v.append(variable("namespace", "Namespace", "label_values(networkobservability_adv_forward_count, namespace)"))
        v.append(variable("pod", "Pod",
                          'label_values(networkobservability_adv_forward_count{namespace=~"$namespace"}, podname)'))
    if hubble_pods:
        # "namespace/pod" split by the variables' regex.
        v.append(variable("namespace", "Namespace", f"label_values({metric}, source)", r"/^([^/]+)\//"))
        v.append(variable("pod", "Pod", f'label_values({metric}{{source=~"$namespace/.*"}}, source)',
                          r"/^[^/]+\/(.+)$/"))
    return v


def dashboard(uid, title, panels, pod_level=False, hubble=False, hubble_pods=False):
    out = []
    for i, (ptitle, unit, targets) in enumerate(panels):
        out.append({
            "id": i + 1, "type": "timeseries", "title": ptitle,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": [{"datasource": {"type": "prometheus", "uid": "${datasource}"}, "expr": expr,
                         "legendFormat": legend, "refId": chr(ord("A") + j)}
                        for j, (expr, legend) in enumerate(targets)],
        })
    metric = "hubble_flows_processed_total" if hubble else "networkobservability_forward_count"
    return {"uid": uid, "title": title, "tags": ["retina", "networking"] + (["hubble"] if hubble else []),
            "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "templating": {"list": variables(pod_level, metric, hubble_pods)},
            "annotations": {"list": []}, "panels": out}


DASHBOARDS = {
    "retina-clusters.json": dashboard("retina-clusters", "Kubernetes / Networking / Clusters", CLUSTERS),
    "retina-dns.json": dashboard("retina-dns", "Kubernetes / Networking / DNS", DNS),
    "retina-pod-level.json": dashboard("retina-pod-level", "Kubernetes / Networking / Pod Level", PODS, pod_level=True),
    "hubble-clusters.json": dashboard("retina-hubble-clusters", "Kubernetes / Networking / Hubble / Clusters",
                                      HUBBLE_CLUSTERS, hubble=True),
    "hubble-dns.json": dashboard("retina-hubble-dns", "Kubernetes / Networking / Hubble / DNS", HUBBLE_DNS, hubble=True),
    "hubble-pod-flows.json": dashboard("retina-hubble-pod-flows", "Kubernetes / Networking / Hubble / Pod Flows",
                                       HUBBLE_PODS, hubble=True, hubble_pods=True),
}


def configmap(texts):
    lines = ["# Generated by scripts/gen-dashboards.py. Grafana's dashboard sidecar",
             "# (kube-prometheus-stack: grafana.sidecar.dashboards.enabled) loads every",
             "# ConfigMap labeled grafana_dashboard=\"1\".",
             "apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: retina-grafana-dashboards",
             "  namespace: kube-system", "  labels:", '    grafana_dashboard: "1"', "data:"]
    for name, text in texts.items():
        lines.append(f"  {name}: |")
        lines.extend("    " + l for l in text.rstrip("\n").splitlines())
    return "\n".join(lines) + "\n"


def outputs():
    texts = {name: json.dumps(d, indent=2) + "\n" for name, d in DASHBOARDS.items()}
    files = {OUT / name: text for name, text in texts.items()}
    files[OUT / "configmap.yaml"] = configmap(texts)
    return files


def main(argv):
    check = "--check" in argv
    stale = []
    for path, text in outputs().items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("gen-dashboards: out of date (run scripts/gen-dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
