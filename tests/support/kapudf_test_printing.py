"""A UDF module that writes to stdout while it is being imported, as careless UDF modules do
(a banner, a library's import-time message). `kapudf run` must keep that off the protocol
stream."""

import os
import sys

from udfcollection.points import Point
from udfcollection.spec import UDF

print("print() at import time")
sys.stdout.flush()
os.write(1, b"raw write to fd 1 at import time\n")


class ImportPrinter(UDF):
    name = "test_import_printer"
    summary = "Forwards points; its module prints at import (test UDF)."
    description = "Forwards every point unchanged."

    def process(self, point: Point, state) -> Point:
        return point.emit()
