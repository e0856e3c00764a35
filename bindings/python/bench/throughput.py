"""Throughput of the Python paths on synthetic packet records (no kernel).

    PYTHONPATH=build/bindings/python /usr/bin/python3 bindings/python/bench/throughput.py [N]

Prints flows per second for: decode_many (DataFrame), decode_numpy, and a
Pipeline feed followed by poll / poll_df / poll_numpy of the same flows.
"""
import sys
import time

import retina
from retina import records


def rate(n, seconds):
    return f"{n / seconds / 1e6:6.2f} M flows/s ({seconds * 1e3:7.1f} ms)"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    pods = 200
    cache = retina.IpCache()
    for i in range(pods):
        cache.upsert(namespace=f"ns{i % 10}", name=f"pod-{i}", ips=[f"10.1.{i // 250}.{i % 250 + 1}"],
                     workloads=f"Deployment/app{i % 20}")
    proto = [records.packet(f"10.1.{i // 250}.{i % 250 + 1}", f"10.1.{(i * 7 % pods) // 250}.{(i * 7 % pods) % 250 + 1}",
                            sport=30000 + i, dport=80, proto="tcp", bytes=1500, tcp_flags="ACK", ts_ns=i)
             for i in range(pods)]
    buf = records.concat(proto[i % pods] for i in range(n))
    print(f"{n} packet records, {pods} pods in the cache")

    t = time.perf_counter()
    df = retina.decode_many(buf, boot_offset_ns=0, cache=cache)
    print("decode_many -> DataFrame  ", rate(len(df), time.perf_counter() - t))

    t = time.perf_counter()
    arr, _ = retina.decode_numpy(buf, boot_offset_ns=0, cache=cache)
    print("decode_numpy -> ndarray   ", rate(len(arr), time.perf_counter() - t))

    for name, read in (("poll", lambda s: s.poll(max=None)), ("poll_df", lambda s: s.poll_df(max=None)),
                       ("poll_numpy", lambda s: s.poll_numpy(max=None))):
        p = retina.Pipeline(cache, boot_offset_ns=0)
        s = p.subscribe("bench", capacity=n)
        t = time.perf_counter()
        p.feed(buf)
        fed = time.perf_counter() - t
        t = time.perf_counter()
        out = read(s)
        print(f"Pipeline.feed             {rate(n, fed)}   then {name:10s} {rate(len(out), time.perf_counter() - t)}")
        assert s.dropped == 0


if __name__ == "__main__":
    main()
