import os
import sys

import pytest

import retina
from retina import records


def pytest_report_header(config):
    return f"retina module: {retina._retina.__file__}"


@pytest.fixture
def cache():
    c = retina.IpCache()
    c.upsert(kind="pod", namespace="shop", name="web-7d9f", ips=["10.0.0.5", "fd00::5"],
             labels={"app": "web"}, workloads=[("Deployment", "web")], zone="zone-a",
             service="web-svc", node_name="node-1")
    c.upsert(kind="pod", namespace="db", name="pg-0", ips=["10.0.0.9"],
             workloads="StatefulSet/pg", zone="zone-b")
    c.upsert(kind="service", namespace="kube-system", name="kube-dns", ips=["10.96.0.10"])
    return c
