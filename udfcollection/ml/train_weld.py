"""Training recipe of the weld classifier (`kapudf train weld`).

Data: one CSV per welding run (columns Pressure, CO2 Weld Flow, Feed, Primary Weld Current,
Wire Consumed, Secondary Weld Voltage; rows in time order); the run's class is its file name
without the date/id suffix. Only welding rows (Primary Weld Current > 50) are used. Each run is
split in time: the first 70% of its welding rows train, the last 30% are held out and never
seen during training; the metrics describe the shipped model on those held-out rows.

CatBoost MultiClass, fixed hyper-parameters chosen before looking at held-out results
(iterations 500, depth 6, learning rate 0.1), random_seed 0 and one thread, so training is
reproducible. The saved .cbm is made byte-reproducible by fixing the two metadata entries
CatBoost fills with the training time and a random model GUID, and dropping its per-iteration
learning curve.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from udfcollection.ml.data import (
    WELD_DIR,
    DataError,
    sha256_of_files,
    weld_class_of,
    weld_run_files,
)
from udfcollection.udfs.weld import CURRENT, FEATURES

MODEL_FILE = "weld_catboost.cbm"
TRAIN_FRACTION = 0.7
MIN_CURRENT = 50.0
PARAMS: dict[str, Any] = {"loss_function": "MultiClass", "iterations": 500, "depth": 6,
                          "learning_rate": 0.1, "random_seed": 0, "thread_count": 1}
THRESHOLD = 0.5

Progress = Callable[[str], None]


def split_runs(directory: Path, progress: Progress = lambda s: None):
    """(train frame, held-out frame, per-run summary) with a 'label' and a 'run' column."""
    import pandas as pd

    trains, tests, runs = [], [], []
    for f in weld_run_files(directory):
        try:
            df = pd.read_csv(f)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {f} as CSV: {exc}") from None
        df.columns = [c.strip() for c in df.columns]
        missing = [c for c in FEATURES if c not in df.columns]
        if missing:
            raise DataError(f"{f} has no column(s) {', '.join(map(repr, missing))}; weld "
                            f"training needs {', '.join(map(repr, FEATURES))}")
        df = df[list(FEATURES)].apply(pd.to_numeric, errors="coerce").dropna()
        welding = df[df[CURRENT] > MIN_CURRENT].copy()
        label = weld_class_of(f)
        welding["label"] = label
        welding["run"] = f.name
        n_train = int(len(welding) * TRAIN_FRACTION)
        trains.append(welding.iloc[:n_train])
        tests.append(welding.iloc[n_train:])
        runs.append({"file": f.name, "class": label, "rows": len(df),
                     "welding_rows": len(welding), "train_rows": n_train,
                     "heldout_rows": int(len(welding) - n_train)})
        progress(f"  {f.name}: {len(df)} rows, {len(welding)} welding, class {label}")
    train = pd.concat(trains, ignore_index=True)
    test = pd.concat(tests, ignore_index=True)
    labels = sorted(set(train["label"]))
    goods = [c for c in labels if c.lower().startswith("good")]
    if len(goods) != 1:
        raise DataError(f"{directory}: need exactly one good-weld class (a file name starting "
                        f"with 'good'), found classes {', '.join(labels)}")
    if len(labels) < 2:
        raise DataError(f"{directory}: need a good-weld class and at least one defect class")
    return train, test, runs, goods[0]


def evaluate(model, test, good: str, threshold: float = THRESHOLD) -> dict[str, Any]:
    """Held-out metrics of a fitted classifier."""
    import numpy as np

    X = test[list(FEATURES)].to_numpy(dtype=float)
    proba = np.asarray(model.predict(X, prediction_type="Probability", thread_count=1))
    classes = [str(c) for c in model.classes_]
    pred = np.array(classes)[proba.argmax(axis=1)]
    truth = test["label"].to_numpy()
    defect_p = 1.0 - proba[:, classes.index(good)]
    flagged = defect_p > threshold
    is_good = truth == good
    per_class = {}
    for c in classes:
        m = truth == c
        per_class[c] = {"rows": int(m.sum()), "recall": round(float((pred[m] == c).mean()), 4)
                        if m.any() else None}
    confusion = {c: {} for c in classes}
    for t, p in zip(truth, pred, strict=True):
        confusion[t][p] = confusion[t].get(p, 0) + 1
    return {
        "heldout_rows": len(test),
        "heldout_accuracy": round(float((pred == truth).mean()), 4),
        "good_weld_false_positive_rate": round(float(flagged[is_good].mean()), 4)
        if is_good.any() else None,
        "defect_recall": round(float(flagged[~is_good].mean()), 4) if (~is_good).any() else None,
        "good_heldout_rows": int(is_good.sum()),
        "defect_heldout_rows": int((~is_good).sum()),
        "threshold": threshold,
        "per_class": per_class,
        "confusion": confusion,
    }


def train(data: Path | None, out_dir: Path, *, progress: Progress = lambda s: None
          ) -> dict[str, Any]:
    """Fit the weld classifier on `data` (default: the bundled runs), write it to
    `out_dir/MODEL_FILE` and return its manifest entry with held-out metrics."""
    import catboost
    import numpy as np
    import pandas as pd

    from udfcollection.ml.manifest import sha256_file

    directory = Path(data) if data is not None else WELD_DIR
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory; weld training data is a directory "
                        "with one CSV file per welding run")
    progress(f"reading runs in {directory}")
    train_df, test_df, runs, good = split_runs(directory, progress)
    progress(f"training CatBoost on {len(train_df):,} welding rows (first "
             f"{TRAIN_FRACTION:.0%} of each run), {train_df['label'].nunique()} classes, "
             f"{PARAMS['iterations']} iterations, 1 thread")
    model = catboost.CatBoostClassifier(**PARAMS, verbose=0, allow_writing_files=False)
    model.fit(train_df[list(FEATURES)], train_df["label"])
    progress(f"evaluating on {len(test_df):,} held-out rows (last "
             f"{1 - TRAIN_FRACTION:.0%} of each run)")
    metrics = evaluate(model, test_df, good)
    metrics["train_rows"] = len(train_df)
    train_pred = np.asarray(model.predict(train_df[list(FEATURES)])).ravel()
    metrics["train_accuracy"] = round(float((train_pred == train_df["label"].to_numpy()).mean()),
                                      4)
    data_hash = sha256_of_files(weld_run_files(directory))
    meta = model.get_metadata()
    meta["train_finish_time"] = "1970-01-01T00:00:00Z"
    meta["model_guid"] = f"kapudf-weld-{data_hash[:32]}"
    if "training" in meta:
        del meta["training"]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_FILE
    tmp = path.with_name(path.name + ".tmp")
    model.save_model(str(tmp))
    tmp.replace(path)
    progress(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return {
        "name": "weld",
        "file": MODEL_FILE,
        "format": "catboost-cbm",
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "estimator": "catboost.CatBoostClassifier",
        "params": PARAMS,
        "seed": PARAMS["random_seed"],
        "features": list(FEATURES),
        "classes": [str(c) for c in model.classes_],
        "good_class": good,
        "gate": f"{CURRENT} > {MIN_CURRENT}",
        "split": f"per run, time order: first {TRAIN_FRACTION:.0%} of welding rows train, "
                 f"last {1 - TRAIN_FRACTION:.0%} held out",
        "training_data": {"files": [r["file"] for r in runs], "sha256": data_hash,
                          "runs": runs},
        "libraries": {"python": platform.python_version(), "numpy": np.__version__,
                      "pandas": pd.__version__, "catboost": catboost.__version__},
        "trained_with": "kapudf train weld" + ("" if data is None else
                                                f" --data {directory.name}"),
        "metrics": metrics,
    }


def stream_runs(directory: Path | None = None, progress: Progress = lambda s: None
                ) -> dict[str, Any]:
    """Stream every run file, all rows, through the real weld UDF (offline runner, model as
    the environment resolves it) and count what it reports per run."""
    from collections import Counter

    from udfcollection import offline
    from udfcollection.ml.data import weld_points
    from udfcollection.udfs.weld import Weld

    directory = directory or WELD_DIR
    per_run = {}
    total = Counter()
    for f in weld_run_files(directory):
        pts = weld_points(f)
        out = offline.run(Weld, pts, [], ["run"])
        if out.errors:
            raise RuntimeError("; ".join(out.errors))
        evaluated = [p for p in out.points if p.fields.get("weld_class")]
        classes = Counter(p.fields["weld_class"] for p in evaluated)
        flagged = sum(1 for p in evaluated if p.fields["anomaly_status"] == 1.0)
        top = classes.most_common(1)[0][0] if classes else ""
        per_run[weld_class_of(f)] = {"points": len(pts), "evaluated": len(evaluated),
                                     "flagged": flagged, "most_common_class": top}
        total.update(points=len(pts), evaluated=len(evaluated), flagged=flagged)
        progress(f"  {f.name}: {len(pts)} points, {len(evaluated)} evaluated, {flagged} "
                 f"flagged, mostly {top}")
    return {"runs": per_run, "total": dict(total)}
