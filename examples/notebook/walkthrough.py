# %% [markdown]
# # Analysing flows with retina in a notebook
#
# A walk-through in cells (`# %%`): open it in Jupyter (with jupytext) or
# VS Code, or run it as a script:
#
#     PYTHONPATH=build/bindings/python /usr/bin/python3 examples/notebook/walkthrough.py          # offline
#     sudo PYTHONPATH=build/bindings/python /usr/bin/python3 examples/notebook/walkthrough.py --live
#
# Part 1 needs nothing but the module: it builds a small "recording" of
# kernel records, enriches it from an IP cache and analyses it with pandas.
# Part 2 (--live, root) starts the engine on this machine and reads real
# flows for a few seconds.

# %%
import sys

import numpy as np
import pandas as pd

import retina
from retina import records

pd.set_option("display.width", 160)

# %% [markdown]
# ## 1. Offline: recorded ring-buffer records
#
# Who is who: the IP cache maps addresses to pods, services and nodes.
# In a cluster the engine fills it from Kubernetes or an endpoints file;
# here we add a few endpoints by hand.

# %%
cache = retina.IpCache()
cache.upsert(namespace="shop", name="web-7d9f", ips=["10.0.0.5"], labels={"app": "web"},
             workloads=[("Deployment", "web")], zone="zone-a")
cache.upsert(namespace="shop", name="cart-5c4b", ips=["10.0.0.6"], workloads="Deployment/cart", zone="zone-a")
cache.upsert(namespace="db", name="pg-0", ips=["10.0.0.9"], workloads="StatefulSet/pg", zone="zone-b")
cache.upsert(kind="service", namespace="kube-system", name="kube-dns", ips=["10.96.0.10"])
cache

# %% [markdown]
# A recording: records exactly as the BPF programs write them
# (include/retina/abi/events.h), back to back. `retina.records` builds
# them; a real capture would be read from a file the same way.

# %%
rng = np.random.default_rng(7)
talkers = [("10.0.0.5", "10.0.0.9", 5432), ("10.0.0.6", "10.0.0.9", 5432), ("10.0.0.5", "10.0.0.6", 8080)]
recs = []
ts = 1_000_000_000
for i in range(3000):
    src, dst, port = talkers[rng.integers(len(talkers))]
    size = int(rng.integers(60, 1500))
    ts += int(rng.integers(100_000, 2_000_000))
    recs.append(records.packet(src, dst, sport=40000 + i % 50, dport=port, proto="tcp", bytes=size,
                               tcp_flags="ACK", obs_point=records.OBS_FROM_ENDPOINT, ts_ns=ts))
    recs.append(records.packet(src, dst, sport=40000 + i % 50, dport=port, proto="tcp", bytes=size,
                               tcp_flags="ACK", obs_point=records.OBS_TO_ENDPOINT, ts_ns=ts + 20_000))
dns_answer = records.dns_message("pg.db.svc.cluster.local", response=True, answers=["10.0.0.9"])
recs.append(records.dns("10.96.0.10", "10.0.0.5", dns_answer, sport=53, dport=33333,
                        obs_point=records.OBS_TO_ENDPOINT, ts_ns=ts + 1))
recs.append(records.drop("10.0.0.6", "203.0.113.7", sport=40999, dport=443, bytes=60, reason=6, direction=2,
                         ts_ns=ts + 2))
recording = records.concat(recs)
print(f"{len(recs)} records, {len(recording)} bytes")

# %% [markdown]
# `decode_many` turns the recording into a DataFrame, one row per flow.
# Record times are boot-time; `boot_offset_ns` makes them wall-clock
# (the default is this machine's offset, right for records of this boot).

# %%
df = retina.decode_many(recording, cache=cache, boot_offset_ns=1_700_000_000_000_000_000)
df[["time", "verdict", "src_pod", "dst_pod", "dst_port", "direction", "observation_point", "packets", "bytes"]].head()

# %% [markdown]
# Top talkers by pod pair, counted once (at the sender's veth, EGRESS):

# %%
egress = df[(df["verdict"] == "FORWARDED") & (df["direction"] == "EGRESS")]
top = (egress.groupby(["src_namespace", "src_pod", "dst_namespace", "dst_pod"])[["packets", "bytes"]]
       .sum().sort_values("bytes", ascending=False))
top

# %% [markdown]
# Traffic over time, by destination workload (1-second buckets):

# %%
per_second = egress.set_index("time").groupby("dst_workload")["bytes"].resample("1s").sum().unstack(0).fillna(0)
per_second.head()

# %% [markdown]
# DNS answers and drops are rows too:

# %%
df[df["verdict"] == "DNS"][["src_name", "dst_pod", "dns_query", "dns_qtype", "dns_rcode", "dns_ips"]]

# %%
df[df["verdict"] == "DROPPED"][["src_pod", "dst_ip", "dst_port", "drop_reason", "drop_reason_code"]]

# %% [markdown]
# The same flows through a `Pipeline`: what the engine does with live
# records, including the basic metrics Retina's dashboards read.

# %%
pipeline = retina.Pipeline(cache, boot_offset_ns=0)
stream = pipeline.subscribe("notebook", capacity=len(recs))
pipeline.feed(recording)
flows = stream.poll_df()
metrics = pipeline.metrics()
print(pipeline.stats())
metrics[metrics["name"].str.startswith("networkobservability_forward")]

# %%
assert pipeline.metric("networkobservability_forward_bytes", direction="egress") == egress["bytes"].sum()
assert len(flows) == len(df) and stream.dropped == 0

# %% [markdown]
# For large volumes, `poll_numpy()` / `decode_numpy()` build a structured
# array in C++ without a Python object per flow; string fields are codes
# into a table that `numpy_frame` resolves.

# %%
arr, strings = retina.decode_numpy(recording, cache=cache, boot_offset_ns=0)
print(arr.dtype.names[:8], "...", arr.nbytes, "bytes")
pods = np.asarray(strings.to_list(), dtype=object)
sent = pd.Series(arr["bytes"][arr["direction"] == 2]).groupby(pods[arr["src_pod"][arr["direction"] == 2]]).sum()
sent

# %% [markdown]
# One flow as Hubble prints it:

# %%
print(retina.flow_json(retina.decode_flows(recs[:1], cache=cache)[0], node_name="node-1"))

# %% [markdown]
# ## 2. Live: the engine on this machine (root)
#
# Aggregation "low" reports every packet; "high" (the default) reports
# connections through an in-kernel conntrack. Without Kubernetes, only
# the interfaces named (or the default-route interface) are watched.

# %%
if "--live" in sys.argv:
    with retina.Engine(enabled_plugins=["packetparser"], data_aggregation_level="low") as engine:
        print(engine.plugin_status())
        live = engine.subscribe("notebook", capacity=1 << 20)
        seconds = 5
        frame = live.collect_df(seconds)
        print(f"{len(frame)} flows in {seconds} s, {live.dropped} dropped")
        print(frame.groupby(["src_ip", "dst_ip", "proto", "direction"])[["packets", "bytes"]].sum()
              .sort_values("bytes", ascending=False).head(10))
        print(engine.metrics().query("name.str.contains('forward')", engine="python"))
