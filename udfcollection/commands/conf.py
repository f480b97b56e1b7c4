"""`kapudf conf`: kapacitor.conf sections for catalogue UDFs."""

from __future__ import annotations

import click

from udfcollection import registry, render
from udfcollection.commands.common import load_udf
from udfcollection.durations import parse_duration


@click.command("conf")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every UDF in the catalogue.")
@click.option("--socket-dir", type=click.Path(file_okay=False),
              help="Emit socket = DIR/NAME.sock entries (for `kapudf serve`) instead of prog.")
@click.option("--timeout", default="10s", show_default=True,
              help="Kapacitor kills a UDF that answers nothing for this long.")
@click.option("--prog", help="Path of kapudf as Kapacitor should run it [default: this "
              "install's absolute path].")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def conf_command(names: tuple[str, ...], all_: bool, socket_dir: str | None, timeout: str,
                 prog: str | None, log_level: str) -> None:
    """Print valid TOML [udf.functions.NAME] sections for kapacitor.conf."""
    try:
        parse_duration(timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timeout") from None
    if all_:
        names = tuple(registry.names())
    if not names:
        raise click.UsageError("name at least one UDF, or use --all (see `kapudf list`)")
    classes = [load_udf(n) for n in names]
    sections = [render.conf_section(c, c.name, prog=prog, timeout=timeout,
                                    socket_dir=socket_dir, log_level=log_level)
                for c in classes]
    header = ""
    if socket_dir:
        header = ("Serve these with:\n  kapudf serve --socket-dir " + socket_dir + " "
                  + " ".join(c.name for c in classes))
    click.echo(render.conf_document(sections, header), nl=False)
