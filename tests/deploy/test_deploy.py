"""The Helm chart and the kustomize base stay one deployment: generated from
deploy/manifests with no drift, with Retina's values keys, and (rendered by
kubectl kustomize) consistent with each other: names, ports, probes, the
config path, and the monitors' selectors."""
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/retina"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())

# Retina's chart keys a values file of a Retina install sets.
RETINA_KEYS = ["image.repository", "image.tag", "image.pullPolicy", "retinaPort", "logLevel", "enabledPlugin_linux",
               "enablePodLevel", "remoteContext", "enableAnnotations", "bypassLookupIPOfInterest",
               "dataAggregationLevel", "metricsIntervalDuration", "resources", "tolerations", "nodeSelector",
               "serviceMonitor.enabled",
               # Hubble mode and capture.
               "enableHubble", "hubbleListenAddress", "hubbleMetricsServer", "enableCapture", "captureOutputRoot"]


def lookup(path):
    v = VALUES
    for part in path.split("."):
        assert isinstance(v, dict) and part in v, f"values.yaml has no {path}"
        v = v[part]
    return v


def test_generated_files_are_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts/gen-deploy.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_values_have_retinas_keys():
    for key in RETINA_KEYS:
        lookup(key)
    assert VALUES["serviceMonitor"]["enabled"] is False
    assert VALUES["podMonitor"]["enabled"] is False


def test_every_template_value_exists():
    used = set()
    for t in (CHART / "templates").glob("*.yaml"):
        used |= set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", t.read_text()))
    assert used
    for path in used:
        lookup(path)
    # Every value is used by some template.
    leaves = set()

    def walk(prefix, v):
        if isinstance(v, dict) and v and prefix not in ("resources", "nodeSelector"):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else k, x)
        else:
            leaves.add(prefix)

    walk("", VALUES)
    assert leaves <= used, f"values no template reads: {sorted(leaves - used)}"


def kustomize(path):
    if not shutil.which("kubectl"):
        pytest.skip("kubectl (with kustomize) is not installed")
    r = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def by_kind(docs):
    """One object per kind; the CustomResourceDefinitions as a list; Hubble
    Relay's peer Service as "Service/hubble-peer"."""
    out = {"CustomResourceDefinition": []}
    for d in docs:
        if d["kind"] == "CustomResourceDefinition":
            out[d["kind"]].append(d)
            continue
        if d["kind"] == "Service" and d["metadata"]["name"] == "hubble-peer":
            out["Service/hubble-peer"] = d
            continue
        assert d["kind"] not in out, f"two {d['kind']}"
        out[d["kind"]] = d
    return out


def test_rendered_objects_agree():
    docs = by_kind(kustomize(ROOT / "deploy/overlays/monitoring"))
    assert set(docs) == {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                         "ConfigMap", "Service", "DaemonSet", "ServiceMonitor", "PodMonitor"}
    for kind in ("ServiceAccount", "ConfigMap", "Service", "DaemonSet", "ServiceMonitor", "PodMonitor"):
        assert docs[kind]["metadata"]["namespace"] == "kube-system", kind
    assert sorted(c["metadata"]["name"] for c in docs["CustomResourceDefinition"]) == [
        "captures.retina.sh", "metricsconfigurations.retina.sh"]
    # The agent may read and update what the CRDs define.
    rules = docs["ClusterRole"]["rules"]
    for crd in docs["CustomResourceDefinition"]:
        plural = crd["spec"]["names"]["plural"]
        assert any(crd["spec"]["group"] in r["apiGroups"] and plural in r["resources"] for r in rules), plural

    ds = docs["DaemonSet"]
    pod = ds["spec"]["template"]
    spec = pod["spec"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert spec["hostNetwork"] is True
    assert spec["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    assert spec["nodeSelector"] == VALUES["nodeSelector"]
    assert spec["tolerations"] == VALUES["tolerations"]
    (c,) = spec["containers"]
    assert c["name"] == "retina"  # Retina's scrape configs keep containers named retina
    assert c["image"] == f"{VALUES['image']['repository']}:{VALUES['image']['tag']}"
    assert c["resources"] == VALUES["resources"]
    assert c["args"] == ["--health-probe-bind-address=:18081", "--metrics-bind-address=:18080",
                         "--config", "/retina/config/config.yaml"]
    caps = c["securityContext"]["capabilities"]
    assert caps["drop"] == ["ALL"]
    assert c["securityContext"]["privileged"] is False

    # The config file the agent reads is the ConfigMap's config.yaml.
    config_path = pathlib.PurePosixPath(c["args"][c["args"].index("--config") + 1])
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "config"]
    assert pathlib.PurePosixPath(mount["mountPath"]) == config_path.parent
    (vol,) = [v for v in spec["volumes"] if v["name"] == "config"]
    cm = docs["ConfigMap"]
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    config = yaml.safe_load(cm["data"][config_path.name])
    assert config["enabledPlugin"] == yaml.safe_load(VALUES["enabledPlugin_linux"])
    for key in ("enablePodLevel", "remoteContext", "enableAnnotations", "dataAggregationLevel",
                "enableConntrackMetrics", "bypassLookupIPOfInterest"):
        assert config[key] == VALUES[key], key
    assert "enableHubble" not in config and "enableCapture" not in config  # off by default

    # One port everywhere: config, container, annotation, Service.
    port = config["apiServer"]["port"]
    assert port == VALUES["retinaPort"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["retina"] == port
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    # One declared port (pod discovery makes a target per port); probes on
    # the --health-probe-bind-address port.
    assert list(ports) == ["retina"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 18081}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 18081}

    svc = docs["Service"]
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (sp,) = svc["spec"]["ports"]
    assert sp["targetPort"] == port and sp["name"] == "retina"

    sm = docs["ServiceMonitor"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == sp["name"]
    pm = docs["PodMonitor"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] in ports


def test_base_without_monitors():
    docs = by_kind(kustomize(ROOT / "deploy/kubernetes"))
    assert "ServiceMonitor" not in docs and "PodMonitor" not in docs
    assert "DaemonSet" in docs and "Service" in docs


def test_chart_flags_wrap_the_monitors():
    for name, flag in (("servicemonitor.yaml", "serviceMonitor.enabled"), ("podmonitor.yaml", "podMonitor.enabled")):
        lines = [l for l in (CHART / "templates" / name).read_text().splitlines() if not l.startswith("#")]
        assert lines[0] == "{{- if .Values.%s }}" % flag
        assert lines[-1] == "{{- end }}"
    ds = (CHART / "templates/daemonset.yaml").read_text()
    assert 'checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}' in ds


def test_dashboards_are_current_and_loadable():
    r = subprocess.run([sys.executable, str(ROOT / "scripts/gen-dashboards.py"), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    import json
    cm = yaml.safe_load((ROOT / "deploy/grafana/configmap.yaml").read_text())
    assert cm["metadata"]["labels"] == {"grafana_dashboard": "1"}
    files = sorted(p.name for p in (ROOT / "deploy/grafana").glob("*.json"))
    assert sorted(cm["data"]) == files == ["hubble-clusters.json", "hubble-dns.json", "hubble-pod-flows.json",
                                           "retina-clusters.json", "retina-dns.json", "retina-pod-level.json"]
    for name in files:
        d = json.loads(cm["data"][name])
        assert d == json.loads((ROOT / "deploy/grafana" / name).read_text())
        assert d["panels"] and all(p["targets"] for p in d["panels"])
        assert len({p["id"] for p in d["panels"]}) == len(d["panels"])


def port_of(address):
    return int(address.rpartition(":")[2])


def test_hubble_mode_ports_agree():
    """enableHubble (the hubble overlay, as the chart renders it): the agent's
    config, the Service, the ServiceMonitor and Retina's hubble scrape job
    agree on the Observer and hubble_* metrics ports."""
    docs = by_kind(kustomize(ROOT / "deploy/overlays/hubble"))
    grpc, metrics = port_of(VALUES["hubbleListenAddress"]), port_of(VALUES["hubbleMetricsServer"])
    assert (grpc, metrics) == (4244, 9965)  # Retina's ports

    config = yaml.safe_load(docs["ConfigMap"]["data"]["config.yaml"])
    assert config["enableHubble"] is True
    assert port_of(config["hubbleListenAddress"]) == grpc and port_of(config["hubbleMetricsServer"]) == metrics

    pod = docs["DaemonSet"]["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    # Still only the metrics port on the container: Retina's retina-pods job
    # scrapes every declared port of the pod under the same labels.
    assert [p["name"] for p in c["ports"]] == ["retina"]
    # The pod annotation stays on the agent's own metrics port (retina-pods job).
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(VALUES["retinaPort"])

    svc = docs["Service"]
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    assert ports == {"retina": (VALUES["retinaPort"],) * 2, "hubble-grpc": (grpc, grpc), "hubble-metrics": (metrics, metrics)}
    assert svc["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics)}

    # Relay's peer service, as Cilium's: hubble-peer:443 -> the Observer port
    # of the agent on Relay's own node.
    peer = docs["Service/hubble-peer"]
    assert peer["metadata"]["namespace"] == svc["metadata"]["namespace"]
    assert [(p["port"], p["targetPort"]) for p in peer["spec"]["ports"]] == [(443, grpc)]
    assert peer["spec"]["selector"] == docs["DaemonSet"]["spec"]["selector"]["matchLabels"]
    assert peer["spec"]["internalTrafficPolicy"] == "Local"

    eps = {e["port"]: e for e in docs["ServiceMonitor"]["spec"]["endpoints"]}
    assert set(eps) == {"retina", "hubble-metrics"}
    assert {"targetLabel": "job", "replacement": "networkobservability-hubble"} in eps["hubble-metrics"]["relabelings"]
    assert [e["port"] for e in docs["PodMonitor"]["spec"]["podMetricsEndpoints"]] == ["retina"]

    # Retina's hubble scrape job keeps this pod and scrapes the metrics port.
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yaml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "networkobservability-hubble"]
    (keep,) = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert keep["source_labels"] == ["__meta_kubernetes_namespace", "__meta_kubernetes_pod_label_k8s_app"]
    assert re.fullmatch(keep["regex"], f"{docs['DaemonSet']['metadata']['namespace']};"
                                       f"{pod['metadata']['labels']['k8s-app']}")
    (addr,) = [r for r in job["relabel_configs"] if r.get("target_label") == "__address__"]
    assert addr["replacement"] == f"$1:{metrics}"


def test_hubble_ports_only_in_hubble_mode():
    docs = by_kind(kustomize(ROOT / "deploy/kubernetes"))
    assert [p["name"] for p in docs["Service"]["spec"]["ports"]] == ["retina"]
    assert "Service/hubble-peer" not in docs
    peer = (CHART / "templates/hubble-peer-service.yaml").read_text()
    assert peer.split("\n")[1] == "{{- if .Values.enableHubble }}" and peer.rstrip().endswith("{{- end }}")
    assert "annotations" not in docs["Service"]["metadata"]
    # The chart: every hubble port under `if .Values.enableHubble`, read from the addresses.
    for name in ("service.yaml", "servicemonitor.yaml"):
        text = (CHART / "templates" / name).read_text()
        start = text.index("{{- if .Values.enableHubble }}")
        assert text.count("hubble-") == text[start:].count("hubble-") > 0, name
    svc = (CHART / "templates/service.yaml").read_text()
    assert 'port: {{ .Values.hubbleListenAddress | splitList ":" | last }}' in svc
    assert 'port: {{ .Values.hubbleMetricsServer | splitList ":" | last }}' in svc


def plugin_capabilities():
    """docs/security.md's plugin table: {plugin: (start set, run set)}. The
    unit test `capabilities: docs/security.md lists ...` holds that table to
    the plugin table in src/plugins/registry.cpp."""
    text = (ROOT / "docs/security.md").read_text()
    rows = re.findall(r"^\| `([a-z]+)` \| ([^|]*) \| ([^|]*) \|", text, re.M)
    assert rows, "docs/security.md has no plugin capability table"
    names = lambda cell: set(re.findall(r"`([A-Z_]+)`", cell))
    return {plugin: (names(start), names(run)) for plugin, start, run in rows}


def test_daemonset_asks_for_exactly_the_plugins_start_capabilities():
    table = plugin_capabilities()
    assert {"packetparser", "dropreason", "packetforward", "dns", "tcpretrans"} <= table.keys()
    wanted = set().union(*(start for start, _ in table.values())) | {"SETPCAP"}
    for path in (ROOT / "deploy/kubernetes/daemonset.yaml", ):
        ds = yaml.safe_load(path.read_text())
        (c,) = ds["spec"]["template"]["spec"]["containers"]
        caps = c["securityContext"]["capabilities"]
        assert caps["drop"] == ["ALL"]
        assert sorted(caps["add"]) == sorted(wanted), path
        assert "SYS_ADMIN" not in caps["add"]
    # The chart's template is generated from the same source (test_generated_files_are_current).
    template = (CHART / "templates/daemonset.yaml").read_text()
    (line,) = [l for l in template.splitlines() if l.strip().startswith("add: [")]
    assert sorted(x.strip() for x in line.split("[", 1)[1].rstrip("]").split(",")) == sorted(wanted)
