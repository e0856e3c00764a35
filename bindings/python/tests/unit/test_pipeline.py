"""Offline Pipeline: enrichment, subscriptions, filters, drops, metrics,
the cache API and waiting without the GIL."""
import threading
import time

import pytest

import retina
from retina import records


def udp(src, dst, n=1, size=100, sport=1111, dport=2222, obs=records.OBS_FROM_ENDPOINT):
    return [records.packet(src, dst, sport=sport, dport=dport, proto="udp", bytes=size, obs_point=obs)
            for _ in range(n)]


def test_feed_enrich_and_poll(cache):
    p = retina.Pipeline(cache, boot_offset_ns=0)
    s = p.subscribe("all")
    assert p.feed(records.concat(udp("10.0.0.5", "10.0.0.9", 3))) == 3
    assert p.feed(udp("10.0.0.9", "10.0.0.5", 2, obs=records.OBS_TO_ENDPOINT)) == 2
    df = s.poll_df()
    assert len(df) == 5
    assert list(df["src_pod"]) == ["web-7d9f"] * 3 + ["pg-0"] * 2
    assert list(df["dst_namespace"]) == ["db"] * 3 + ["shop"] * 2
    assert s.poll_df().empty  # drained
    assert s.delivered == 5 and s.dropped == 0 and s.queued == 0
    st = p.stats()
    assert (st["records"], st["decoded"], st["rejected"]) == (5, 5, {})
    assert (st["enrich_hits"], st["enrich_misses"]) == (10, 0)


def test_basic_metrics_count_exactly(cache):
    p = retina.Pipeline(cache, boot_offset_ns=0)
    p.feed(udp("10.0.0.5", "10.0.0.9", 4, size=500))
    p.feed(udp("10.0.0.9", "10.0.0.5", 3, size=200, obs=records.OBS_TO_ENDPOINT))
    p.feed([records.packet("10.0.0.5", "10.0.0.9", proto="tcp", bytes=100, prev_packets=9, prev_bytes=900,
                           flags=records.PKT_F_CT_REPORT)])
    assert p.metric("networkobservability_forward_count", direction="egress") == 4 + 10
    assert p.metric("networkobservability_forward_bytes", direction="egress") == 2000 + 1000
    assert p.metric("networkobservability_forward_count", direction="ingress") == 3
    assert p.metric("networkobservability_forward_bytes", direction="ingress") == 600
    assert p.metric("controlplane_networkobservability_parsed_packets_counter") == 8
    m = p.metrics()
    assert list(m.columns) == ["name", "labels", "value", "type"]
    row = m[(m["name"] == "networkobservability_forward_count") & (m["labels"] == {"direction": "egress"})]
    assert list(row["value"]) == [14.0] and list(row["type"]) == ["counter"]


def test_rejects_are_counted_in_stats_and_metrics():
    p = retina.Pipeline(boot_offset_ns=0)
    good = records.packet("10.0.0.1", "10.0.0.2")
    assert p.feed([good, b"short", good], plugin="replay", errors="skip") == 2
    assert p.stats()["rejected"] == {"too_short": 1}
    assert p.metric("controlplane_networkobservability_lost_events_counter", type="decoder",
                    reason="replay") == 1
    with pytest.raises(retina.DecodeError, match=r"records\[1\]: too_short"):
        p.feed([good, b"short", good])
    assert p.stats()["records"] == 5  # the raise stopped at the bad record


def test_filters(cache):
    p = retina.Pipeline(cache, boot_offset_ns=0)
    by_ns = p.subscribe("db", filter=retina.FlowFilter(namespaces=["db"]))
    by_port = p.subscribe("port", filter={"ports": [53]})
    drops = p.subscribe("drops", filter={"verdicts": ["DROPPED"], "origins": "dropreason"})
    by_pod = p.subscribe("pod", filter={"pods": ["shop/web-7d9f"]})
    by_ip = p.subscribe("ip", filter={"ips": ["203.0.113.7"]})
    p.feed(udp("10.0.0.5", "10.0.0.9") + udp("10.0.0.5", "203.0.113.7", dport=53) +
           [records.drop("10.0.0.5", "203.0.113.7", reason=2)])
    assert len(by_ns.poll()) == 1
    assert [f.dst_port for f in by_port.poll()] == [53]
    assert [f.verdict for f in drops.poll()] == ["DROPPED"]
    assert len(by_pod.poll()) == 3
    assert len(by_ip.poll()) == 2
    with pytest.raises(ValueError, match='unknown key "port"'):
        p.subscribe("x", filter={"port": [1]})
    with pytest.raises(ValueError, match="verdict"):
        p.subscribe("x", filter={"verdicts": ["LOST"]})
    with pytest.raises(ValueError, match="not an IPv4 or IPv6 address"):
        p.subscribe("x", filter={"ips": ["10.0.0.300"]})


def test_full_stream_drops_and_counts():
    p = retina.Pipeline(boot_offset_ns=0)
    s = p.subscribe("small", capacity=10)
    p.feed(udp("10.0.0.1", "10.0.0.2", 25))
    assert len(s.poll()) == 10
    assert (s.delivered, s.dropped) == (10, 15)
    assert p.metric("controlplane_networkobservability_lost_events_counter", type="external_channel",
                    reason="small") == 15


def test_poll_limits_and_timeouts():
    p = retina.Pipeline(boot_offset_ns=0)
    s = p.subscribe("s")
    t = time.monotonic()
    assert s.poll(timeout=0) == []
    assert s.poll(timeout=0.2) == []
    assert 0.15 < time.monotonic() - t < 10
    p.feed(udp("10.0.0.1", "10.0.0.2", 5))
    assert len(s.poll(max=2)) == 2
    assert len(s.poll_numpy(max=2)) == 2
    assert len(s.poll_batch()) == 1
    with pytest.raises(ValueError, match="max"):
        s.poll(max=0)
    with pytest.raises(ValueError, match="timeout"):
        s.poll(timeout=-1)


def test_waiting_releases_the_gil():
    p = retina.Pipeline(boot_offset_ns=0)
    s = p.subscribe("s")

    def feeder():
        time.sleep(0.2)  # the main thread is waiting in poll() by now
        p.feed(udp("10.0.0.1", "10.0.0.2", 3))

    th = threading.Thread(target=feeder)
    th.start()
    flows = s.poll(timeout=None)  # blocks until the feeder's flows arrive
    assert flows
    th.join()
    # poll() may wake on the feed's first flow; once feed() returned, the rest are queued.
    flows += s.poll(timeout=0)
    assert len(flows) == 3
    # collect() keeps gathering across separate arrivals (until max here).
    th = threading.Thread(target=lambda: [time.sleep(0.05 * i) or p.feed(udp("10.0.0.1", "10.0.0.2"))
                                          for i in range(1, 4)])
    th.start()
    got = s.collect(30, max=3)
    th.join()
    assert len(got) == 3
    t = time.monotonic()
    assert s.collect(0.2) == [] and time.monotonic() - t >= 0.15


def test_iteration_ends_when_closed():
    p = retina.Pipeline(boot_offset_ns=0)
    s = p.subscribe("s")
    p.feed(udp("10.0.0.1", "10.0.0.2", 3))
    s.close()
    assert s.closed
    p.feed(udp("10.0.0.1", "10.0.0.2", 3))  # not delivered any more
    assert len(list(s)) == 3


def test_closing_a_pipeline_closes_its_streams():
    with retina.Pipeline(boot_offset_ns=0) as p:
        s = p.subscribe("s")
        p.feed(udp("10.0.0.1", "10.0.0.2", 2))
    assert s.closed and len(list(s)) == 2


def test_stream_survives_its_pipeline():
    p = retina.Pipeline(boot_offset_ns=0)
    s = p.subscribe("s")
    p.feed(udp("10.0.0.1", "10.0.0.2", 2))
    del p  # the stream keeps it alive
    assert len(s.poll()) == 2


def test_cache_api():
    c = retina.IpCache()
    ep = c.upsert(namespace="a", name="p1", ips=["10.1.0.1", "fd00::1"], labels=["x=1", "app=web"],
                  workload="Deployment/web")
    assert isinstance(ep, retina.Endpoint)
    assert ep.key == "pod/a/p1"
    assert ep.labels == {"app": "web", "x": "1"}
    assert ep.workloads == [{"kind": "Deployment", "name": "web"}] and ep.workload == ("Deployment", "web")
    assert len(c) == 1 and "10.1.0.1" in c and "10.1.0.2" not in c
    assert c.lookup("fd00::1") == ep
    assert c.find("pod/a/p1") == ep
    assert c.lookup("10.9.9.9") is None
    c.upsert(retina.Endpoint(kind="node", name="n1", ips=["192.168.0.1"]), source="file")
    assert c.lookup("192.168.0.1").kind == "node"
    assert sorted(e.key for e in c.endpoints()) == ["node//n1", "pod/a/p1"]
    c.remove("pod/a/p1")
    assert c.lookup("10.1.0.1") is None
    c.replace([{"namespace": "b", "name": "p2", "ips": ["10.1.0.2"]}], source="file")
    assert c.lookup("192.168.0.1") is None and c.lookup("10.1.0.2").name == "p2"
    c.remove(c.find("pod/b/p2"), source="file", grace=60)
    assert c.lookup("10.1.0.2").name == "p2"  # lingers for its grace period
    assert c.stats()["lingering"] == 1
    assert repr(c).startswith("IpCache(")


def test_endpoint_errors():
    with pytest.raises(ValueError, match="not an IPv4 or IPv6 address"):
        retina.Endpoint(name="x", ips=["10.0.0.256"])
    with pytest.raises(ValueError, match="name is required"):
        retina.Endpoint(namespace="x")
    with pytest.raises(ValueError, match="kind"):
        retina.Endpoint(name="x", kind="vm")
    with pytest.raises(TypeError, match="unknown field 'pod'"):
        retina.Endpoint(pod="x")
    with pytest.raises(ValueError, match="source"):
        retina.IpCache().upsert(name="x", source="etcd")


def test_enrichment_follows_cache_updates():
    c = retina.IpCache()
    p = retina.Pipeline(c, boot_offset_ns=0)
    s = p.subscribe("s")
    p.feed(udp("10.0.0.1", "10.0.0.2"))
    c.upsert(namespace="n", name="late", ips=["10.0.0.1"])
    p.feed(udp("10.0.0.1", "10.0.0.2"))
    assert list(s.poll_df()["src_pod"]) == ["", "late"]
