"""The shipped models and their manifest.

The models live in the repository's top-level `models/` with `models/manifest.json`. A wheel
carries them as `udfcollection/models/` (setup.py's build step copies them there), so they are
found after a plain `pip install .` as well as in a source checkout or an editable install.

A shipped model is used only when its sha256 matches the manifest: a modified or damaged file
is refused with a message naming the file, both hashes and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "kapudf-models"


class ModelError(Exception):
    """A model that cannot be used; the text names the file and what to do."""


def _candidates() -> list[Path]:
    pkg = Path(__file__).resolve().parent.parent  # .../udfcollection
    env = os.environ.get("KAPUDF_MODELS_DIR")
    if env:
        # Set on purpose: never fall back silently to other models.
        return [Path(env)]
    # Installed wheel first, then a source checkout / editable install (<repo>/models).
    return [pkg / "models", pkg.parent / "models"]


def _is_models_dir(d: Path) -> bool:
    try:
        doc = json.loads((d / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT


def shipped_models_dir() -> Path | None:
    """The directory holding the shipped models and manifest, or None when none is installed.
    `KAPUDF_MODELS_DIR` overrides the search (it must hold a kapudf manifest)."""
    for d in _candidates():
        if _is_models_dir(d):
            return d
    return None


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def empty_manifest() -> dict[str, Any]:
    return {"format": MANIFEST_FORMAT, "version": 1, "models": {}}


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest in `directory`; an empty one when the file does not exist."""
    path = Path(directory) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return empty_manifest()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"{path} is not a kapudf model manifest (no \"format\": "
                         f"\"{MANIFEST_FORMAT}\")")
    doc.setdefault("models", {})
    return doc


def write_manifest(directory: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write the manifest with sorted keys, so the same content gives the same bytes."""
    path = Path(directory) / MANIFEST_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def shipped_model(name: str) -> tuple[Path, dict[str, Any]]:
    """(path, manifest entry) of the shipped model `name`, after checking its sha256.

    Raises ModelError when no models are installed, the manifest has no such model, the file is
    missing or unreadable, or its hash differs from the manifest."""
    directory = shipped_models_dir()
    if directory is None:
        raise ModelError("no shipped models found (looked in "
                         + ", ".join(str(d) for d in _candidates())
                         + "); reinstall udfcollection, or give .model('/path/to/model')")
    entry = read_manifest(directory)["models"].get(name)
    if not isinstance(entry, dict) or "file" not in entry or "sha256" not in entry:
        raise ModelError(f"{directory / MANIFEST_NAME} lists no model {name!r}; reinstall "
                         f"udfcollection or run `kapudf train {name}`")
    path = directory / entry["file"]
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read shipped model {path}: {exc.strerror}") from None
    if digest != entry["sha256"]:
        raise ModelError(
            f"shipped model {path} does not match {directory / MANIFEST_NAME} (sha256 "
            f"{digest[:16]}..., manifest says {entry['sha256'][:16]}...): the file was modified "
            f"or damaged and is refused; reinstall udfcollection or run `kapudf train {name}`")
    return path, entry
