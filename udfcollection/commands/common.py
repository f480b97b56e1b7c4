"""Helpers shared by subcommands: resolving UDF names into clean usage errors."""

from __future__ import annotations

import click

from udfcollection import registry
from udfcollection.spec import UDF


def load_udf(name: str) -> type[UDF]:
    """The UDF class for `name`, or a click UsageError (exit 2) listing the known names."""
    try:
        return registry.get(name)
    except registry.UnknownUDF as exc:
        raise click.UsageError(str(exc)) from None


def positive_duration(_ctx, _param, value: str | None) -> int | None:
    """click callback: a duration literal (`5m`, `90s`) as int nanoseconds, > 0."""
    if value is None:
        return None
    from udfcollection.durations import parse_duration

    try:
        ns = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if ns <= 0:
        raise click.BadParameter("must be a positive duration such as 5m")
    return ns
