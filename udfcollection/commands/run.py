"""`kapudf run NAME`: what kapacitor.conf's prog/args start."""

from __future__ import annotations

import sys

import click


@click.command("run", context_settings={"ignore_unknown_options": True,
                                         "allow_interspersed_args": False})
@click.argument("name")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--strict", is_flag=True,
              help="For agent scripts: stop the task on a handler exception, as the stock "
              "agent does.")
def run_command(name: str, script_args: tuple[str, ...], strict: bool) -> None:
    """Serve one UDF on stdin/stdout. NAME is a catalogue UDF or the path of a script written
    for Kapacitor's Python agent (extra arguments are passed to the script)."""
    from udfcollection.agent.logs import setup_logging, warn_if_slow_protobuf

    setup_logging()
    warn_if_slow_protobuf()
    if name.endswith(".py") or "/" in name:
        try:
            from udfcollection.compat.runner import run_script
        except ImportError:
            raise click.UsageError("running agent scripts is not available in this "
                                   "install") from None
        args, strict = _take_strict(list(script_args), strict)
        sys.exit(run_script(name, args, strict=strict))
    if script_args:
        raise click.UsageError(f"unexpected arguments after {name}: {' '.join(script_args)}")
    from udfcollection.agent.stdio import claim_stdout, run_stdio
    from udfcollection.agent.udf_handler import UDFHandler
    from udfcollection.commands.common import load_udf

    # Before any UDF module is imported: a print at import time must not reach Kapacitor.
    proto_fd = claim_stdout()
    cls = load_udf(name)
    sys.exit(run_stdio(UDFHandler(cls), proto_fd))


def _take_strict(args: list[str], strict: bool) -> tuple[list[str], bool]:
    """`--strict` may also follow the script path (`kapudf run script.py ARGS --strict`); a
    literal `--` ends kapudf's options, so `-- --strict` passes `--strict` to the script."""
    if "--" in args:
        i = args.index("--")
        head, tail = args[:i], args[i + 1:]
    else:
        head, tail = args, []
    if "--strict" in head:
        head = [a for a in head if a != "--strict"]
        strict = True
    return head + tail, strict
