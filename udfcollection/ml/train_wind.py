"""Training recipe of the wind_turbine power curve (`kapudf train wind_turbine`).

The model is a scikit-learn `IsotonicRegression` of the theoretical power on wind speed: a
power curve is non-decreasing in wind speed up to cut-out, and an isotonic fit is exactly the
best non-decreasing curve through the data. It is deterministic (no random state, so the same
data and library versions give the same pickle bytes), about 16 KB, and scores thousands of
speeds in microseconds. Above the highest training speed it holds the last value.
"""

from __future__ import annotations

import pickle
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from udfcollection.ml.data import WIND_T1, DataError, sha256_of_files

MODEL_FILE = "wind_turbine_power_curve.pkl"
PICKLE_PROTOCOL = 4
# The published detector's counts on T1 (its own random-forest model), for comparison.
REFERENCE = {"flagged": 2189, "low": 676, "medium": 913, "high": 600,
             "source": "published edge-ai-suites wind-turbine detector, T1 streamed in time "
                       "order with grid_activepower as power"}

Progress = Callable[[str], None]


def read_training_table(path: Path, speed_column: str, target_column: str):
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"cannot read {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as CSV: {exc}") from None
    missing = [c for c in (speed_column, target_column) if c not in df.columns]
    if missing:
        raise DataError(f"{path} has no column(s) {', '.join(map(repr, missing))}; its columns "
                        f"are {', '.join(map(repr, df.columns))}")
    sub = df[[speed_column, target_column]].apply(pd.to_numeric, errors="coerce").dropna()
    if len(sub) < 10:
        raise DataError(f"{path}: only {len(sub)} rows with numeric {speed_column!r} and "
                        f"{target_column!r}; need at least 10")
    return sub[speed_column].to_numpy(dtype=float), sub[target_column].to_numpy(dtype=float)


def fit(speed, power):
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(increasing=True, out_of_bounds="clip")
    # A 2-D single-column input makes the fitted model record n_features_in_ = 1.
    model.fit(speed.reshape(-1, 1), power)
    return model


def train(data: Path | None, out_dir: Path, *, speed_column: str = "wind_speed",
          target_column: str = "Theoretical_Power_Curve",
          progress: Progress = lambda s: None) -> dict[str, Any]:
    """Fit the power curve on `data` (default: the bundled T1.csv), write it to
    `out_dir/MODEL_FILE` and return its manifest entry (without stream metrics)."""
    import numpy as np
    import sklearn

    from udfcollection.ml.manifest import sha256_file

    data = Path(data) if data is not None else WIND_T1
    progress(f"reading {data}")
    speed, power = read_training_table(data, speed_column, target_column)
    progress(f"fitting isotonic power curve on {len(speed):,} rows "
             f"({speed_column!r} -> {target_column!r})")
    model = fit(speed, power)
    pred = model.predict(speed.reshape(-1, 1))
    resid = pred - power
    ss_tot = float(((power - power.mean()) ** 2).sum())
    metrics = {
        "train_rows": len(speed),
        "mae_kw": round(float(np.abs(resid).mean()), 4),
        "max_abs_error_kw": round(float(np.abs(resid).max()), 4),
        "r2": round(1.0 - float((resid ** 2).sum()) / ss_tot, 6) if ss_tot else None,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_FILE
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(model, fh, protocol=PICKLE_PROTOCOL)
    tmp.replace(path)
    progress(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return {
        "name": "wind_turbine",
        "file": MODEL_FILE,
        "format": "sklearn-pickle",
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "estimator": "sklearn.isotonic.IsotonicRegression(increasing=True, "
                     "out_of_bounds='clip')",
        "features": [speed_column],
        "target": target_column,
        "seed": None,
        "deterministic": "isotonic regression has no randomness",
        "training_data": {"files": [data.name], "sha256": sha256_of_files([data]),
                          "rows": len(speed)},
        "libraries": {"python": platform.python_version(), "numpy": np.__version__,
                      "scikit-learn": sklearn.__version__},
        "trained_with": "kapudf train wind_turbine"
                        + ("" if data == WIND_T1 else f" --data {data.name}"),
        "metrics": metrics,
    }


def stream_counts(points, options: list | None = None) -> dict[str, int]:
    """Stream points through the real wind_turbine UDF (offline runner) and count the
    anomaly_status values of the output."""
    from udfcollection import offline
    from udfcollection.udfs.wind_turbine import WindTurbine

    out = offline.run(WindTurbine, points, options or [], ["turbine"])
    if out.errors:
        raise RuntimeError("; ".join(out.errors))
    counts = {"points": len(points), "emitted": len(out.points), "evaluated": 0,
              "flagged": 0, "low": 0, "medium": 0, "high": 0}
    for p in out.points:
        status = p.fields.get("anomaly_status")
        if p.fields.get("expected_power", 0.0) != 0.0:
            counts["evaluated"] += 1
        if status == 0.3:
            counts["low"] += 1
        elif status == 0.6:
            counts["medium"] += 1
        elif status == 1.0:
            counts["high"] += 1
    counts["flagged"] = counts["low"] + counts["medium"] + counts["high"]
    return counts


def t1_stream_metrics(progress: Progress = lambda s: None) -> dict[str, Any]:
    """T1 streamed in time order with grid_activepower as power, through the UDF with the
    model the environment resolves (shipped or KAPUDF_MODELS_DIR)."""
    from udfcollection.ml.data import wind_points

    pts = wind_points(WIND_T1)
    progress(f"streaming T1 ({len(pts):,} points) through wind_turbine, default options")
    spec = stream_counts(pts)
    progress("streaming T1 again with notEvaluatedBreaks=TRUE (the published detector's "
             "window)")
    published = stream_counts(pts, [("notEvaluatedBreaks", [("bool", True)])])
    return {"t1_stream_default": spec, "t1_stream_not_evaluated_breaks": published,
            "reference_published": REFERENCE}
