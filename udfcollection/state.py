"""Per-group state with a cap, and the versioned JSON snapshot format.

Snapshot document (format version 1):

    {"format": "kapudf-snapshot", "version": 1, "udf": "edge_detect",
     "state_version": 1, "groups": [["<group key>", <state as JSON>], ...]}

Groups are listed least recently seen first, so a restore rebuilds the same eviction order.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

SNAPSHOT_FORMAT = "kapudf-snapshot"
SNAPSHOT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be restored; the text says why."""


class GroupTable:
    """Group key -> state, least recently seen evicted beyond `max_groups`.

    `get(key)` returns the group's state, creating it with `factory` on first sight, and marks
    the group most recently seen. `on_evict` is called once, the first time a group is evicted.
    """

    __slots__ = ("_factory", "_groups", "evicted", "max_groups", "on_first_evict")

    def __init__(self, factory: Callable[[], Any], max_groups: int,
                 on_first_evict: Callable[[int], None] | None = None):
        self._groups: OrderedDict[str, Any] = OrderedDict()
        self._factory = factory
        self.max_groups = max_groups
        self.evicted = 0
        self.on_first_evict = on_first_evict

    def get(self, key: str) -> Any:
        groups = self._groups
        state = groups.get(key)
        if state is None:
            state = self._factory()
            groups[key] = state
            if len(groups) > self.max_groups:
                groups.popitem(last=False)
                self.evicted += 1
                if self.evicted == 1 and self.on_first_evict is not None:
                    self.on_first_evict(self.max_groups)
        else:
            groups.move_to_end(key)
        return state

    def hot_path(self) -> tuple[Callable[[str], Any], Callable[[str], None]]:
        """(lookup, touch) for inlining `get` in a per-point loop: `lookup(key)` returns the
        state or None without creating it (then call `get`), `touch(key)` marks it most
        recently seen. Valid for the table's lifetime (the mapping is never replaced)."""
        return self._groups.get, self._groups.move_to_end

    def __len__(self) -> int:
        return len(self._groups)

    def items(self):
        return self._groups.items()

    def clear(self) -> None:
        self._groups.clear()

    def load(self, items: list[tuple[str, Any]]) -> None:
        self._groups.clear()
        self._groups.update(items[-self.max_groups:])


def encode_snapshot(udf_name: str, state_version: int, groups: GroupTable) -> bytes:
    doc = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "udf": udf_name,
        "state_version": state_version,
        "groups": [[k, v.to_json()] for k, v in groups.items()],
    }
    return json.dumps(doc, separators=(",", ":"), allow_nan=True).encode()


def decode_snapshot(data: bytes, udf_name: str, state_version: int,
                    from_json: Callable[[Any], Any]) -> list[tuple[str, Any]]:
    """Parse and check a snapshot; raises SnapshotError naming the problem."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"not a kapudf snapshot (invalid JSON: {exc})") from None
    except RecursionError:
        raise SnapshotError("not a kapudf snapshot (JSON nested too deeply)") from None
    if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError("not a kapudf snapshot (no format marker)")
    if doc.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(
            f"snapshot format version {doc.get('version')!r} is not supported "
            f"(this kapudf reads version {SNAPSHOT_VERSION})"
        )
    if doc.get("udf") != udf_name:
        raise SnapshotError(f"snapshot belongs to UDF {doc.get('udf')!r}, not {udf_name!r}")
    if doc.get("state_version") != state_version:
        raise SnapshotError(
            f"{udf_name} state version {doc.get('state_version')!r} is not supported "
            f"(this release uses {state_version})"
        )
    groups = doc.get("groups")
    if not isinstance(groups, list):
        raise SnapshotError("snapshot has no group list")
    out = []
    for i, entry in enumerate(groups):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise SnapshotError(f"snapshot group entry {i} is malformed")
        try:
            out.append((entry[0], from_json(entry[1])))
        except Exception as exc:
            # Whatever a UDF's from_json trips over (a protobuf DecodeError, a bad base64, ...)
            # means this snapshot cannot be used; it must never fail the restore.
            raise SnapshotError(f"snapshot group {entry[0]!r}: {type(exc).__name__}: "
                                f"{exc}") from None
    return out
