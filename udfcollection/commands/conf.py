"""`kapudf conf`: kapacitor.conf sections for catalogue UDFs (or for an agent script, with
`--script`)."""

from __future__ import annotations

import re
from pathlib import Path

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
@click.option("--script", type=click.Path(exists=True, dir_okay=False),
              help="A script written for Kapacitor's Python agent, run by `kapudf run "
              "SCRIPT` (instead of catalogue NAMES).")
@click.option("--name", "script_name",
              help="With --script: the UDF's name in TICKscript (@NAME) [default: the "
              "script's file name without .py].")
def conf_command(names: tuple[str, ...], all_: bool, socket_dir: str | None, timeout: str,
                 prog: str | None, log_level: str, script: str | None,
                 script_name: str | None) -> None:
    """Print valid TOML [udf.functions.NAME] sections for kapacitor.conf."""
    try:
        parse_duration(timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timeout") from None
    if script is not None or script_name is not None:
        _script_conf(names, all_, script, script_name, socket_dir, timeout, prog, log_level)
        return
    if all_:
        names = tuple(registry.names())
    if not names:
        raise click.UsageError("name at least one UDF, or use --all (see `kapudf list`)")
    classes = [load_udf(n) for n in names]
    # `args` repeat the name as given, so a UDF named by import path (`mypkg.mod:MyUDF`) is
    # started the same way; the section (the TICKscript @name) is its declared name.
    sections = [render.conf_section(c, c.name, prog=prog, args=["run", n], timeout=timeout,
                                    socket_dir=socket_dir, log_level=log_level)
                for n, c in zip(names, classes, strict=True)]
    header = ""
    if socket_dir:
        header = ("Serve these with:\n  kapudf serve --socket-dir " + socket_dir + " "
                  + " ".join(names))
    click.echo(render.conf_document(sections, header), nl=False)


def _script_conf(names: tuple[str, ...], all_: bool, script: str | None, name: str | None,
                 socket_dir: str | None, timeout: str, prog: str | None, log_level: str
                 ) -> None:
    if script is None:
        raise click.UsageError("--name goes with --script PATH")
    if names or all_:
        raise click.UsageError("give either catalogue NAMES (or --all) or --script, not both")
    path = Path(script).resolve()
    name = name or path.stem
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise click.BadParameter(f"{name!r} cannot be called from TICKscript (@{name}); use "
                                 "letters, digits and _", param_hint="--name")
    section = render.conf_section(None, name, prog=prog, args=["run", str(path)],
                                  timeout=timeout, socket_dir=socket_dir, log_level=log_level)
    header = ""
    if socket_dir:
        sock = Path(socket_dir) / f"{name}.sock"
        header = ("Start the script's Server yourself, for example (if it takes its socket "
                  f"path as its argument):\n  kapudf run {path} {sock}")
    comment = f"  # {name}: agent script {path}, run on kapudf's runtime"
    click.echo(render.conf_document([comment + "\n" + section], header), nl=False)
