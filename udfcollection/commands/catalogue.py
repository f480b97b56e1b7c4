"""`kapudf list` and `kapudf info NAME`."""

from __future__ import annotations

import json
import textwrap

import click

from udfcollection import registry, render
from udfcollection.commands.common import load_udf


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(as_json: bool) -> None:
    """List the UDFs in the catalogue."""
    classes = registry.all_udfs()
    if as_json:
        click.echo(json.dumps([render.udf_summary_json(c) for c in classes], indent=2))
        return
    rows = [(c.name, f"{c.wants} -> {c.provides}", c.summary) for c in classes]
    w0 = max(len("NAME"), *(len(r[0]) for r in rows))
    w1 = max(len("EDGES"), *(len(r[1]) for r in rows))
    click.echo(f"{'NAME':<{w0}}  {'EDGES':<{w1}}  SUMMARY")
    for r in rows:
        click.echo(f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}")
    click.echo("\nMore: kapudf info NAME")


def _table(rows: list[dict[str, str]], cols: list[str], width: int = 100) -> str:
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols[:-1]}
    lead = sum(widths.values()) + 2 * len(widths)
    wrap = max(30, width - lead)
    out = ["  ".join(f"{c.upper():<{widths[c]}}" for c in cols[:-1]) + "  " + cols[-1].upper()]
    for r in rows:
        lines = textwrap.wrap(r[cols[-1]], wrap) or [""]
        out.append("  ".join(f"{r[c]:<{widths[c]}}" for c in cols[:-1]) + "  " + lines[0])
        out += [" " * lead + line for line in lines[1:]]
    return "\n".join(out)


@click.command("info")
@click.argument("name")
@click.option("--tick", is_flag=True, help="Print only the example TICKscript.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable declaration.")
def info_command(name: str, tick: bool, as_json: bool) -> None:
    """Describe one UDF: what it does, its options, an example TICKscript and conf section."""
    cls = load_udf(name)
    if tick:
        click.echo(render.example_tick(cls), nl=False)
        return
    if as_json:
        doc = render.udf_summary_json(cls)
        doc["description"] = cls.description
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"{cls.name} ({cls.wants} -> {cls.provides}): {cls.summary}\n")
    if cls.description:
        click.echo(cls.description.rstrip() + "\n")
    rows = render.option_rows(cls)
    for r in rows:
        if r["constraint"]:
            r["help"] = f"{r['help']} [{r['constraint']}]"
    click.echo("Options (TICKscript property methods):")
    click.echo(_table(rows, ["name", "type", "default", "help"]))
    if cls.output_fields:
        click.echo("\nOutput fields: " + ", ".join(cls.output_fields))
    click.echo("\nExample TICKscript:\n")
    click.echo(render.example_tick(cls))
    click.echo("kapacitor.conf:\n")
    # args repeat the name as given, so an import-path UDF (pkg.mod:Class) starts (as `conf`)
    click.echo(render.conf_document([render.conf_section(cls, cls.name, args=["run", name])]))
