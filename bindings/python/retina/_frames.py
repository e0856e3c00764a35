"""Tabular forms of flows: pandas DataFrames and structured numpy arrays."""
from __future__ import annotations

import numpy as np

from . import _retina

# DataFrame columns, in order, with their dtypes (object columns hold str,
# dns_ips holds tuples of str).
COLUMNS = {
    "time": "datetime64[ns]",
    "verdict": "object",
    "origin": "object",
    "ip_version": "object",
    "src_ip": "object",
    "dst_ip": "object",
    "proto": "object",
    "src_port": "uint16",
    "dst_port": "uint16",
    "tcp_flags": "object",
    "direction": "object",
    "observation_point": "object",
    "is_reply": "bool",
    "is_reply_known": "bool",
    "packets": "uint64",
    "bytes": "uint64",
    "src_kind": "object",
    "src_namespace": "object",
    "src_name": "object",
    "src_pod": "object",
    "src_workload": "object",
    "src_workload_kind": "object",
    "src_service": "object",
    "src_zone": "object",
    "dst_kind": "object",
    "dst_namespace": "object",
    "dst_name": "object",
    "dst_pod": "object",
    "dst_workload": "object",
    "dst_workload_kind": "object",
    "dst_service": "object",
    "dst_zone": "object",
    "drop_reason": "object",
    "drop_reason_code": "uint32",
    "dns_query": "object",
    "dns_qtype": "object",
    "dns_rcode": "object",
    "dns_ips": "object",
    "ifindex": "uint32",
}

NUMPY_DTYPE = _retina.FLOW_NUMPY_DTYPE
# Fields of the numpy form that are codes into a StringTable.
STRING_CODE_FIELDS = ("src_namespace", "src_pod", "src_workload", "dst_namespace", "dst_pod",
                      "dst_workload", "drop_reason", "dns_query")
# Fields of the numpy form that are numeric enumerations.
ENUM_FIELDS = ("verdict", "origin", "ip_version", "proto", "direction", "observation_point")


def batch_frame(batch):
    """A FlowBatch or a list of Flow as a DataFrame with COLUMNS."""
    import pandas as pd

    if isinstance(batch, list):
        if not batch:
            return empty_frame()
        rows = [f.to_dict() for f in batch]
        return pd.DataFrame({c: np.asarray([r[c] for r in rows], dtype=d) if d != "object"
                             else _objects([r[c] for r in rows]) for c, d in COLUMNS.items()})
    return pd.DataFrame(batch.columns(), copy=False)


def _objects(values):
    # Element by element: numpy would turn a list of equal-length tuples
    # into a 2-D array.
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def empty_frame():
    import pandas as pd

    return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in COLUMNS.items()})


def _names(table: dict, codes: np.ndarray) -> np.ndarray:
    lookup = np.empty(256 if codes.dtype.itemsize == 1 else 65536, dtype=object)
    lookup[:] = ""
    for k, v in table.items():
        if 0 <= k < len(lookup):
            lookup[k] = v
    return lookup[codes]


def numpy_frame(arr: np.ndarray, strings):
    """The DataFrame of a poll_numpy() array: enumerations become their
    names and string codes become str, so the result has the DataFrame's
    names and dtypes for every column the array holds."""
    import pandas as pd

    table = np.asarray(strings.to_list() if hasattr(strings, "to_list") else list(strings), dtype=object)
    names = _retina.ENUM_NAMES
    cols = {}
    for field in NUMPY_DTYPE.names:
        col = arr[field]
        if field in STRING_CODE_FIELDS:
            cols[field] = table[col]
        elif field in ENUM_FIELDS:
            cols[field] = _names(names[field], col)
        elif field in ("src_ip", "dst_ip"):
            cols[field] = np.char.decode(col, "ascii").astype(object)
        elif field == "tcp_flags":
            uniq, inv = np.unique(col, return_inverse=True)
            cols[field] = np.asarray([_retina.tcp_flags_text(int(u)) for u in uniq], dtype=object)[inv] \
                if len(col) else np.empty(0, dtype=object)
        elif field in ("dns_qtype", "dns_rcode"):
            fn = _retina.dns_qtype_name if field == "dns_qtype" else _retina.dns_rcode_name
            is_dns = arr["verdict"] == 16
            uniq, inv = np.unique(col, return_inverse=True)
            named = np.asarray([fn(int(u)) for u in uniq], dtype=object)[inv] if len(col) else \
                np.empty(0, dtype=object)
            cols[field] = np.where(is_dns, named, "").astype(object)
        else:
            cols[field] = col
    order = [c for c in COLUMNS if c in cols]
    return pd.DataFrame({c: cols[c] for c in order})
