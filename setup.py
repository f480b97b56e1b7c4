"""Build hook only; all project metadata lives in pyproject.toml.

The shipped models live at the repository's top level (`models/` with `manifest.json`) so they
are easy to find, review and retrain in a checkout. A wheel must carry them too, or a plain
`pip install .` would install a package without its models. This build step copies every file
of `models/` into the built package as `udfcollection/models/`, which is where
`udfcollection.ml.manifest` looks first; a source checkout or editable install falls back to
`<repo>/models`. Copying at build time keeps one copy in git (no symlink, which some checkouts
and archives flatten) and works for wheels built directly or from the sdist (MANIFEST.in grafts
`models/`).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithModels(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable installs read <repo>/models directly
        src = HERE / "models"
        if not (src / "manifest.json").is_file():
            raise SystemExit(f"models/manifest.json not found under {HERE}: cannot build a "
                             "package without its shipped models")
        dst = Path(self.build_lib) / "udfcollection" / "models"
        self.mkpath(str(dst))
        for f in sorted(src.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                self.copy_file(str(f), str(dst / f.name))


setup(cmdclass={"build_py": BuildPyWithModels})
