"""UDF name -> class. Built-ins are listed by import path and imported only when asked for, so
`kapudf run edge_detect` never imports the ML UDFs (or numpy). Third-party UDFs register under
the `udfcollection.udfs` entry-point group."""

from __future__ import annotations

import importlib
import importlib.util

from udfcollection.spec import UDF

BUILTINS: dict[str, str] = {
    "edge_detect": "udfcollection.udfs.edge_detect:EdgeDetect",
    "moving_avg": "udfcollection.udfs.moving_avg:MovingAverage",
    "threshold": "udfcollection.udfs.threshold:Threshold",
    "outliers": "udfcollection.udfs.outliers:Outliers",
    "wind_turbine": "udfcollection.udfs.wind_turbine:WindTurbine",
    "weld": "udfcollection.udfs.weld:Weld",
    "model": "udfcollection.udfs.model:ModelUDF",
}

ENTRY_POINT_GROUP = "udfcollection.udfs"


class UnknownUDF(LookupError):
    def __init__(self, name: str, known: list[str], reason: str = ""):
        import difflib

        if reason:
            super().__init__(reason)
            return
        match = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {match[0]}?)" if match else ""
        super().__init__(f"unknown UDF {name!r}{hint}; available: {', '.join(known)}")


def _plugins() -> dict[str, str]:
    # Imported here: importlib.metadata costs ~20 ms, and built-ins never need it.
    from importlib import metadata

    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken metadata must not break built-ins
        return {}
    return {ep.name: ep.value for ep in eps}


def _available_builtins() -> dict[str, str]:
    """Built-ins whose module exists in this install (the catalogue grows module by module)."""
    out = {}
    for name, target in BUILTINS.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            out[name] = target
    return out


def names() -> list[str]:
    return sorted({**_available_builtins(), **_plugins()})


def _load(target: str) -> type[UDF]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, UDF)):
        raise TypeError(f"{target} is not a udfcollection.spec.UDF subclass")
    return cls


def get(name: str) -> type[UDF]:
    """The UDF class registered as `name`, or named by import path `package.module:Class`
    (a UDF of your own, not packaged). Raises UnknownUDF with the list of known names."""
    if ":" in name:
        try:
            return _load(name)
        except (ImportError, AttributeError, TypeError) as exc:
            raise UnknownUDF(name, names(), f"cannot load {name}: {exc}") from None
    target = BUILTINS.get(name)
    if target is not None and importlib.util.find_spec(target.split(":")[0]) is not None:
        return _load(target)
    plugins = _plugins()
    if name in plugins:
        return _load(plugins[name])
    raise UnknownUDF(name, names())


def all_udfs() -> list[type[UDF]]:
    return [get(n) for n in names()]
