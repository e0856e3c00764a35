"""Engine (live flows from the kernel) and Pipeline (recorded records)."""
from __future__ import annotations

import atexit
import threading
import weakref
from typing import Optional

from . import _frames, _retina, metrics as _metrics
from ._stream import DEFAULT_MAX, FlowStream

_live = weakref.WeakSet()
_live_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    # Detach everything before the interpreter tears down modules.
    with _live_lock:
        engines = list(_live)
    for e in engines:
        try:
            e.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class _MetricsMixin:
    def metrics_text(self) -> str:
        """The Prometheus exposition, as the agent's /metrics serves it."""
        return self._core.metrics_text()

    def metric_samples(self):
        """The exposition parsed into retina.metrics.Sample tuples."""
        return _metrics.parse(self.metrics_text())

    def metrics(self):
        """The exposition as a DataFrame: name, labels (dict), value, type."""
        return _metrics.to_frame(self.metric_samples())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0.0
        when there is none), e.g. metric("networkobservability_forward_count",
        direction="egress")."""
        v = _metrics.value(self.metric_samples(), name, **labels)
        return 0.0 if v is None else v


class Engine(_MetricsMixin):
    """retina's engine in this process: plugins attach BPF programs, a
    reader thread decodes and enriches flows, metrics aggregate.

        with retina.Engine(enabled_plugins=["packetparser"],
                           data_aggregation_level="low") as engine:
            stream = engine.subscribe("notebook")
            df = stream.collect_df(10)

    Takes a Config, or Config fields as keywords (or both: the keywords
    change the given config). Needs root (CAP_BPF, CAP_NET_ADMIN) to load
    BPF; plugins that cannot run are reported by plugin_status(). Engines
    still running at interpreter exit are stopped, detaching their
    programs.
    """

    def __init__(self, config: Optional[_retina.Config] = None, *, proc_root: Optional[str] = None,
                 sys_root: Optional[str] = None, **fields):
        if config is None:
            config = _retina.Config(**fields)
        elif fields:
            config = config.replace(**fields)
        self._core = _retina.Engine(config, proc_root=proc_root, sys_root=sys_root)
        self._streams = weakref.WeakSet()
        with _live_lock:
            _live.add(self)

    def start(self) -> "Engine":
        """Starts the plugins and the reader thread (once)."""
        self._core.start()
        return self

    def stop(self) -> None:
        """Stops plugins, detaching everything they attached; idempotent.
        An engine cannot be started again after stop(). Its streams are
        closed: what they hold stays readable, and iteration ends."""
        self._core.stop()
        for s in list(self._streams):
            s.close()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> "Engine":
        if not self._core.running:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._core.running

    def ready(self) -> bool:
        """True once started with at least one plugin running."""
        return self._core.ready()

    @property
    def config(self) -> _retina.Config:
        return self._core.config

    @property
    def cache(self) -> _retina.IpCache:
        """The IP cache flows are enriched from: upsert()/remove() endpoints."""
        return self._core.cache

    def plugin_status(self) -> list:
        """[{"name", "state", "reason"}] for every configured plugin."""
        return self._core.plugin_status()

    def pipeline_stats(self) -> dict:
        return self._core.pipeline_stats()

    def subscribe(self, name: str = "python", capacity: int = DEFAULT_MAX, filter=None) -> FlowStream:
        """A FlowStream of the flows matching `filter` (a retina.FlowFilter
        or a dict of its fields). `name` labels the stream's drop counter."""
        stream = FlowStream(self._core.subscribe(name, capacity, filter), self)
        self._streams.add(stream)
        return stream

    def __repr__(self):
        states = ", ".join(f"{p['name']}={p['state']}" for p in self.plugin_status())
        return f"<retina.Engine {'running' if self.running else 'not running'}: {states}>"


class Pipeline(_MetricsMixin):
    """The engine's flow path without the kernel, for recorded data.

        cache = retina.IpCache()
        cache.upsert(namespace="shop", name="web", ips=["10.0.0.5"])
        p = retina.Pipeline(cache, boot_offset_ns=0)
        stream = p.subscribe("all")
        p.feed(open("records.bin", "rb").read())
        df = stream.poll_df()

    Records' times are CLOCK_BOOTTIME; boot_offset_ns is added to make them
    unix time (default: this machine's current offset, right for records
    of this boot). The basic metric aggregator runs as in the engine, so
    metrics() shows the forward/DNS/retransmission counts of what was fed.
    """

    def __init__(self, cache: Optional[_retina.IpCache] = None, *, boot_offset_ns: Optional[int] = None):
        self._core = _retina.Pipeline(cache, boot_offset_ns)
        self._streams = weakref.WeakSet()

    def feed(self, data, plugin: str = "packetparser", *, align: int = 1, errors: str = "raise") -> int:
        """Decodes, enriches and dispatches records: a bytes-like buffer of
        records back to back (each padded to `align` bytes), or an iterable
        of bytes-like records. Returns how many decoded. errors="raise"
        raises retina.DecodeError at the first bad record (the ones before
        it are processed); errors="skip" counts bad records in stats() and
        in lost_events_counter{type="decoder"}. A buffer whose framing
        breaks always raises. `plugin` labels the reject counter."""
        return self._core.feed(data, plugin, align, errors)

    def subscribe(self, name: str = "python", capacity: int = DEFAULT_MAX, filter=None) -> FlowStream:
        """A FlowStream of what is fed from now on. Size `capacity` for the
        data you feed between reads: a full stream drops (and counts)."""
        stream = FlowStream(self._core.subscribe(name, capacity, filter), self)
        self._streams.add(stream)
        return stream

    def stats(self) -> dict:
        """records, decoded, rejected {reason: count}, enrich_hits, enrich_misses."""
        return self._core.stats()

    def close(self) -> None:
        """Closes every stream of this pipeline (queued flows stay readable)."""
        for s in list(self._streams):
            s.close()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def cache(self) -> _retina.IpCache:
        return self._core.cache

    @property
    def boot_offset_ns(self) -> int:
        return self._core.boot_offset_ns


def decode_many(data, *, boot_offset_ns: Optional[int] = None, cache: Optional[_retina.IpCache] = None,
                align: int = 1, errors: str = "raise"):
    """Records (a buffer of records back to back, or an iterable of
    records) -> DataFrame with retina.COLUMNS, enriched from `cache` when
    given. With errors="skip", bad records are left out and counted in
    df.attrs["rejected"] ({reason: count})."""
    batch, rejected = _retina._decode_batch(data, boot_offset_ns, cache, align, errors)
    df = _frames.batch_frame(batch)
    df.attrs["rejected"] = rejected
    return df


def decode_flows(data, *, boot_offset_ns: Optional[int] = None, cache: Optional[_retina.IpCache] = None,
                 align: int = 1, errors: str = "raise") -> list:
    """Like decode_many(), as a list of Flow."""
    batch, _ = _retina._decode_batch(data, boot_offset_ns, cache, align, errors)
    return batch._take_flows()


def decode_numpy(data, strings=None, *, boot_offset_ns: Optional[int] = None,
                 cache: Optional[_retina.IpCache] = None, align: int = 1, errors: str = "raise"):
    """Like decode_many(), as (structured array, StringTable)."""
    strings = strings if strings is not None else _retina.StringTable()
    batch, _ = _retina._decode_batch(data, boot_offset_ns, cache, align, errors)
    return batch.to_numpy(strings), strings
