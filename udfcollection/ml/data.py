"""The bundled training data (`udfcollection/data/`, see its SOURCES.md) and data hashes.

Readers here turn the CSV files into what the UDFs see in production: line-protocol-like
points with the field names a Telegraf/InfluxDB pipeline would carry.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from udfcollection.lineprotocol import LPPoint

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
WIND_T1 = DATA_DIR / "wind_turbine" / "T1.csv"
WELD_DIR = DATA_DIR / "weld"

# A run file is "<class>_<MM-DD-YY>-<id>-<nn>.csv"; the class is what comes before the date.
_RUN_SUFFIX = re.compile(r"_\d{2}-\d{2}-\d{2}-\d+-\d+$")


class DataError(Exception):
    """Training data that cannot be used; the text names the file and what is wrong."""


def sha256_of_files(paths: list[Path], root: Path | None = None) -> str:
    """One hash over several files: sha256 of "<name> <sha256 of content>" lines in name
    order, names relative to `root` (so the hash does not depend on where the data lives)."""
    lines = []
    for p in sorted(paths, key=lambda q: str(q.relative_to(root) if root else q.name)):
        name = str(p.relative_to(root)) if root else p.name
        lines.append(f"{name} {hashlib.sha256(p.read_bytes()).hexdigest()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def weld_class_of(path: Path) -> str:
    """Class label of a weld run file: its name without the date/id suffix, '-' as '_'
    ("porosity_w-excessive_penetration_11-01-22-0161-04.csv" ->
    "porosity_w_excessive_penetration")."""
    return _RUN_SUFFIX.sub("", path.stem).replace("-", "_")


def weld_run_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.glob("*.csv") if p.is_file())
    if not files:
        raise DataError(f"no .csv files in {directory}")
    return files


def wind_points(path: Path = WIND_T1, *, power_column: str = "grid_activepower",
                speed_column: str = "wind_speed", turbine: str = "T1") -> list[LPPoint]:
    """T1.csv as the stream a turbine would send: measurement 'turbine', tag turbine=T1,
    fields wind_speed and grid_active_power, time from the timestamp (UTC), in file order."""
    import csv
    from datetime import UTC, datetime

    out = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            t = datetime.strptime(row["timestamp"], "%d %m %Y %H:%M").replace(tzinfo=UTC)
            out.append(LPPoint("turbine", {"turbine": turbine},
                               {"wind_speed": float(row[speed_column]),
                                "grid_active_power": float(row[power_column])},
                               int(t.timestamp()) * 1_000_000_000))
    return out


def weld_points(path: Path, *, start_ns: int = 1_700_000_000_000_000_000,
                step_ns: int = 100_000_000) -> list[LPPoint]:
    """One weld run file as the stream a welding cell would send: measurement 'weld', tag
    run=<file stem>, the six sensor fields, one reading every `step_ns` (the files carry no
    timestamps; only their order matters)."""
    import csv

    out = []
    with path.open(encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            fields = {k.strip(): float(v) for k, v in row.items() if k is not None}
            out.append(LPPoint("weld", {"run": path.stem}, fields, start_ns + i * step_ns))
    return out
