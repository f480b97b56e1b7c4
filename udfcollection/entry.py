"""The `kapudf` console entry point.

Kapacitor starts `kapudf run NAME` once per configured UDF at daemon start-up just to ask for
Info, and refuses to start if that is slow; on a Raspberry Pi every import counts. So a plain
`kapudf run NAME` goes straight to the agent without importing click; everything else goes
through the click CLI in udfcollection.cli.
"""

from __future__ import annotations

import sys


def _plain_udf_name(arg: str) -> bool:
    return not arg.startswith("-") and not arg.endswith(".py") and "/" not in arg


def run_udf(name: str) -> int:
    """Serve catalogue UDF `name` on stdin/stdout; 2 with one line on stderr if unknown."""
    from udfcollection.agent.logs import setup_logging, warn_if_slow_protobuf
    from udfcollection.agent.stdio import claim_stdout, run_stdio

    setup_logging()
    warn_if_slow_protobuf()
    # Before any UDF module is imported: a print at import time must not reach Kapacitor.
    proto_fd = claim_stdout()
    from udfcollection import registry
    from udfcollection.agent.udf_handler import UDFHandler

    try:
        cls = registry.get(name)
    except registry.UnknownUDF as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return run_stdio(UDFHandler(cls), proto_fd)


def main() -> None:
    argv = sys.argv[1:]
    if len(argv) == 2 and argv[0] == "run" and _plain_udf_name(argv[1]):
        sys.exit(run_udf(argv[1]))
    from udfcollection.cli import main as cli_main

    cli_main()
