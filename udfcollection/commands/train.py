"""`kapudf train wind_turbine|weld [--data PATH] [--out DIR]`: retrain a shipped model."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import click

MODELS = ("wind_turbine", "weld")


def _progress(text: str) -> None:
    click.echo(f"train: {text}", err=True)


@contextlib.contextmanager
def _models_dir(path: Path):
    """Resolve shipped models from `path` while evaluating a freshly trained one."""
    old = os.environ.get("KAPUDF_MODELS_DIR")
    os.environ["KAPUDF_MODELS_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("KAPUDF_MODELS_DIR", None)
        else:
            os.environ["KAPUDF_MODELS_DIR"] = old


def _compare(previous: dict[str, Any] | None, entry: dict[str, Any]) -> str:
    if not previous:
        return "no previous model in this directory's manifest"
    if previous.get("sha256") == entry["sha256"]:
        return "identical bytes to the previous model (sha256 " + entry["sha256"][:16] + "...)"
    same_metrics = previous.get("metrics") == entry.get("metrics")
    what = "same metrics" if same_metrics else "different metrics"
    prev_data = (previous.get("training_data") or {}).get("sha256")
    data = "same" if prev_data == entry["training_data"]["sha256"] else "different"
    return (f"bytes differ from the previous model ({what}; {data} training data; previous "
            f"libraries {previous.get('libraries')}, now {entry.get('libraries')})")


def _summary(name: str, m: dict[str, Any]) -> list[str]:
    if name == "wind_turbine":
        lines = [f"fit: MAE {m['mae_kw']} kW, max |error| {m['max_abs_error_kw']} kW, "
                 f"R2 {m['r2']} on {m['train_rows']:,} rows"]
        for key, label in (("t1_stream_default", "T1 stream (default options)"),
                           ("t1_stream_not_evaluated_breaks",
                            "T1 stream (notEvaluatedBreaks=TRUE)")):
            c = m.get(key)
            if c:
                lines.append(f"{label}: {c['flagged']:,} flagged of {c['points']:,} "
                             f"({c['low']} LOW / {c['medium']} MEDIUM / {c['high']} HIGH)")
        ref = m.get("reference_published")
        if ref:
            lines.append(f"reference (published detector, own model): {ref['flagged']:,} "
                         f"({ref['low']} LOW / {ref['medium']} MEDIUM / {ref['high']} HIGH)")
        return lines
    lines = [f"held-out accuracy {m['heldout_accuracy']:.4f} on {m['heldout_rows']:,} rows "
             f"(train accuracy {m['train_accuracy']:.4f} on {m['train_rows']:,})",
             f"good-weld false-positive rate {m['good_weld_false_positive_rate']:.4f} "
             f"({m['good_heldout_rows']} good rows; aim <= 0.05)",
             f"defect recall {m['defect_recall']:.4f} ({m['defect_heldout_rows']} defect rows; "
             "aim >= 0.90)"]
    for c, v in m["per_class"].items():
        lines.append(f"  {c}: recall {v['recall']} on {v['rows']} rows")
    s = m.get("stream_all_rows")
    if s:
        t = s["total"]
        lines.append(f"all rows streamed through weld: {t['points']:,} points, "
                     f"{t['evaluated']:,} evaluated, {t['flagged']:,} flagged (training rows "
                     "included)")
    return lines


@click.command("train")
@click.argument("name", type=click.Choice(MODELS))
@click.option("--data", "data", type=click.Path(path_type=Path), default=None,
              help="Training data: wind_turbine a CSV file (default: the bundled T1.csv), "
              "weld a directory of one CSV per run (default: the bundled runs).")
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False),
              default=Path("models"), show_default=True,
              help="Directory for the model file and manifest.json (created if needed; an "
              "existing manifest is updated).")
@click.option("--speed-column", default="wind_speed", show_default=True,
              help="wind_turbine: CSV column with the wind speed.")
@click.option("--target-column", default="Theoretical_Power_Curve", show_default=True,
              help="wind_turbine: CSV column with the power the curve should predict.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest entry as JSON.")
def train_command(name: str, data: Path | None, out: Path, speed_column: str,
                  target_column: str, as_json: bool) -> None:
    """Retrain the model of NAME reproducibly (fixed seeds), write it to --out, update the
    manifest there and print the metrics. Run from a source checkout with the defaults to
    reproduce the shipped models/ files."""
    from udfcollection.ml.data import DataError
    from udfcollection.ml.manifest import ModelError, read_manifest, write_manifest

    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise click.BadParameter(f"{out} is not a directory", param_hint="--out")
    try:
        manifest = read_manifest(out) if out.exists() else None
    except ModelError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    if manifest is None:
        from udfcollection.ml.manifest import empty_manifest

        manifest = empty_manifest()
    previous = manifest["models"].get(name)
    try:
        if name == "wind_turbine":
            from udfcollection.ml import train_wind

            entry = train_wind.train(data, out, speed_column=speed_column,
                                     target_column=target_column, progress=_progress)
        else:
            from udfcollection.ml import train_weld

            entry = train_weld.train(data, out, progress=_progress)
    except DataError as exc:
        raise click.BadParameter(str(exc), param_hint="--data") from None
    manifest["models"][name] = entry
    write_manifest(out, manifest)
    # Evaluate through the real UDF with the file just written, resolved via the manifest.
    try:
        with _models_dir(out):
            if name == "wind_turbine":
                if data is None:
                    entry["metrics"].update(train_wind.t1_stream_metrics(_progress))
                else:
                    _progress("custom data: the T1 stream counts are skipped")
            else:
                _progress("streaming every run, all rows, through weld")
                entry["metrics"]["stream_all_rows"] = train_weld.stream_runs(data, _progress)
    except Exception as exc:  # the model is written; evaluation is extra information
        _progress(f"stream evaluation skipped: {exc}")
    write_manifest(out, manifest)
    _progress(f"updated {out / 'manifest.json'}")
    if as_json:
        click.echo(json.dumps(entry, indent=2, sort_keys=True))
        return
    click.echo(f"{name}: {out / entry['file']} ({entry['size_bytes']:,} bytes, sha256 "
               f"{entry['sha256'][:16]}...)")
    for line in _summary(name, entry["metrics"]):
        click.echo(line)
    click.echo(_compare(previous, entry))
