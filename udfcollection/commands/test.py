"""`kapudf test NAME --input FILE`: run a UDF over a data file without Kapacitor."""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import click

from udfcollection.commands.common import load_udf, positive_duration


class DataFileError(click.ClickException):
    """A bad input or expected-output file: one line (`Error: FILE:line N: ...`), exit 2."""

    exit_code = 2


_LITERALS = {
    "int": "an INT such as 10 (in TICKscript .{n}(10) is an INT; .{n}(10.0) would be a DOUBLE "
           "and Kapacitor rejects it)",
    "double": "a DOUBLE such as 10.0 (in TICKscript write .{n}(10.0) with the decimal point; "
              ".{n}(10) is an INT and Kapacitor rejects it)",
    "duration": "a duration such as 10s, 500ms or 1m30s (in TICKscript .{n}(10s), no quotes)",
    "bool": "TRUE or FALSE (in TICKscript .{n}(TRUE))",
    "flag": "nothing: it is a flag (in TICKscript .{n}(), with -o write just -o {n})",
}


def parse_cli_options(cls, pairs: tuple[str, ...], notes: list[str] | None = None
                      ) -> list[tuple[str, list[tuple[str, object]]]]:
    """`-o name=value` pairs to Kapacitor-style options, each parsed by its declared type.

    A value that does not fit the type raises click.BadParameter explaining the TICKscript
    literal to write. A value the CLI accepts but TICKscript would type differently (`-o x=10`
    for a DOUBLE) adds a note to `notes` showing the literal Kapacitor needs."""
    from udfcollection.spec import close_match, parse_cli_option, tick_literal

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
        except ValueError:
            want = _LITERALS.get(opt.type, opt.type).format(n=name)
            raise click.BadParameter(f"option {name} is {opt.type.upper()}: cannot read "
                                     f"{text.strip()!r} as {want}", param_hint="-o") from None
        if notes is not None and opt.type == "double" and re.fullmatch(r"\s*[+-]?\d+\s*", text):
            notes.append(f"note: -o {name}={text.strip()} is read as the DOUBLE "
                         f"{tick_literal(value, 'double')}; in TICKscript write "
                         f".{name}({tick_literal(value, 'double')}) (.{name}({text.strip()}) "
                         "is an INT and Kapacitor rejects it)")
        out.append((name, [] if opt.type == "flag" else [(vtype, value)]))
    return out


def resolved_options(cls, opts: list[tuple[str, list[tuple[str, object]]]]) -> dict[str, Any]:
    """TICKscript name -> value, defaults filled in (repeatable options as lists)."""
    values: dict[str, Any] = {}
    for o in cls.all_options():
        values[o.name] = o.default_value()
    given: dict[str, list] = {}
    for name, vals in opts:
        given.setdefault(name, []).append(vals[0][1] if vals else True)
    decl = {o.name: o for o in cls.all_options()}
    for name, vals in given.items():
        values[name] = vals if decl[name].repeatable else vals[-1]
    return values


def tick_call(cls, opts: list[tuple[str, list[tuple[str, object]]]]) -> str:
    """The TICKscript node these options stand for: `@edge_detect().field('value')`."""
    from udfcollection.spec import tick_literal

    parts = [f"@{cls.name}()"]
    for name, vals in opts:
        parts.append(f".{name}(" + ", ".join(tick_literal(v, t) for t, v in vals) + ")")
    return "".join(parts)


@click.command("test")
@click.argument("name")
@click.option("--input", "-i", "input_path", required=True, metavar="FILE",
              help="Data file: .lp (line protocol), .csv, .srpl (Kapacitor stream recording), "
              "optionally gzipped; '-' reads stdin.")
@click.option("--input-format", type=click.Choice(["lp", "csv", "srpl"]),
              help="Input format when the extension does not say (stdin is lp by default).")
@click.option("-o", "--option", "options", multiple=True, metavar="NAME=VALUE",
              help="A UDF option, as in TICKscript: -o field=value -o size=10 (repeatable).")
@click.option("--group-by", multiple=True, metavar="TAG",
              help="Group points by this tag, like TICKscript's groupBy (repeatable). Without "
              "it everything is one group, as in Kapacitor.")
@click.option("--precision", type=click.Choice(["ns", "us", "ms", "s"]),
              help="Unit of input timestamps (line protocol, recordings and CSV epoch times). "
              "Default ns; for CSV epochs, guessed from the number of digits.")
@click.option("--measurement", metavar="NAME",
              help="CSV: measurement of the points (default: the file name without extension).")
@click.option("--time-column", metavar="COLUMN",
              help="CSV: the column holding the time (default: one named time, timestamp, "
              "_time, date or datetime).")
@click.option("--time-format", metavar="FORMAT",
              help="CSV: how times are written: auto (default: ISO 8601 or epoch numbers), "
              "iso, epoch, or a strftime pattern such as '%d %m %Y %H:%M'. Times without a "
              "zone are UTC.")
@click.option("--tag-column", "tag_columns", multiple=True, metavar="COLUMN",
              help="CSV: a column holding a tag (repeatable); every other column is a field.")
@click.option("--time-step", callback=positive_duration, metavar="DURATION",
              help="CSV without a time column: row i gets time i*DURATION.")
@click.option("--batch-every", callback=positive_duration, metavar="DURATION",
              help="Batch UDFs: one batch per group and window of point time (windows aligned "
              "to multiples of DURATION, like .every(...).align()).")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N",
              help="Batch UDFs: batches of N consecutive points per group.")
@click.option("--format", "-f", "fmt", type=click.Choice(["lp", "csv", "json"]),
              help="Output format (default: from --output's extension, else lp).")
@click.option("--output", "output_path", metavar="FILE",
              help="Write output points to FILE instead of stdout.")
@click.option("--expect", "expect_path", metavar="FILE.lp",
              help="Compare the output with these line-protocol points (ns timestamps); print "
              "OK or a diff on stdout, exit 1 on mismatch. The points are then written only "
              "with --output.")
@click.option("--rtol", type=click.FloatRange(min=0.0), default=1e-9, show_default=True,
              help="Relative tolerance for float fields in --expect.")
@click.option("--process", "use_process", is_flag=True,
              help="Run the UDF in a real `kapudf run` subprocess over the wire, as Kapacitor "
              "does, instead of in-process.")
@click.option("--plot", "plot_path", metavar="FILE.png",
              help="Draw the input and what the UDF emitted (needs matplotlib: "
              "pip install 'udfcollection[plot]').")
def test_command(name: str, input_path: str, input_format: str | None,
                 options: tuple[str, ...], group_by: tuple[str, ...], precision: str | None,
                 measurement: str | None, time_column: str | None, time_format: str | None,
                 tag_columns: tuple[str, ...], time_step: int | None, batch_every: int | None,
                 batch_size: int | None, fmt: str | None, output_path: str | None,
                 expect_path: str | None, rtol: float, use_process: bool,
                 plot_path: str | None) -> None:
    """Run UDF NAME over a data file and print what it emits (line protocol by default), with a
    summary on stderr: points in and out, per group, and the time taken.

    Stream UDFs get the points in file order; batch UDFs get one batch per group unless
    --batch-every or --batch-size cut it finer. Exit status: 0 ok, 1 when the UDF sent an
    error (the Kapacitor task would stop) or --expect found a difference, 2 for bad usage or a
    bad data file."""
    from udfcollection import inputs, offline
    from udfcollection.agent.logs import setup_logging
    from udfcollection.spec import BATCH

    setup_logging()
    cls = load_udf(name)
    notes: list[str] = []
    opts = parse_cli_options(cls, options, notes)

    if cls.wants != BATCH and (batch_every is not None or batch_size is not None):
        flag = "--batch-every" if batch_every is not None else "--batch-size"
        raise click.UsageError(f"{flag} is for batch UDFs; {cls.name} takes a stream (its "
                               "points are sent one by one)")
    if batch_every is not None and batch_size is not None:
        raise click.UsageError("give --batch-every or --batch-size, not both")
    fmt_in = input_format or (inputs.detect_format(input_path) if input_path != "-" else None)
    csv_flags = {"--measurement": measurement, "--time-column": time_column,
                 "--time-format": time_format, "--tag-column": tag_columns or None,
                 "--time-step": time_step}
    if fmt_in != "csv":
        used = [k for k, v in csv_flags.items() if v is not None]
        if used:
            raise click.UsageError(f"{', '.join(used)} only apply to CSV input (give "
                                   "--input-format csv for a file without a .csv extension)")
    if time_step is not None and time_column is not None:
        raise click.UsageError("--time-step is for files without a time column; "
                               "--time-column names one")
    if plot_path:
        from udfcollection.plot import PlotUnavailable, require_matplotlib

        try:
            require_matplotlib()
        except PlotUnavailable as exc:
            raise click.UsageError(str(exc)) from None

    spec = inputs.CsvSpec(measurement, time_column, time_format, tag_columns, time_step)
    data = _read(input_path, input_format, precision, spec)
    for note in notes + data.notes:
        click.echo(note, err=True)
    expected = _read_expected(expect_path) if expect_path else None

    reqs = offline.requests_for(cls, data.points, group_by, batch_every=batch_every,
                                batch_size=batch_size)
    from udfcollection.progress import Progress

    progress = Progress(len(data.points))
    reqs = progress.wrap(reqs, lambda r: 1 if r.WhichOneof("message") == "point" else 0)
    t0 = time.perf_counter()
    setup = 0.0
    try:
        if use_process:
            from udfcollection.wire_run import ProcessFailed, run_process

            try:
                out = run_process(name, opts, reqs)
            except ProcessFailed as exc:
                raise click.ClickException(str(exc)) from None
        else:
            from udfcollection.agent.runtime import FatalError

            runner = offline.OfflineRunner(cls, opts)
            setup = time.perf_counter() - t0
            try:
                runner.feed_requests(reqs)
                out = runner.finish()
            except FatalError as exc:
                out = runner.stop_with_error(str(exc))
    except offline.InitFailed as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        progress.close()
    elapsed = time.perf_counter() - t0 - setup

    out_fmt = fmt or (_format_for(output_path) if output_path else None) or "lp"
    if output_path:
        try:
            with open(output_path, "w", encoding="utf-8", newline="") as fh:
                _write(out.points, out_fmt, fh)
        except OSError as exc:
            raise click.BadParameter(f"cannot write {output_path}: {exc.strerror}",
                                     param_hint="--output") from None
    elif expected is None:
        _write(out.points, out_fmt, click.get_text_stream("stdout"))

    click.echo(summary_line(cls.name, data.points, out.points, group_by, elapsed,
                            use_process, len(out.batches), setup=setup), err=True)
    failed = False
    for e in out.errors:
        click.echo(f"error: the UDF sent an ErrorResponse (this stops a Kapacitor task): {e}",
                   err=True)
        failed = True
    if plot_path:
        from udfcollection.plot import RunInfo, plot_run

        info = RunInfo(cls.name, resolved_options(cls, opts), tuple(cls.output_fields),
                       group_by, "stdin" if input_path == "-" else input_path,
                       tick_call(cls, opts))
        try:
            plot_run(plot_path, info, data.points, out.points)
        except OSError as exc:
            raise click.BadParameter(f"cannot write {plot_path}: {exc.strerror}",
                                     param_hint="--plot") from None
        click.echo(f"plot written to {plot_path}", err=True)
    if expected is not None:
        from udfcollection.compare import compare

        result = compare(out.points, expected, rtol)
        click.echo(result.report(expect_path))
        failed = failed or not result.ok
    if failed:
        sys.exit(1)


def _read(path: str, fmt: str | None, precision: str | None, spec) -> Any:
    from udfcollection import inputs

    try:
        return inputs.read_points(path, fmt, precision=precision, csv_spec=spec)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except inputs.InputError as exc:
        raise DataFileError(str(exc)) from None
    except ValueError as exc:  # a bad --time-format
        raise click.BadParameter(str(exc), param_hint="--time-format") from None


def _read_expected(path: str) -> list:
    from udfcollection import inputs

    try:
        return inputs.read_points(path, "lp").points
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file (--expect)") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except inputs.InputError as exc:
        raise DataFileError(str(exc)) from None


def _format_for(path: str) -> str | None:
    from udfcollection.outputs import format_for_path

    return format_for_path(path)


def _write(points, fmt: str, stream) -> None:
    from udfcollection.outputs import write_points

    try:
        write_points(points, fmt, stream)
        stream.flush()
    except BrokenPipeError:  # `kapudf test ... | head`
        sys.stderr.close()
        sys.exit(0)


def _duration_text(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:,.1f} ms" if ms < 10_000 else f"{seconds:,.1f} s"


def summary_line(udf: str, points_in, points_out, group_by, elapsed: float, process: bool,
                 batches_out: int = 0, max_groups: int = 6, setup: float = 0.0) -> str:
    """`NAME: 17 points in, 6 out, 1 group, 0.7 ms` with per-group counts when grouped, the
    UDF's setup (model loading) apart when it took 10 ms or more, and in --process mode the
    whole run including the process start."""
    from udfcollection.offline import group_id

    n_in: dict[str, int] = {}
    for p in points_in:
        g = group_id(p.tags, group_by)
        n_in[g] = n_in.get(g, 0) + 1
    n_out: dict[str, int] = {}
    for p in points_out:
        g = group_id(p.tags, group_by)
        n_out[g] = n_out.get(g, 0) + 1
    groups = list(n_in) + [g for g in n_out if g not in n_in]
    text = f"{udf}: {len(points_in):,} points in, {len(points_out):,} out"
    if batches_out:
        text += f" in {batches_out:,} batch{'es' if batches_out != 1 else ''}"
    text += f", {len(groups):,} group{'s' if len(groups) != 1 else ''}"
    if group_by and groups:
        shown = ", ".join(f"{g}: {n_in.get(g, 0):,}/{n_out.get(g, 0):,}"
                          for g in groups[:max_groups])
        more = f", ... {len(groups) - max_groups:,} more" if len(groups) > max_groups else ""
        text += f" (in/out {shown}{more})"
    text += ", " + _duration_text(elapsed)
    if setup >= 0.01:
        text += f" (+{_duration_text(setup)} setup)"
    if process:
        text += " (kapudf run subprocess)"
    return text
