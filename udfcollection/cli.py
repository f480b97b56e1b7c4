"""The `kapudf` command. Only presentation and argument handling live here; each subcommand's
module is imported when that subcommand runs, so `kapudf run NAME` pays for nothing else."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

# name -> (module, help). A command whose module is not installed is not offered.
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("udfcollection.commands.catalogue", "List the UDFs in the catalogue."),
    "info": ("udfcollection.commands.catalogue", "Describe one UDF: options, TICKscript, conf."),
    "conf": ("udfcollection.commands.conf", "Print kapacitor.conf [udf.functions] sections."),
    "run": ("udfcollection.commands.run", "Serve one UDF on stdin/stdout (Kapacitor's prog)."),
    "serve": ("udfcollection.commands.serve", "Serve UDFs on Unix sockets."),
    "test": ("udfcollection.commands.test", "Run a UDF over a data file, without Kapacitor."),
    "doctor": ("udfcollection.commands.doctor", "Check a kapacitor.conf's UDF entries."),
    "replay": ("udfcollection.commands.replay", "Run a UDF over history stored in InfluxDB."),
    "train": ("udfcollection.commands.train", "Retrain a shipped model."),
}


class OneLineUsageError(click.ClickException):
    """A usage error shown as the one line `Error: ...` (exit 2). Click would print the usage
    block first, which buries the message, and systemd or Kapacitor logs take each line as its
    own entry."""

    exit_code = 2


_PARSE_ERRORS = (click.MissingParameter, click.NoSuchOption, click.BadOptionUsage,
                 click.BadArgumentUsage)
# click >= 8.2 raises this (a UsageError) for a group called with no arguments.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _one_line(exc: click.UsageError) -> OneLineUsageError:
    msg = exc.format_message()
    if isinstance(exc, _PARSE_ERRORS) and exc.ctx is not None:
        msg += f" (see '{exc.ctx.command_path} --help')"
    return OneLineUsageError(msg)


class LazyGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:  # kapudf's own options (a subcommand's are parsed in invoke)
            return super().parse_args(ctx, args)
        except _NO_ARGS_IS_HELP:
            raise  # plain `kapudf`: the help text is the answer
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, (mod, _) in COMMANDS.items() if importlib.util.find_spec(mod)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or importlib.util.find_spec(entry[0]) is None:
            return None
        module = importlib.import_module(entry[0])
        return getattr(module, f"{cmd_name}_command")

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][1]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="udfcollection", prog_name="kapudf")
def cli() -> None:
    """kapudf: ready-made, fast and safe user-defined functions for Kapacitor.

    Start with `kapudf list`, look at one with `kapudf info NAME`, try it on data with
    `kapudf test NAME --input FILE.lp`, then wire it in with `kapudf conf NAME`.
    """


def main() -> None:
    try:
        cli.main(prog_name="kapudf", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
