"""FlowStream: a subscriber's queue of flows, read as Flow objects,
pandas DataFrames or structured numpy arrays."""
from __future__ import annotations

from typing import Iterator, List, NamedTuple, Optional, Sequence, Union

from . import _frames

DEFAULT_MAX = 1 << 16


class FlowFilter(NamedTuple):
    """Which flows a subscriber wants. An empty field matches everything; a
    flow must match every non-empty field (any one of its values)."""
    verdicts: Optional[Sequence[Union[str, int]]] = None   # "FORWARDED", "DROPPED", "DNS", ...
    origins: Optional[Sequence[str]] = None                # packetparser, dropreason, dns, tcpretrans
    namespaces: Optional[Sequence[str]] = None             # either side's namespace
    pods: Optional[Sequence[str]] = None                   # either side's pod, "ns/name" or "name"
    ips: Optional[Sequence[str]] = None                    # either side's address
    ports: Optional[Sequence[int]] = None                  # either side's port


class FlowStream:
    """Flows from an engine or an offline pipeline.

    poll*(max, timeout) wait up to `timeout` seconds (None: until a flow
    comes or the stream closes) for the first flow, then take up to `max`
    queued flows. collect*(duration) gather flows for `duration` seconds;
    interrupting a collect returns what it gathered so far. Waiting
    releases the GIL. Iterating blocks for each next flow and ends when
    the stream is closed and drained.

    When the consumer falls behind, the queue (`capacity` flows) fills and
    further flows are dropped and counted in `dropped` (and in the
    lost_events_counter metric); nothing is lost silently.
    """

    def __init__(self, sub, owner=None):
        self._sub = sub
        self._owner = owner  # keeps the engine or pipeline alive

    # ---- state ----
    @property
    def name(self) -> str:
        return self._sub.name

    @property
    def dropped(self) -> int:
        """Flows dropped because this stream's queue was full."""
        return self._sub.dropped

    @property
    def delivered(self) -> int:
        """Flows accepted into this stream's queue."""
        return self._sub.delivered

    @property
    def queued(self) -> int:
        return self._sub.queued

    @property
    def closed(self) -> bool:
        return self._sub.closed

    @property
    def strings(self):
        """The StringTable behind the string-code fields of poll_numpy()."""
        return self._sub.strings

    def close(self) -> None:
        """Stops delivery; flows already queued can still be read."""
        self._sub.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return f"<FlowStream {self.name!r} {state} queued={self.queued} dropped={self.dropped}>"

    # ---- reading ----
    def _pop(self, max, timeout, duration):
        return self._sub.pop(max, timeout, duration)

    def poll(self, max: Optional[int] = DEFAULT_MAX, timeout: Optional[float] = 0.0) -> list:
        """Up to `max` flows as a list of Flow."""
        return self._pop(max, timeout, None)._take_flows()

    def poll_batch(self, max: Optional[int] = DEFAULT_MAX, timeout: Optional[float] = 0.0):
        """Up to `max` flows as a FlowBatch (kept in C++ until converted)."""
        return self._pop(max, timeout, None)

    def poll_df(self, max: Optional[int] = DEFAULT_MAX, timeout: Optional[float] = 0.0):
        """Up to `max` flows as a pandas DataFrame (see retina.COLUMNS)."""
        return _frames.batch_frame(self._pop(max, timeout, None))

    def poll_numpy(self, max: Optional[int] = DEFAULT_MAX, timeout: Optional[float] = 0.0):
        """Up to `max` flows as a structured numpy array (retina.NUMPY_DTYPE),
        built without a Python object per flow. String fields are codes
        into self.strings; retina.numpy_frame() turns it into a DataFrame."""
        return self._pop(max, timeout, None).to_numpy(self._sub.strings)

    def collect(self, duration: float, max: Optional[int] = None) -> list:
        """Flows gathered for `duration` seconds (or until `max`)."""
        return self._pop(max, None, duration)._take_flows()

    def collect_batch(self, duration: float, max: Optional[int] = None):
        return self._pop(max, None, duration)

    def collect_df(self, duration: float, max: Optional[int] = None):
        return _frames.batch_frame(self._pop(max, None, duration))

    def collect_numpy(self, duration: float, max: Optional[int] = None):
        return self._pop(max, None, duration).to_numpy(self._sub.strings)

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        batch = self._pop(1, None, None)
        if len(batch) == 0:
            raise StopIteration
        return batch[0]
