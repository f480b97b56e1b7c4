"""`kapudf replay NAME --influx URL --db DB --query "SELECT ..."`: a UDF over stored history."""

from __future__ import annotations

import sys

import click

from udfcollection.commands.common import load_udf, positive_duration
from udfcollection.spec import BATCH


@click.command("replay")
@click.argument("name")
@click.option("--influx", "url", default="http://127.0.0.1:8086", show_default=True,
              envvar="KAPUDF_INFLUX_URL", help="InfluxDB 1.x URL (env KAPUDF_INFLUX_URL).")
@click.option("--db", required=True, help="Database the query reads.")
@click.option("--query", "-q", required=True,
              help="One InfluxQL SELECT, e.g. \"SELECT * FROM adsl WHERE time > now() - 30d "
              "GROUP BY host\".")
@click.option("-o", "--option", "options", multiple=True, metavar="NAME=VALUE",
              help="A UDF option, as in TICKscript: -o field=value -o size=10 (repeatable).")
@click.option("--group-by", multiple=True, metavar="TAG",
              help="Group by these tags instead of the query's GROUP BY tags (repeatable).")
@click.option("--batch-every", callback=positive_duration, metavar="DURATION",
              help="Batch UDFs: cut each group into windows of this much point time.")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N",
              help="Batch UDFs: cut each group into batches of N points.")
@click.option("--write-db", metavar="DB",
              help="Write the output to this database (created if missing) instead of "
              "printing it.")
@click.option("--write-measurement", metavar="M",
              help="Measurement to write to (default: the measurement each point carries).")
@click.option("--format", "fmt", type=click.Choice(["lp", "csv", "json"]), default="lp",
              show_default=True, help="How to print the output (when not writing).")
@click.option("--username", "-u", envvar="INFLUX_USERNAME", help="InfluxDB user "
              "(env INFLUX_USERNAME).")
@click.option("--password", "-p", envvar="INFLUX_PASSWORD", help="InfluxDB password "
              "(env INFLUX_PASSWORD).")
def replay_command(name: str, url: str, db: str, query: str, options: tuple[str, ...],
                   group_by: tuple[str, ...], batch_every: int | None, batch_size: int | None,
                   write_db: str | None, write_measurement: str | None, fmt: str,
                   username: str | None, password: str | None) -> None:
    """Run UDF NAME over history read from InfluxDB 1.x, grouped like the query's GROUP BY
    tags (as TICKscript's groupBy), and print what it emits or write it back.

    Points reach the UDF through the same handler Kapacitor's frames reach, oldest first.
    The summary goes to stderr. Exit status 1 when the UDF sends an error (which would stop a
    Kapacitor task)."""
    from udfcollection import offline, replay
    from udfcollection.agent.logs import setup_logging
    from udfcollection.commands.test import parse_cli_options
    from udfcollection.outputs import write_points

    setup_logging()
    cls = load_udf(name)
    notes: list[str] = []
    opts = parse_cli_options(cls, options, notes)
    for note in notes:
        click.echo(note, err=True)
    if cls.wants != BATCH and (batch_every is not None or batch_size is not None):
        raise click.UsageError(f"{name} takes a stream, not batches: drop --batch-every/"
                               "--batch-size")
    if write_measurement and not write_db:
        raise click.UsageError("--write-measurement needs --write-db")
    try:
        query = replay.check_query(query)
    except replay.ReplayError as exc:
        raise click.BadParameter(str(exc), param_hint="--query") from None
    printed: list = []
    stats = replay.ReplayStats()
    try:
        client = replay.connect(url, username, password)
        writer = None
        if write_db:
            writer = replay.Writer(client, write_db, write_measurement, db, stats)
            writer.prepare()
            sink = writer.add
        elif fmt == "csv":
            sink = printed.extend  # the header is the union of all columns: print at the end
        else:
            def sink(points):
                write_points(points, fmt, sys.stdout)
        replay.replay(client, cls, db, query, opts, group_by=group_by or None,
                      batch_every=batch_every, batch_size=batch_size, sink=sink, stats=stats)
        if writer is not None:
            writer.flush()
    except replay.ReplayError as exc:
        raise click.ClickException(str(exc)) from None
    except offline.InitFailed as exc:
        raise click.UsageError(f"{name} refused its options: {exc}") from None
    except ValueError as exc:  # batch windows the UDF cannot take
        raise click.UsageError(str(exc)) from None
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining
        # about the unflushable stdout at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    if printed:
        write_points(printed, "csv", sys.stdout)
    sys.stdout.flush()
    _summary(name, stats, write_db, write_measurement)
    if stats.errors:
        for e in stats.errors[:5]:
            click.echo(f"error: {e}", err=True)
        sys.exit(1)


def _summary(name: str, stats, write_db: str | None, write_measurement: str | None) -> None:
    groups = ""
    if len(stats.groups) > 1:
        shown = list(stats.groups.items())[:8]
        groups = " (" + ", ".join(f"{g or '(all)'}: {n}" for g, n in shown)
        groups += ", ..." if len(stats.groups) > 8 else ""
        groups += ")"
    by = ",".join(stats.group_by) or "nothing"
    text = (f"{name}: {stats.points_in} points in from {stats.series} series (grouped by {by}),"
            f" {stats.points_out} out{groups}, {stats.seconds:.2f} s")
    if write_db:
        target = f"{write_db}.{write_measurement}" if write_measurement else write_db
        text += f"; wrote {stats.written} points to {target}"
        if stats.skipped_out or stats.dropped_values:
            text += (f" ({stats.dropped_values} NaN/inf values left out, {stats.skipped_out} "
                     "points with nothing storable skipped)")
    click.echo(text, err=True)
