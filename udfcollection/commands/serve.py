"""`kapudf serve --socket-dir DIR NAME [NAME ...]`."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _mode(_ctx, _param, value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an octal mode such as 0660") from None
    if not 0 <= mode <= 0o777:
        raise click.BadParameter(f"{value!r} is not a permission mode (0000 to 0777)")
    return mode


@click.command("serve")
@click.argument("names", nargs=-1, required=True)
@click.option("--socket-dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the NAME.sock files.")
@click.option("--mode", default="0660", show_default=True, callback=_mode,
              help="Permission bits of the socket files (octal).")
@click.option("--drain-timeout", default=30.0, show_default=True,
              help="Seconds to let open connections finish after SIGTERM/SIGINT.")
def serve_command(names: tuple[str, ...], socket_dir: str, mode: int,
                  drain_timeout: float) -> None:
    """Serve UDFs on Unix sockets DIR/NAME.sock; every connection is an independent instance.
    Use with `socket = "DIR/NAME.sock"` in kapacitor.conf (`kapudf conf --socket-dir DIR`)."""
    from udfcollection.agent.logs import setup_logging, warn_if_slow_protobuf
    from udfcollection.agent.server import SocketInUse, SocketServer
    from udfcollection.agent.udf_handler import UDFHandler
    from udfcollection.commands.common import load_udf

    setup_logging()
    warn_if_slow_protobuf()
    sys.setswitchinterval(0.001)
    endpoints = {}
    for name in names:
        cls = load_udf(name)
        # Named by the UDF's declared name, as `kapudf conf --socket-dir` writes it, also when
        # it was given as an import path (`mypkg.mod:MyUDF` -> DIR/my_udf.sock).
        endpoints[cls.name] = (Path(socket_dir) / f"{cls.name}.sock",
                               lambda cls=cls: UDFHandler(cls))
    server = SocketServer(endpoints, mode=mode, drain_timeout=drain_timeout)
    try:
        server.bind()
    except (SocketInUse, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    server.install_signal_handlers()
    server.serve_forever()
