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
