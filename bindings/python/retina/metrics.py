"""Prometheus text exposition (format 0.0.4) -> samples and DataFrames."""
from __future__ import annotations

import math
import re
from typing import Dict, List, NamedTuple, Optional

__all__ = ["Sample", "parse", "to_frame", "value"]


class Sample(NamedTuple):
    name: str
    labels: Dict[str, str]
    value: float
    type: str  # the family's TYPE: counter, gauge, histogram, summary, untyped


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"')
_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


def _float(text: str, lineno: int) -> float:
    t = text.strip()
    if t in ("+Inf", "Inf"):
        return math.inf
    if t == "-Inf":
        return -math.inf
    if t == "NaN":
        return math.nan
    try:
        return float(t)
    except ValueError:
        raise ValueError(f"metrics line {lineno}: {text!r} is not a number") from None


def _labels(line: str, pos: int, lineno: int) -> tuple[Dict[str, str], int]:
    labels: Dict[str, str] = {}
    while True:
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return labels, pos + 1
        m = _LABEL.match(line, pos)
        if not m:
            raise ValueError(f"metrics line {lineno}: bad label at column {pos + 1}")
        pos = m.end()
        value = []
        while True:
            if pos >= len(line):
                raise ValueError(f"metrics line {lineno}: unterminated label value")
            c = line[pos]
            if c == "\\":
                nxt = line[pos + 1:pos + 2]
                value.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                pos += 2
            elif c == '"':
                pos += 1
                break
            else:
                value.append(c)
                pos += 1
        labels[m.group(1)] = "".join(value)
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == ",":
            pos += 1


def parse(text: str) -> List[Sample]:
    """Every sample of an exposition, in order. Raises ValueError on
    malformed lines."""
    types: Dict[str, str] = {}
    out: List[Sample] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = _NAME.match(line)
        if not m:
            raise ValueError(f"metrics line {lineno}: no metric name")
        name, pos = m.group(0), m.end()
        labels: Dict[str, str] = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = _labels(line, pos + 1, lineno)
        rest = line[pos:].split()
        if not rest:
            raise ValueError(f"metrics line {lineno}: no value")
        family = name
        if family not in types:
            for s in _SUFFIXES:
                if name.endswith(s) and name[: -len(s)] in types:
                    family = name[: -len(s)]
                    break
        out.append(Sample(name, labels, _float(rest[0], lineno), types.get(family, "untyped")))
    return out


def to_frame(samples: List[Sample]):
    """A DataFrame with columns name, labels (dict), value, type."""
    import pandas as pd

    return pd.DataFrame(
        {
            "name": pd.Series([s.name for s in samples], dtype=object),
            "labels": pd.Series([s.labels for s in samples], dtype=object),
            "value": pd.Series([s.value for s in samples], dtype="float64"),
            "type": pd.Series([s.type for s in samples], dtype=object),
        }
    )


def value(samples: List[Sample], name: str, **labels: str) -> Optional[float]:
    """Sum of the samples called `name` whose labels include `labels`;
    None when there is none."""
    total = None
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            total = (total or 0.0) + s.value
    return total
