"""Both field-access styles on the same messages while `legacy_field_access()` is active
(in-process: this is data-structure behaviour, not protocol behaviour), and nothing left
behind afterwards."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from udfcollection.compat.legacy_fields import PendingEntry, legacy_field_access
from udfcollection.protocol import udf_pb2


@pytest.fixture
def legacy():
    with legacy_field_access() as ok:
        assert ok, "the upb backend allows the patch"
        yield


def test_iteration_yields_keys_that_are_also_entries(legacy) -> None:
    p = udf_pb2.Point()
    p.fieldsDouble["a"] = 1.5
    p.fieldsDouble["b"] = 2.5
    p.tags["host"] = "h1"
    entries = sorted(p.fieldsDouble, key=str)
    assert entries == ["a", "b"]  # map style: the keys themselves
    assert [(e.key, e.value) for e in entries] == [("a", 1.5), ("b", 2.5)]  # entry style
    assert [(t.key, t.value) for t in p.tags] == [("host", "h1")]
    assert dict(p.fieldsDouble.items()) == {"a": 1.5, "b": 2.5}
    # The views keep yielding plain keys (map-style code walks them at C speed).
    assert [type(k) for k in p.fieldsDouble.keys()] == [str, str]  # noqa: SIM118
    assert sorted(p.fieldsDouble.values()) == [1.5, 2.5]
    assert ("host", "h1") in p.tags.items() and len(p.tags.items()) == 1
    assert {k: p.fieldsDouble[k] for k in p.fieldsDouble} == {"a": 1.5, "b": 2.5}
    assert "a" in p.fieldsDouble and "z" not in p.fieldsDouble


def test_assigning_an_entry_value_writes_through(legacy) -> None:
    p = udf_pb2.Point()
    p.fieldsInt["n"] = 2
    for kv in p.fieldsInt:
        kv.value = kv.value * 10
    assert dict(p.fieldsInt) == {"n": 20}


def test_add_and_extend(legacy) -> None:
    p = udf_pb2.Point()
    e = p.fieldsDouble.add(key="x", value=3.0)
    assert (e.key, e.value) == ("x", 3.0)
    p.fieldsString.add(key="s")  # no value: the type's default, as an empty entry had
    later = p.fieldsBool.add()
    assert isinstance(later, PendingEntry)
    later.value = True
    assert dict(p.fieldsBool) == {}  # nothing stored until the key is known
    later.key = "flag"
    q = udf_pb2.Point()
    q.tags.add(key="a", value="1")
    p.tags.extend(q.tags)
    assert dict(p.fieldsDouble) == {"x": 3.0}
    assert dict(p.fieldsString) == {"s": ""}
    assert dict(p.fieldsBool) == {"flag": True}
    assert dict(p.tags) == {"a": "1"}


def test_message_valued_map_entries(legacy) -> None:
    r = udf_pb2.Response()
    opts = r.info.options
    opts.add(key="field").value.valueTypes.append(udf_pb2.STRING)
    pending = opts.add()
    pending.value.valueTypes.append(udf_pb2.INT)  # before the key is known
    pending.key = "size"
    info = udf_pb2.OptionInfo()
    info.valueTypes.extend([udf_pb2.DOUBLE, udf_pb2.DOUBLE])
    opts.add(key="range", value=info)
    got = {e.key: list(e.value.valueTypes) for e in opts}
    assert got == {"field": [udf_pb2.STRING], "size": [udf_pb2.INT],
                   "range": [udf_pb2.DOUBLE, udf_pb2.DOUBLE]}
    # The wire form is the map Kapacitor expects.
    back = udf_pb2.Response.FromString(r.SerializeToString())
    assert list(back.info.options["size"].valueTypes) == [udf_pb2.INT]


def test_entries_pickle_copy_and_serialise_as_plain_strings(legacy) -> None:
    p = udf_pb2.Point()
    p.fieldsDouble["v"] = 1.0
    state = dict(p.fieldsDouble)
    assert type(pickle.loads(pickle.dumps(state)).popitem()[0]) is str
    assert type(next(iter(copy.deepcopy(state)))) is str
    assert json.loads(json.dumps(state)) == {"v": 1.0}


def test_str_snapshot_is_encoded(legacy) -> None:
    r = udf_pb2.Response()
    r.snapshot.snapshot = "{\"k\": \"é\"}"
    assert r.snapshot.snapshot == "{\"k\": \"é\"}".encode()
    r.snapshot.snapshot = ""
    assert r.WhichOneof("message") == "snapshot" and r.snapshot.snapshot == b""
    r.snapshot.snapshot = b"\x00raw"
    assert r.snapshot.snapshot == b"\x00raw"


def test_everything_is_undone_on_exit() -> None:
    p = udf_pb2.Point()
    p.fieldsDouble["a"] = 1.0
    names = ("__iter__", "keys", "values", "items", "add", "extend")
    before = {n: vars(type(p.fieldsDouble)).get(n) for n in names}
    with legacy_field_access():
        assert hasattr(p.fieldsDouble, "add")
        assert {n: vars(type(p.fieldsDouble)).get(n) for n in names} != before
    assert not hasattr(p.fieldsDouble, "add")
    assert not hasattr(udf_pb2.InfoResponse().options, "add")
    assert [type(k) for k in p.fieldsDouble] == [str]
    assert {n: vars(type(p.fieldsDouble)).get(n) for n in names} == before
    assert list(p.fieldsDouble.items()) == [("a", 1.0)]
    with pytest.raises(TypeError):
        udf_pb2.Response().snapshot.snapshot = "text"
