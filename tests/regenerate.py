#!/usr/bin/env python3
"""Rewrite the files derived from the UDF declarations:

- `tick_scripts/NAME.tick` for every UDF in the catalogue (`render.example_tick`); generated
  scripts of UDFs that no longer exist are removed;
- `kapacitor.conf.example`: the output of `kapudf conf --all --prog /usr/local/bin/kapudf`
  under a header saying so;
- README.md: the catalogue table between `<!-- catalogue-table -->` markers
  (`render.catalogue_markdown`) and the per-UDF examples between `<!-- catalogue-examples -->`
  markers (`render.catalogue_examples_markdown`).

Run `python tests/regenerate.py` after adding a UDF or changing a declaration;
`python tests/regenerate.py --check` lists stale files and exits 1 (tests/test_generated_files.py
does the same check). Every UDF `registry.names()` knows is covered, so a new catalogue UDF
needs nothing here.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICK_DIR = REPO / "tick_scripts"
CONF_EXAMPLE = REPO / "kapacitor.conf.example"
README = REPO / "README.md"
PROG = "/usr/local/bin/kapudf"
GENERATED_TICK_MARK = "// Generated from the UDF's declaration"
README_BLOCKS = ("catalogue-table", "catalogue-examples")

CONF_HEADER = f"""\
# kapacitor.conf sections for every UDF in the kapudf catalogue: the output of
#   kapudf conf --all --prog {PROG}
# kept current by tests/test_generated_files.py (rewrite it with `python tests/regenerate.py`).
# Paste the [udf] part into your kapacitor.conf, or run `kapudf conf --all` on the Kapacitor
# host to get the same with the absolute path of the kapudf installed there.
"""


def udf_classes() -> list:
    from udfcollection import registry

    return registry.all_udfs()


def tick_scripts() -> dict[Path, str]:
    from udfcollection import render

    return {TICK_DIR / f"{cls.name}.tick": render.example_tick(cls) for cls in udf_classes()}


def orphan_tick_scripts() -> list[Path]:
    """Generated scripts in tick_scripts/ whose UDF is gone (hand-written ones are kept)."""
    wanted = set(tick_scripts())
    out = []
    for path in sorted(TICK_DIR.glob("*.tick")):
        if path not in wanted and GENERATED_TICK_MARK in path.read_text(encoding="utf-8"):
            out.append(path)
    return out


def conf_example() -> str:
    from click.testing import CliRunner

    from udfcollection.commands.conf import conf_command

    result = CliRunner().invoke(conf_command, ["--all", "--prog", PROG])
    if result.exit_code != 0:
        raise RuntimeError(f"kapudf conf --all failed: {result.output}")
    return CONF_HEADER + result.stdout


def replace_block(text: str, name: str, content: str) -> str:
    """Replace what lies between `<!-- name -->` and `<!-- /name -->` with `content`."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"README.md has no {start} ... {end} block")
    return text[:i + len(start)] + "\n" + content.rstrip("\n") + "\n" + text[j:]


def readme_text(current: str) -> str:
    from udfcollection import render

    classes = udf_classes()
    text = replace_block(current, "catalogue-table", render.catalogue_markdown(classes))
    return replace_block(text, "catalogue-examples", render.catalogue_examples_markdown(classes))


def expected_files() -> dict[Path, str]:
    files = tick_scripts()
    files[CONF_EXAMPLE] = conf_example()
    files[README] = readme_text(README.read_text(encoding="utf-8"))
    return files


def stale_files() -> list[Path]:
    """Generated files whose content differs from what the declarations give, plus orphans."""
    stale = [path for path, text in expected_files().items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    return stale + orphan_tick_scripts()


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(REPO)}")
        return 1 if stale else 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    TICK_DIR.mkdir(exist_ok=True)
    for path in orphan_tick_scripts():
        path.unlink()
        print(f"removed {path.relative_to(REPO)}")
    for path, text in expected_files().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
