"""retina for notebooks: run the engine (or feed recorded ring-buffer
records through an offline pipeline) and read flows as Flow objects,
pandas DataFrames or structured numpy arrays.

    import retina
    with retina.Engine(enabled_plugins=["packetparser"], data_aggregation_level="low") as engine:
        stream = engine.subscribe("notebook")
        df = stream.collect_df(10)            # ten seconds of flows
        engine.metrics()                       # Prometheus samples as a DataFrame

    df = retina.decode_many(open("records.bin", "rb").read(), boot_offset_ns=0)
    df = retina.read_flows("flows.jsonl")      # a flow log, or http://node:10093/flows?max=100

See docs/python.md.
"""
from . import _retina, metrics, records
from ._engine import Engine, Pipeline, decode_flows, decode_many, decode_numpy
from ._frames import COLUMNS, NUMPY_DTYPE, batch_frame as to_frame, numpy_frame
from ._hubble_json import read_flows
from ._retina import (
    ABI_VERSION,
    Config,
    DecodeError,
    Endpoint,
    Error,
    Flow,
    FlowBatch,
    InternalError,
    InvalidArgument,
    IpCache,
    NotFound,
    ParseError,
    PLUGINS,
    StringTable,
    SystemCallError,
    Unsupported,
    boot_to_realtime_offset_ns,
    decode,
    flow_json,
    set_log_level,
)
from ._stream import FlowFilter, FlowStream

__all__ = [
    "ABI_VERSION", "COLUMNS", "NUMPY_DTYPE", "Config", "DecodeError", "Endpoint", "Engine", "Error",
    "Flow", "FlowBatch", "FlowFilter", "FlowStream", "InternalError", "InvalidArgument", "IpCache",
    "NotFound", "PLUGINS", "ParseError", "Pipeline", "StringTable", "SystemCallError", "Unsupported",
    "boot_to_realtime_offset_ns", "decode", "decode_flows", "decode_many", "decode_numpy",
    "flow_json", "metrics", "set_log_level", "numpy_frame", "read_flows", "records", "to_frame",
]
