"""Text derived from UDF declarations: option tables, example TICKscripts, kapacitor.conf
sections and the README catalogue table. Nothing here is written by hand per UDF."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from udfcollection.spec import BATCH, COMMON_OPTIONS, FLAG, UDF, Option, tick_literal

COMMON_NAMES = {o.name for o in COMMON_OPTIONS}


def default_text(opt: Option) -> str:
    if opt.required:
        return "required"
    if opt.type == FLAG:
        return "off"
    d = opt.default
    if opt.repeatable and not d:
        return "none"
    if d is None:
        return "none"
    return tick_literal(d, opt.type)


def option_rows(cls: type[UDF], include_common: bool = True) -> list[dict[str, str]]:
    rows = []
    for opt in cls.all_options():
        if not include_common and opt.name in COMMON_NAMES:
            continue
        kind = opt.type.upper() if opt.type != FLAG else "flag"
        if opt.repeatable:
            kind += " (repeatable)"
        rows.append({
            "name": opt.name,
            "type": kind,
            "default": default_text(opt),
            "constraint": opt.constraint_text(),
            "help": opt.help,
        })
    return rows


def udf_summary_json(cls: type[UDF]) -> dict:
    return {
        "name": cls.name,
        "wants": cls.wants,
        "provides": cls.provides,
        "summary": cls.summary,
        "options": [
            {
                "name": o.name,
                "type": o.type,
                "required": o.required,
                "repeatable": o.repeatable,
                "default": None if o.required else o.default_value(),
                "constraint": o.constraint_text() or None,
                "help": o.help,
                "example": o.example,
            }
            for o in cls.all_options()
        ],
    }


def _tick_call(opt: Option, value) -> str:
    if opt.type == FLAG:
        return f".{opt.name}()"
    return f".{opt.name}({tick_literal(value, opt.type)})"


def example_calls(cls: type[UDF]) -> list[str]:
    """The UDF's property methods in the example: `example_options` in order (a repeatable
    option given a list repeats the call; a flag given a false value is left out), then any
    required option not among them with its declared example."""
    decl = {o.name: o for o in cls.all_options()}
    calls = []
    for name, value in cls.example_options.items():
        opt = decl[name]
        if opt.type == FLAG and not value:
            continue
        values = value if opt.repeatable and isinstance(value, list | tuple) else [value]
        calls.extend(_tick_call(opt, v) for v in values)
    for opt in decl.values():
        if opt.required and opt.name not in cls.example_options:
            calls.append(_tick_call(opt, opt.example))
    return calls


def example_pipeline(cls: type[UDF]) -> list[str]:
    """The example's source node and UDF node, one call per line: `stream |from()` with the
    example measurement and grouping for stream UDFs, `batch |query(...)` with period, every and
    groupBy for batch UDFs."""
    m = cls.example_measurement
    group = ", ".join(f"'{g}'" for g in cls.example_group_by)
    if cls.wants == BATCH:
        fields = ", ".join(f'"{f}"' for f in _example_fields(cls)) or "*"
        lines = [
            "batch",
            f"    |query('SELECT {fields} FROM \"telegraf\".\"autogen\".\"{m}\"')",
            "        .period(5m)",
            "        .every(5m)",
        ]
    else:
        lines = ["stream", "    |from()", f"        .measurement('{m}')"]
    if group:
        lines.append(f"        .groupBy({group})")
    lines.append(f"    @{cls.name}()")
    lines += [f"        {c}" for c in example_calls(cls)]
    return lines


def example_tick(cls: type[UDF]) -> str:
    """A runnable example TICKscript for the UDF, from its declaration: a dbrp line, the
    pipeline of `example_pipeline`, and an influxDBOut writing to `<measurement>_<name>`."""
    m = cls.example_measurement
    lines = [
        f"// {cls.name}: {cls.summary}",
        f"// Generated from the UDF's declaration (`kapudf info {cls.name} --tick`); a test keeps",
        "// it current. Options left out take their defaults: see `kapudf info "
        f"{cls.name}`.",
        'dbrp "telegraf"."autogen"',
        "",
        *example_pipeline(cls),
        "    |influxDBOut()",
        "        .database('telegraf')",
        "        .retentionPolicy('autogen')",
        f"        .measurement('{m}_{cls.name}')",
        "",
    ]
    return "\n".join(lines)


def _example_fields(cls: type[UDF]) -> list[str]:
    out = []
    for name, value in cls.example_options.items():
        if name == "field" or name.endswith("Field"):
            out.extend(value if isinstance(value, list | tuple) else [value])
    return out


def kapudf_prog() -> str:
    """Absolute path of the installed `kapudf` script: Kapacitor runs with its own PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "kapudf" and argv0.exists():
        return str(argv0.resolve())
    found = shutil.which("kapudf")
    if found:
        return str(Path(found).resolve())
    candidate = Path(sys.executable).with_name("kapudf")
    return str(candidate if candidate.exists() else "kapudf")


def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def conf_section(cls: type[UDF] | None, name: str, *, prog: str | None = None,
                 args: list[str] | None = None, timeout: str = "10s",
                 socket_dir: str | None = None, log_level: str = "info") -> str:
    """One `[udf.functions.NAME]` section (indented as in Kapacitor's sample config)."""
    lines = []
    if cls is not None:
        lines.append(f"  # {name}: {cls.summary} ({cls.wants} -> {cls.provides})")
    lines.append(f"  [udf.functions.{name}]")
    if socket_dir:
        lines.append(f"    socket = {toml_str(os.path.join(socket_dir, name + '.sock'))}")
        lines.append(f"    timeout = {toml_str(timeout)}")
    else:
        lines.append(f"    prog = {toml_str(prog or kapudf_prog())}")
        the_args = args if args is not None else ["run", name]
        lines.append("    args = [" + ", ".join(toml_str(a) for a in the_args) + "]")
        lines.append(f"    timeout = {toml_str(timeout)}")
        lines.append(f"    [udf.functions.{name}.env]")
        lines.append(f"      KAPUDF_LOG_LEVEL = {toml_str(log_level)}")
    return "\n".join(lines)


def conf_document(sections: list[str], header: str = "") -> str:
    out = []
    if header:
        out += ["# " + line if line else "#" for line in header.splitlines()]
    out += ["[udf]", "[udf.functions]"]
    for s in sections:
        out.append(s)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def catalogue_examples_markdown(classes: list[type[UDF]]) -> str:
    """Per UDF: a heading, what it emits (the declaration's `emits`), and the example pipeline
    (the full script is tick_scripts/NAME.tick)."""
    parts = []
    for cls in classes:
        emits = (f"Emits {cls.emits}." if cls.emits
                 else f"Provides a {cls.provides}; see `kapudf info {cls.name}`.")
        parts += [
            f"### {cls.name}",
            "",
            f"{cls.summary} {emits} Every option: `kapudf info {cls.name}`; full script: "
            f"[tick_scripts/{cls.name}.tick](tick_scripts/{cls.name}.tick).",
            "",
            "```js",
            *example_pipeline(cls),
            "```",
            "",
        ]
    return "\n".join(parts).rstrip("\n")


def catalogue_markdown(classes: list[type[UDF]]) -> str:
    rows = ["| UDF | wants -> provides | what it does | options |", "|---|---|---|---|"]
    for cls in classes:
        own = ", ".join(f"`{o.name}`" for o in cls.options)
        rows.append(f"| `{cls.name}` | {cls.wants} -> {cls.provides} | {cls.summary} | {own} |")
    return "\n".join(rows)


