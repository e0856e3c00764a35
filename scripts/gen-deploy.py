#!/usr/bin/env python3
"""Writes the kustomize base (deploy/kubernetes) and the Helm chart's
templates (deploy/helm/retina) from one source, deploy/manifests, so the two
cannot drift. The chart's values.yaml holds the defaults; the kustomize base
is the chart rendered with them.

    scripts/gen-deploy.py           # write both
    scripts/gen-deploy.py --check   # exit 1 naming every file that differs

Source syntax (a deliberately small set, each with one Helm form):
    @{a.b}            {{ .Values.a.b }}              the default, as YAML scalar text
    @{a.b|quote}      {{ .Values.a.b | quote }}      the default, double-quoted
    @{a.b|port}       {{ .Values.a.b | splitList ":" | last }}   the port of a host:port default
    <indent>@yaml{a}  {{- toYaml .Values.a | nindent <len(indent)> }}
    @ns               {{ .Release.Namespace }}       kube-system
    @if{a.b} / @end   {{- if .Values.a.b }} / {{- end }}   kept when the default is true
    @chart <text>     <text>                         left out of the kustomize base
"""
import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "deploy/manifests"
KUSTOMIZE = ROOT / "deploy/kubernetes"
CHART = ROOT / "deploy/helm/retina"
NAMESPACE = "kube-system"

# (source, kustomize output, chart output or None, values forced on for the kustomize output)
FILES = [
    ("metricsconfiguration-crd.yaml", "metricsconfiguration-crd.yaml", "crds/metricsconfiguration-crd.yaml", {}),
    ("capture-crd.yaml", "capture-crd.yaml", "crds/capture-crd.yaml", {}),
    ("rbac.yaml", "rbac.yaml", "templates/rbac.yaml", {}),
    ("configmap.yaml", "configmap.yaml", "templates/configmap.yaml", {}),
    ("service.yaml", "service.yaml", "templates/service.yaml", {}),
    ("daemonset.yaml", "daemonset.yaml", "templates/daemonset.yaml", {}),
    # Prometheus Operator objects: a kustomize component, flags in the chart.
    ("servicemonitor.yaml", "monitoring/servicemonitor.yaml", "templates/servicemonitor.yaml",
     {"serviceMonitor.enabled": True}),
    ("podmonitor.yaml", "monitoring/podmonitor.yaml", "templates/podmonitor.yaml", {"podMonitor.enabled": True}),
    # Hubble mode: kustomize components whose patches are the objects
    # rendered with enableHubble (the chart's enableHubble: true).
    ("configmap.yaml", "hubble/configmap.yaml", None, {"enableHubble": True}),
    ("service.yaml", "hubble/service.yaml", None, {"enableHubble": True}),
    ("hubble-peer-service.yaml", "hubble/hubble-peer-service.yaml", "templates/hubble-peer-service.yaml",
     {"enableHubble": True}),
    ("servicemonitor.yaml", "hubble-monitoring/servicemonitor.yaml", None,
     {"serviceMonitor.enabled": True, "enableHubble": True}),
]

VALUE = re.compile(r"@\{([A-Za-z0-9_.]+)(?:\|(quote|port))?\}")
YAML_LINE = re.compile(r"^( *)@yaml\{([A-Za-z0-9_.]+)\}$")
IF_LINE = re.compile(r"^@if\{([A-Za-z0-9_.]+)\}$")


class SourceError(Exception):
    pass


def lookup(values, path, where):
    v = values
    for part in path.split("."):
        if not isinstance(v, dict) or part not in v:
            raise SourceError(f"{where}: values.yaml has no {path}")
        v = v[part]
    return v


def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    raise SourceError(f"not a scalar: {v!r}")


def render(text, values, chart, forced, where):
    """One source file as a Helm template (chart) or rendered with defaults."""
    out = []
    keep = [True]  # kustomize: inside @if blocks whose default is false, drop lines
    for n, line in enumerate(text.splitlines(), 1):
        here = f"{where}:{n}"
        m = IF_LINE.match(line)
        if m:
            path = m.group(1)
            on = forced.get(path, lookup(values, path, here))
            keep.append(keep[-1] and bool(on))
            if chart:
                out.append("{{- if .Values.%s }}" % path)
            continue
        if line == "@end":
            if len(keep) == 1:
                raise SourceError(f"{here}: @end without @if")
            keep.pop()
            if chart:
                out.append("{{- end }}")
            continue
        if line.startswith("@chart "):
            if chart:
                out.append(line[len("@chart "):])
            continue
        m = YAML_LINE.match(line)
        if m:
            indent, path = m.group(1), m.group(2)
            if chart:
                out.append("%s{{- toYaml .Values.%s | nindent %d }}" % (indent, path, len(indent)))
            elif keep[-1]:
                dumped = yaml.safe_dump(lookup(values, path, here), default_flow_style=False, sort_keys=True)
                out.extend(indent + l for l in dumped.rstrip("\n").splitlines())
            continue

        def value(m):
            path, pipe = m.group(1), m.group(2)
            if chart:
                return "{{ .Values.%s%s }}" % (path, {None: "", "quote": " | quote",
                                                      "port": ' | splitList ":" | last'}[pipe])
            v = scalar(lookup(values, path, here))
            if pipe == "port":
                port = v.rpartition(":")[2]
                if not port.isdigit() or not 0 < int(port) < 65536:
                    raise SourceError(f"{here}: {path} is {v!r}, not host:port with a port")
                return port
            return json.dumps(v) if pipe == "quote" else v

        line = VALUE.sub(value, line)
        line = line.replace("@ns", "{{ .Release.Namespace }}" if chart else NAMESPACE)
        if re.search(r"@(\{|yaml|if|end|chart)", line):
            raise SourceError(f"{here}: misplaced directive: {line.strip()}")
        if chart or keep[-1]:
            out.append(line)
    if len(keep) != 1:
        raise SourceError(f"{where}: @if without @end")
    return "\n".join(out) + "\n"


def header(src, chart):
    what = "the chart rendered with values.yaml's defaults" if not chart else "a Helm template"
    return f"# Generated by scripts/gen-deploy.py from deploy/manifests/{src} ({what}); edit the source.\n"


def outputs():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    result = {}
    for src, kust, chart_path, forced in FILES:
        text = (SRC / src).read_text()
        result[KUSTOMIZE / kust] = header(src, False) + render(text, values, False, forced, src)
        if chart_path is None:
            continue
        body = render(text, values, True, {}, src)
        # Helm reads crds/ as plain YAML; templates may start with a comment.
        result[CHART / chart_path] = header(src, True) + body
    return result


def main(argv):
    check = "--check" in argv
    try:
        files = outputs()
    except SourceError as e:
        print(f"gen-deploy: {e}", file=sys.stderr)
        return 2
    stale = []
    for path, text in files.items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("gen-deploy: out of date (run scripts/gen-deploy.py): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
