"""Per-group state stays within the group cap, however many distinct groups arrive.

Kapacitor never says a group has gone away, so a UDF that keeps state per group grows without
bound on high-cardinality tags. 1,000,000 distinct groups go through a real `kapudf run
edge_detect` with a small `maxGroups`; its memory must not grow after the cap is reached, and a
snapshot must hold exactly the most recently seen groups.
"""

from __future__ import annotations

import json

import psutil

from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import encode_frame
from udfcollection.testing import (
    WireClient,
    init_request,
    snapshot_request,
)

CAP = 1000
TOTAL = 1_000_000
CHUNK = 50_000


def group_frames(start: int, stop: int) -> bytes:
    """Points of groups host=<i> for i in [start, stop), one point each, grouped by host.

    Built from one serialized template by splicing in the 7-digit host, because serializing a
    million messages here would cost more time than the agent spends on them."""
    req = udf_pb2.Request()
    pb = req.point
    pb.name = "m"
    pb.time = 1_700_000_000_000_000_000
    pb.dimensions.append("host")
    pb.fieldsDouble["value"] = 1.0
    pb.group = "host=HHHHHHH"
    pb.tags["host"] = "HHHHHHH"
    parts = encode_frame(req.SerializeToString()).split(b"HHHHHHH")
    assert len(parts) == 3
    a, b, c = parts
    return b"".join(a + h + b + h + c for h in (b"%07d" % i for i in range(start, stop)))


def rss(proc: psutil.Process) -> int:
    return proc.memory_info().rss


def test_million_groups_stay_within_cap():
    with WireClient.for_udf("edge_detect") as client:
        init = client.request(init_request([
            ("field", [("string", "value")]), ("emitFirst", [("bool", False)]),
            ("maxGroups", [("int", CAP)]),
        ]), timeout=20)
        assert init.init.success, init.init.error
        agent = psutil.Process(client.proc.pid)
        samples: dict[int, int] = {}
        for start in range(0, TOTAL, CHUNK):
            client.send_raw(group_frames(start, start + CHUNK))
            # Snapshots are answered in order, after every point before them is processed.
            snap = client.request(snapshot_request(), timeout=60)
            assert snap.WhichOneof("message") == "snapshot"
            samples[start + CHUNK] = rss(agent)
        doc = json.loads(snap.snapshot.snapshot)
        client.close_input()
        rest = client.recv_all(timeout=30)
        assert client.wait(10) == 0
    assert [r.WhichOneof("message") for r in rest] == []

    # Exactly the CAP most recently seen groups, least recently seen first.
    keys = [k for k, _ in doc["groups"]]
    assert keys == [f"host={i:07d}" for i in range(TOTAL - CAP, TOTAL)]

    # No growth after the cap: compare memory once well past the cap with the end.
    print({k: round(v / 2**20, 1) for k, v in samples.items()})
    early = samples[200_000]
    late = samples[TOTAL]
    assert late - early < 8 * 1024 * 1024, (
        f"agent RSS grew by {(late - early) / 2**20:.1f} MiB between 200,000 and "
        f"1,000,000 groups with maxGroups={CAP}: {samples}")


def test_evicted_group_starts_fresh_and_eviction_is_logged_once():
    frames = [
        ("a", "up"), ("b", "up"), ("c", "up"),  # cap 2: 'a' is evicted when 'c' arrives
        ("b", "up"),  # b still known: no output
        ("a", "up"),  # a was forgotten: first point again, emitted (evicts c)
        ("c", "up"),  # c was evicted by a: first point again, emitted
    ]
    reqs = []
    for i, (host, v) in enumerate(frames):
        r = udf_pb2.Request()
        r.point.time = i
        r.point.name = "m"
        r.point.group = "host=" + host
        r.point.dimensions.append("host")
        r.point.tags["host"] = host
        r.point.fieldsString["value"] = v
        reqs.append(r)
    with WireClient.for_udf("edge_detect") as client:
        init = client.request(init_request([("field", [("string", "value")]),
                                            ("maxGroups", [("int", 2)])]), timeout=20)
        assert init.init.success
        client.send_many(reqs)
        client.close_input()
        out = client.recv_all(timeout=10)
        assert client.wait(10) == 0
        err = client.stderr_text()
    emitted = [(r.point.tags["host"], r.point.time) for r in out]
    assert emitted == [("a", 0), ("b", 1), ("c", 2), ("a", 4), ("c", 5)]
    assert err.count("more than 2 groups seen") == 1, err
