"""`kapudf doctor [PATH/kapacitor.conf]`: will kapacitord start with these UDF entries?"""

from __future__ import annotations

import sys

import click


@click.command("doctor")
@click.argument("conf", required=False, metavar="[PATH/kapacitor.conf]")
@click.option("--user", metavar="NAME",
              help="User kapacitord runs as (default: 'kapacitor' when that user exists). "
              "Permissions are checked for it; as root, handshakes run as it.")
@click.option("--inherit-env", is_flag=True,
              help="Start UDF programs with this shell's environment instead of the minimal "
              "one a system service gets (PATH=/usr/local/sbin:...:/bin).")
def doctor_command(conf: str | None, user: str | None, inherit_env: bool) -> None:
    """Check every [udf.functions.*] entry of a kapacitor.conf the way kapacitord does at
    start-up: keys and types, timeout, prog (exists, executable, reachable by kapacitord's
    user, #! interpreter) or socket (exists, stale, permissions), then the Info handshake itself,
    timed against the entry's timeout, and a clean exit when the input closes.

    Handshakes start the configured programs, as kapacitord would. Exit status 1 when anything
    would stop kapacitord from starting. CONF defaults to $KAPACITOR_CONFIG_PATH, then
    /etc/kapacitor/kapacitor.conf."""
    from pathlib import Path

    from udfcollection import doctor

    path = conf or doctor.default_conf_path()
    if not Path(path).is_file():
        where = "" if conf else " (give the path: kapudf doctor PATH/kapacitor.conf)"
        raise click.BadParameter(f"{path} is not a file{where}", param_hint="CONF")
    if user:
        try:
            doctor.choose_account(user)
        except LookupError as exc:
            raise click.BadParameter(str(exc), param_hint="--user") from None
    report = doctor.check_conf(path, user=user, inherit_env=inherit_env)
    width = None
    if sys.stdout.isatty():
        import shutil

        width = shutil.get_terminal_size().columns
    click.echo(doctor.render(report, width))
    sys.exit(1 if report.failed else 0)
