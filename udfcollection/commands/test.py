"""`kapudf test NAME --input FILE.lp`: run a UDF over data without Kapacitor."""

from __future__ import annotations

import sys
import time

import click

from udfcollection.commands.common import load_udf


def parse_cli_options(cls, pairs: tuple[str, ...]) -> list[tuple[str, list[tuple[str, object]]]]:
    """`-o name=value` pairs to Kapacitor-style options, each parsed by its declared type."""
    from udfcollection.spec import close_match, parse_cli_option

    decl = {o.name: o for o in cls.all_options()}
    out = []
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        opt = decl.get(name)
        if opt is None:
            match = close_match(name, decl)
            hint = f" (did you mean {match}?)" if match else ""
            raise click.BadParameter(f"unknown option {name!r}{hint}; valid: {', '.join(decl)}",
                                     param_hint="-o")
        if not sep and opt.type != "flag":
            raise click.BadParameter(f"write -o {name}=VALUE", param_hint="-o")
        try:
            vtype, value = parse_cli_option(opt, text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="-o") from None
        out.append((name, [] if opt.type == "flag" else [(vtype, value)]))
    return out


@click.command("test")
@click.argument("name")
@click.option("--input", "-i", "input_path", required=True,
              help="Line-protocol file ('-' for stdin).")
@click.option("-o", "--option", "options", multiple=True, metavar="NAME=VALUE",
              help="A UDF option, as in TICKscript: -o field=value -o size=10 (repeatable).")
@click.option("--group-by", multiple=True, metavar="TAG",
              help="Group points by this tag, like TICKscript's groupBy (repeatable).")
@click.option("--precision", default="ns", show_default=True,
              type=click.Choice(["ns", "us", "ms", "s"]), help="Timestamp precision.")
def test_command(name: str, input_path: str, options: tuple[str, ...],
                 group_by: tuple[str, ...], precision: str) -> None:
    """Run UDF NAME over a line-protocol file and print its output as line protocol.
    Batch UDFs get one batch per group."""
    from udfcollection import offline
    from udfcollection.agent.logs import setup_logging
    from udfcollection.lineprotocol import LineProtocolError, format_point, parse_lines

    setup_logging()
    cls = load_udf(name)
    opts = parse_cli_options(cls, options)
    try:
        if input_path == "-":
            points = list(parse_lines(sys.stdin, precision, "<stdin>"))
        else:
            with open(input_path, encoding="utf-8") as fh:
                points = list(parse_lines(fh, precision, input_path))
    except OSError as exc:
        raise click.BadParameter(f"cannot read {input_path}: {exc.strerror}",
                                 param_hint="--input") from None
    except LineProtocolError as exc:
        raise click.BadParameter(str(exc), param_hint="--input") from None
    t0 = time.perf_counter()
    try:
        out = offline.run(cls, points, opts, group_by)
    except offline.InitFailed as exc:
        raise click.UsageError(str(exc)) from None
    dt = time.perf_counter() - t0
    for p in out.points:
        click.echo(format_point(p))
    groups = ", ".join(f"{g or '(all)'}: {n}" for g, n in out.groups.items())
    click.echo(f"{name}: {len(points)} points in, {len(out.points)} out"
               + (f" ({groups})" if groups and len(out.groups) > 1 else "")
               + f", {dt * 1e3:.1f} ms", err=True)
    if out.errors:
        for e in out.errors:
            click.echo(f"error: {e}", err=True)
        sys.exit(1)
