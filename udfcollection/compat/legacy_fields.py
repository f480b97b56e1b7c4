"""The repeated-entry field style of older generated code, on top of proto3 maps.

Scripts written against older generated `udf_pb2` code treat the map fields (Point `tags`,
`fieldsDouble`, `fieldsInt`, `fieldsString`, `fieldsBool`; BeginBatch/EndBatch `tags`;
InfoResponse `options`) as lists of entry messages:

    for kv in point.fieldsDouble: use(kv.key, kv.value)
    response.point.fieldsDouble.add(key="avg", value=1.5)

Newer scripts treat the same fields as maps (`point.fieldsDouble["x"]`, `in`, `.items()`,
assignment). While `legacy_field_access()` is active both styles work on the same objects:

- iterating a map yields `MapEntry` objects, which *are* the key strings (a `str` subclass:
  equal, same hash, usable as keys) and also carry `.key` and `.value` (reading `.value` reads
  the map; assigning it writes through);
- map containers gain `add(key=..., value=...)` (returns the entry; `add()` with no key returns
  an entry that is stored once its `.key` is set) and `extend(entries)`;
- `keys()`, `values()` and `items()` keep yielding plain keys, at C iteration speed;
- a `str` assigned to `SnapshotResponse.snapshot` is stored UTF-8 encoded instead of raising
  TypeError (Python 2 era scripts set `''` or `json.dumps(...)`).

Why patch the container types rather than wrap every message: a wrapper sits on every field
access of every point (measured on a moving average: about 3 us per point, 40% of the
130,000 points/s budget), while the patch leaves map-style reads and writes on the C
container untouched; only iteration passes through Python. The patch is process-wide, which is
why it is installed only while an agent script runs (`kapudf run script.py` is a process of its
own) and undone afterwards.

Not supported: indexing a map by position (`point.fieldsDouble[0]`), since a map has no stable
order to index.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import ItemsView, Iterable, Iterator, KeysView, ValuesView
from typing import Any

from udfcollection.protocol import udf_pb2

log = logging.getLogger("udfcollection.compat")

_str_new = str.__new__


class MapEntry(str):
    """A key of a scalar map (tags, fields) that also reads like an old-style entry message."""

    # The key as a plain str; a C-level getter, no Python frame per access.
    key = property(str.__str__, doc="The entry's key.")

    @property
    def value(self) -> Any:
        return self._container[self]

    @value.setter
    def value(self, value: Any) -> None:
        self._container[self] = value

    def __reduce__(self):
        # Pickles (and deep-copies) as the plain key: a script's snapshot must not drag the
        # protobuf container along.
        return (str, (str.__str__(self),))


class MessageMapEntry(MapEntry):
    """A key of a message-valued map (InfoResponse.options); `.value` is the live message."""

    @property
    def value(self) -> Any:
        return self._container[self]

    @value.setter
    def value(self, value: Any) -> None:
        self._container[self].CopyFrom(value)


def _entry(cls: type[MapEntry], key: str, container: Any) -> MapEntry:
    e = _str_new(cls, key)
    e._container = container
    return e


class PendingEntry:
    """What `add()` returns when called without a key: stored in the map once `.key` is set
    (with the value assigned so far, or the type's default)."""

    __slots__ = ("_container", "_is_message", "_key", "_value")

    def __init__(self, container: Any, is_message: bool, value: Any = None):
        self._container = container
        self._is_message = is_message
        self._key: str | None = None
        self._value = value

    @property
    def key(self) -> str:
        return "" if self._key is None else self._key

    @key.setter
    def key(self, key: str) -> None:
        self._key = key
        c = self._container
        if self._is_message:
            target = c[key]
            if self._value is not None:
                target.MergeFrom(self._value)
            self._value = None
        elif self._value is None:
            c[key]  # reading a missing key of a scalar map stores its default
        else:
            c[key] = self._value

    @property
    def value(self) -> Any:
        if self._key is not None:
            return self._container[self._key]
        if self._is_message and self._value is None:
            self._value = self._container.GetEntryClass()().value
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        if self._key is None:
            if self._is_message:
                self.value.CopyFrom(value)
            else:
                self._value = value
        elif self._is_message:
            self._container[self._key].CopyFrom(value)
        else:
            self._container[self._key] = value


def _scalar_add(self, key: str | None = None, value: Any = None) -> MapEntry | PendingEntry:
    if key is None:
        return PendingEntry(self, False, value)
    if value is None:
        self[key]  # stores the default, as adding an entry with no value did
    else:
        self[key] = value
    e = _str_new(MapEntry, key)
    e._container = self
    return e


def _message_add(self, key: str | None = None, value: Any = None
                 ) -> MessageMapEntry | PendingEntry:
    if key is None:
        pending = PendingEntry(self, True)
        if value is not None:
            pending.value = value
        return pending
    target = self[key]
    if value is not None:
        target.CopyFrom(value)
    return _entry(MessageMapEntry, key, self)


def _scalar_extend(self, entries: Iterable[Any]) -> None:
    for e in entries:
        self[e.key] = e.value


def _message_extend(self, entries: Iterable[Any]) -> None:
    for e in entries:
        self[e.key].CopyFrom(e.value)


def _iter_with(original, cls: type[MapEntry]):
    def __iter__(self) -> Iterator[MapEntry]:
        new = _str_new
        for k in original(self):
            e = new(cls, k)
            e._container = self
            yield e

    return __iter__


def _views(original):
    """`keys()`, `values()` and `items()` over the container's own C iterator: map-style code
    that walks a map through them pays nothing for the entry objects plain iteration makes."""

    class Keys(KeysView):
        __slots__ = ()

        def __iter__(self):
            return original(self._mapping)

    class Values(ValuesView):
        __slots__ = ()

        def __iter__(self):
            m = self._mapping
            for k in original(m):
                yield m[k]

    class Items(ItemsView):
        __slots__ = ()

        def __iter__(self):
            m = self._mapping
            for k in original(m):
                yield (k, m[k])

    def keys(self):
        return Keys(self)

    def values(self):
        return Values(self)

    def items(self):
        return Items(self)

    return keys, values, items


def _snapshot_setattr(original):
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "snapshot" and isinstance(value, str):
            value = value.encode("utf-8")
        original(self, name, value)

    return __setattr__


_ABSENT = object()


def _patches() -> list[tuple[type, str, Any]]:
    scalar = type(udf_pb2.Point().fieldsDouble)
    message = type(udf_pb2.InfoResponse().options)
    snap = udf_pb2.SnapshotResponse
    patches: list[tuple[type, str, Any]] = []
    for cls, entry, add, extend in ((scalar, MapEntry, _scalar_add, _scalar_extend),
                                    (message, MessageMapEntry, _message_add, _message_extend)):
        original = cls.__iter__
        keys, values, items = _views(original)
        patches += [(cls, "__iter__", _iter_with(original, entry)), (cls, "add", add),
                    (cls, "extend", extend), (cls, "keys", keys), (cls, "values", values),
                    (cls, "items", items)]
    patches.append((snap, "__setattr__", _snapshot_setattr(snap.__setattr__)))
    return patches


@contextlib.contextmanager
def legacy_field_access() -> Iterator[bool]:
    """Make both field styles work (see the module docstring) inside the block; yields whether
    the patch could be applied (it cannot on protobuf backends with immutable C types, where
    only the map style works)."""
    applied: list[tuple[type, str, Any]] = []
    ok = True
    try:
        for cls, name, new in _patches():
            old = cls.__dict__.get(name, _ABSENT)
            try:
                setattr(cls, name, new)
            except (TypeError, AttributeError):
                ok = False
                continue
            applied.append((cls, name, old))
        if not ok:
            log.warning("this protobuf backend does not allow the old repeated-entry field "
                        "style (for kv in point.fieldsDouble: kv.key); map-style access works")
        yield ok
    finally:
        for cls, name, old in reversed(applied):
            if old is _ABSENT:
                delattr(cls, name)
            else:
                setattr(cls, name, old)
