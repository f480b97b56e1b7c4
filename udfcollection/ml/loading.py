"""Loading models: the shipped ones (hash-checked) and a user's own (explicit path only).

A user's model is loaded only from the path given in the `model` option, never found by
searching. Two formats:

- CatBoost models saved with `save_model` (`.cbm`, recognised by their `CBM1` header). Loading
  one reads numbers; it cannot run code.
- scikit-learn estimators or pipelines saved with `pickle` or `joblib`. **Unpickling runs code
  stored in the file**: a pickle from someone else can do anything this process can do. kapudf
  therefore refuses a model file that another user could have written: one writable by group or
  others, owned by a user other than this one or root, or in a directory that group or others
  can write (unless it is a sticky directory such as /tmp, where only the owner can replace the
  file). The error names the path and the `chmod` that fixes it.

Every error is a `ModelError` whose text names the path and the reason, sent to Kapacitor as
the task's init error.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udfcollection.ml.manifest import ModelError, shipped_model

CATBOOST_MAGIC = b"CBM1"


@dataclass
class LoadedModel:
    """A model ready to score feature matrices (rows = points, columns = features in order).

    `feature_names` are the model's own input names when it recorded them (scikit-learn's
    `feature_names_in_`, CatBoost's `feature_names_`), else None. `classes` is the list of class
    labels for a classifier, None for a regressor."""

    path: Path
    kind: str  # "catboost" or "sklearn"
    estimator: Any
    feature_names: list[str] | None
    n_features: int | None
    classes: list | None
    entry: dict[str, Any] = field(default_factory=dict)  # manifest entry of a shipped model

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @property
    def has_proba(self) -> bool:
        if self.kind == "catboost":
            return self.is_classifier
        return self.is_classifier and callable(getattr(self.estimator, "predict_proba", None))

    def describe(self) -> str:
        what = f"classifier ({len(self.classes)} classes)" if self.classes else "regressor"
        return f"{self.kind} {type(self.estimator).__name__} {what}"

    def predict(self, X):
        """One prediction per row, as a 1-D array (class labels for a classifier)."""
        import numpy as np

        if self.kind == "catboost":
            if self.is_classifier:
                out = self.estimator.predict(X, prediction_type="Class", thread_count=1)
            else:
                out = self.estimator.predict(X, thread_count=1)
            return np.asarray(out).reshape(len(X))
        with warnings.catch_warnings():
            # Features are passed as a plain matrix in the model's own order on purpose.
            warnings.filterwarnings("ignore", message=".*valid feature names.*")
            return np.asarray(self.estimator.predict(X)).reshape(len(X))

    def predict_proba(self, X):
        """Class probabilities, one row per input row, columns in the order of `classes`."""
        import numpy as np

        if self.kind == "catboost":
            out = self.estimator.predict(X, prediction_type="Probability", thread_count=1)
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*valid feature names.*")
                out = self.estimator.predict_proba(X)
        return np.asarray(out, dtype=float).reshape(len(X), -1)


# --- permissions ------------------------------------------------------------------------------

def _who(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_not_writable_by_others(path: Path) -> None:
    """Raise ModelError when a user other than this one (or root) could have written the model
    file at `path` (after following symlinks) or replaced it in its directory."""
    if not hasattr(os, "geteuid"):  # pragma: no cover - not POSIX: no mode bits to check
        return
    me = os.geteuid()
    trusted = {me, 0}
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in trusted:
        raise ModelError(
            f"model file {path} is owned by {_who(st.st_uid)}, not by this user "
            f"({_who(me)}) or root: its owner could change what it runs when loaded; copy it "
            f"to a file you own (cp {path} ~/models/ && chmod go-w ~/models/{path.name})")
    if mode & 0o022:
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if mode & bit)
        raise ModelError(
            f"model file {path} is writable by {who} (mode {mode:04o}): anyone who can write "
            f"it could run code in this process or change its predictions; fix with: "
            f"chmod go-w {path}")
    parent = path.parent
    pst = os.stat(parent)
    pmode = stat.S_IMODE(pst.st_mode)
    if pst.st_uid not in trusted:
        raise ModelError(
            f"model file {path} is in directory {parent} owned by {_who(pst.st_uid)}, who "
            f"could replace the file; move the model to a directory you own")
    if pmode & 0o022 and not pmode & stat.S_ISVTX:
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if pmode & bit)
        raise ModelError(
            f"model file {path} is in directory {parent}, which is writable by {who} (mode "
            f"{pmode:04o}): anyone who can write there could replace the model; fix with: "
            f"chmod go-w {parent} (or move the model to a directory only you can write)")


# --- loading ----------------------------------------------------------------------------------

def _read_header(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror or exc}") from None


def _load_catboost(path: Path, entry: dict[str, Any]) -> LoadedModel:
    try:
        from catboost import CatBoost, CatBoostError
    except ImportError:  # pragma: no cover - catboost is a dependency
        raise ModelError(f"model {path} is a CatBoost model but catboost is not installed "
                         "(pip install catboost)") from None
    est = CatBoost()
    try:
        est.load_model(str(path))
    except CatBoostError as exc:
        raise ModelError(f"cannot load CatBoost model {path}: {exc}") from None
    names = list(est.feature_names_ or [])
    n = len(names) or None
    if names == [str(i) for i in range(len(names))]:
        names = []  # trained on an unnamed matrix: CatBoost made up "0", "1", ...
    classes = [_plain(c) for c in est.classes_] if len(est.classes_) else None
    return LoadedModel(path, "catboost", est, names or None, n, classes, entry)


def _plain(v: Any) -> Any:
    """numpy scalars -> Python values, so labels print and compare like the user wrote them."""
    item = getattr(v, "item", None)
    return item() if callable(item) else v


def _load_pickle(path: Path, entry: dict[str, Any], log: logging.Logger) -> LoadedModel:
    import joblib  # installed with scikit-learn; reads plain pickles as well as joblib dumps

    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = joblib.load(path)
    except ModuleNotFoundError as exc:
        raise ModelError(f"cannot load model {path}: it needs Python module {exc.name!r}, which "
                         "is not installed") from None
    except Exception as exc:
        raise ModelError(f"cannot load model {path}: not a scikit-learn pickle/joblib file or a "
                         f"CatBoost .cbm model ({type(exc).__name__}: {exc})") from None
    for w in caught:
        log.warning("model %s: %s", path, str(w.message).replace("\n", " "))
    if not callable(getattr(est, "predict", None)):
        raise ModelError(f"model {path} holds a {type(est).__module__}.{type(est).__name__}, "
                         "not an estimator with a predict() method")
    names = getattr(est, "feature_names_in_", None)
    names = [str(x) for x in names] if names is not None else None
    n = getattr(est, "n_features_in_", None)
    classes = getattr(est, "classes_", None)
    classes = [_plain(c) for c in classes] if classes is not None else None
    return LoadedModel(path, "sklearn", est, names, int(n) if n is not None else None, classes,
                       entry)


def settle_heap() -> None:
    """Move everything allocated so far (the ML libraries' module objects: over 100,000 of
    them) out of the cyclic garbage collector's view. Otherwise every full collection while
    points stream rescans them all, which halves a vectorised UDF's throughput. Reference
    counting still frees these objects as usual; only cycles among them would be kept."""
    import gc

    gc.collect()
    gc.freeze()


def load_model_file(path: Path, log: logging.Logger, entry: dict[str, Any] | None = None
                    ) -> LoadedModel:
    """Load a model file whose trust has already been established (shipped and hash-checked,
    or a user's file that passed the permission checks)."""
    if _read_header(path) == CATBOOST_MAGIC:
        model = _load_catboost(path, entry or {})
    else:
        model = _load_pickle(path, entry or {}, log)
    settle_heap()
    return model


def load_user_model(path_text: str, log: logging.Logger) -> LoadedModel:
    """Load the model a user named in the `model` option. Raises ModelError naming the path."""
    path = Path(os.path.expanduser(path_text))
    if not path.is_absolute():
        path = Path.cwd() / path
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise ModelError(f"cannot read model {path}: no such file") from None
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"cannot read model {path}: {getattr(exc, 'strerror', None) or exc}"
                         ) from None
    if real.is_dir():
        raise ModelError(f"cannot read model {path}: it is a directory, not a model file")
    header = _read_header(real)
    check_not_writable_by_others(real)
    if header != CATBOOST_MAGIC:
        log.info("loading pickled model %s: unpickling runs code stored in the file, so only "
                 "use model files you trust", real)
    return load_model_file(real, log)


SHIPPED_PREFIX = "shipped:"


def load_model_option(text: str, log: logging.Logger) -> LoadedModel:
    """The model a `model` option names: `shipped:NAME` for a shipped model (hash-checked,
    e.g. `shipped:weld` to serve it through the generic `model` UDF), else a file path."""
    if text.startswith(SHIPPED_PREFIX):
        return load_shipped(text[len(SHIPPED_PREFIX):], log)
    return load_user_model(text, log)


def load_shipped(name: str, log: logging.Logger) -> LoadedModel:
    """The shipped model `name` after its sha256 matched the manifest."""
    path, entry = shipped_model(name)
    if os.environ.get("KAPUDF_MODELS_DIR"):
        # A directory chosen at run time is only as trustworthy as who can write it.
        check_not_writable_by_others(path.resolve())
    return load_model_file(path, log, entry)
