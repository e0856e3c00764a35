"""What the engine offers before start() (no privilege needed), and
interrupting a blocked poll."""
import os
import signal
import threading
import time

import pytest

import retina


def test_engine_before_start():
    e = retina.Engine(enabled_plugins=["packetparser", "linuxutil"], data_aggregation_level="low")
    assert not e.running and not e.ready()
    assert e.config.data_aggregation_level == "low"
    assert e.plugin_status() == [{"name": "packetparser", "state": "pending", "reason": ""},
                                 {"name": "linuxutil", "state": "pending", "reason": ""}]
    assert e.metric("controlplane_networkobservability_plugin_state", plugin="packetparser", state="pending") == 1
    e.cache.upsert(namespace="n", name="p", ips=["10.0.0.1"])
    assert e.cache.lookup("10.0.0.1").name == "p"
    s = e.subscribe("early", filter={"namespaces": ["n"]})
    assert s.poll() == [] and s.name == "early"
    assert e.pipeline_stats() == {"records": 0, "decoded": 0, "rejected": {}, "enrich_hits": 0,
                                  "enrich_misses": 0}
    e.stop()
    assert s.closed and list(s) == []  # iteration ends once the engine stopped
    e.stop()  # idempotent
    with pytest.raises(ValueError, match="start\\(\\) after stop\\(\\)"):
        e.start()
    assert "pending" in repr(e) or "stopped" in repr(e)


def test_engine_takes_a_config_and_overrides():
    c = retina.Config(data_aggregation_level="low")
    e = retina.Engine(c, enabled_plugins=["linuxutil"])
    assert e.config.enabled_plugins == ["linuxutil"]
    assert e.config.data_aggregation_level == "low"
    assert c.enabled_plugins != ["linuxutil"]  # the caller's config is untouched


def test_set_log_level():
    retina.set_log_level("warn")
    with pytest.raises(ValueError, match="log level"):
        retina.set_log_level("loud")


def test_ctrl_c_interrupts_a_blocked_poll():
    p = retina.Pipeline(boot_offset_ns=0)
    s = p.subscribe("s")
    main = threading.get_ident()
    t = threading.Timer(0.3, lambda: signal.pthread_kill(main, signal.SIGINT))
    t.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        s.poll(timeout=None)
    assert time.monotonic() - start < 5
    t.join()


def test_ctrl_c_during_collect_returns_what_was_collected():
    p = retina.Pipeline(boot_offset_ns=0)
    s = p.subscribe("s")
    p.feed([retina.records.packet("10.0.0.1", "10.0.0.2")] * 3)
    main = threading.get_ident()
    t = threading.Timer(0.3, lambda: signal.pthread_kill(main, signal.SIGINT))
    t.start()
    got = s.collect(30)
    t.join()
    assert len(got) == 3
