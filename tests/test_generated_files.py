"""Files generated from the UDF declarations stay current, and what they hold is valid.

tick_scripts/NAME.tick, kapacitor.conf.example and the README catalogue are written by
tests/regenerate.py; when a declaration changes, these tests fail until it is run again.
The TICKscripts are also checked token by token against the lexical rules of Kapacitor's
TICKscript lexer (numbers are digits with at most one decimal point, durations one integer and
one unit, strings single-quoted with \\' escapes, "references" double-quoted), against the
statement shapes the examples use, and against the option types each UDF declares (Kapacitor
refuses `.size(10.0)` for an INT option at define time).
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from udfcollection import registry, render
from udfcollection.spec import BOOL, DOUBLE, DURATION, FLAG, INT, STRING

_spec = importlib.util.spec_from_file_location(
    "kapudf_regenerate", Path(__file__).with_name("regenerate.py"))
regenerate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regenerate)

STALE_HINT = "run python tests/regenerate.py"


# --- currency ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", registry.names())
def test_tick_script_is_current(name):
    path = regenerate.TICK_DIR / f"{name}.tick"
    assert path.exists(), f"tick_scripts/{name}.tick is missing: {STALE_HINT}"
    want = render.example_tick(registry.get(name))
    assert path.read_text(encoding="utf-8") == want, \
        f"tick_scripts/{name}.tick is stale: {STALE_HINT}"


def test_no_generated_tick_script_without_its_udf():
    orphans = regenerate.orphan_tick_scripts()
    assert not orphans, f"scripts of unknown UDFs {[p.name for p in orphans]}: {STALE_HINT}"


def test_kapacitor_conf_example_is_current():
    want = regenerate.conf_example()
    have = regenerate.CONF_EXAMPLE.read_text(encoding="utf-8")
    assert have == want, f"kapacitor.conf.example is stale: {STALE_HINT}"


def test_readme_catalogue_is_current():
    have = regenerate.README.read_text(encoding="utf-8")
    assert have == regenerate.readme_text(have), f"README.md catalogue is stale: {STALE_HINT}"


def test_readme_blocks_sit_inside_the_catalogue_section():
    text = regenerate.README.read_text(encoding="utf-8")
    section = text[text.index("<!-- section: catalogue -->"):
                   text.index("<!-- /section: catalogue -->")]
    for block in regenerate.README_BLOCKS:
        assert f"<!-- {block} -->" in section and f"<!-- /{block} -->" in section


def test_replace_block_refuses_a_missing_block():
    with pytest.raises(ValueError, match="catalogue-table"):
        regenerate.replace_block("no markers here", "catalogue-table", "x")
    assert regenerate.replace_block("a <!-- b -->old<!-- /b --> c", "b", "new") == \
        "a <!-- b -->\nnew\n<!-- /b --> c"


# --- kapacitor.conf.example -------------------------------------------------------------------

def test_kapacitor_conf_example_is_valid_toml_with_every_udf():
    doc = tomllib.loads(regenerate.CONF_EXAMPLE.read_text(encoding="utf-8"))
    functions = doc["udf"]["functions"]
    assert sorted(functions) == registry.names()
    for name, section in functions.items():
        assert section["prog"] == regenerate.PROG
        assert section["args"] == ["run", name]
        assert section["timeout"] == "10s"
        assert "socket" not in section  # prog and socket are exclusive in Kapacitor


# --- TICKscript validity ------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<comment>//[^\n]*)
  | (?P<string>'''.*?'''|'(?:\\'|[^'])*')
  | (?P<reference>"(?:\\"|[^"])*")
  | (?P<duration>\d+(?:ms|[uµsmhdw]))
  | (?P<number>\d+(?:\.\d*)?|\.\d+)
  | (?P<ident>[A-Za-z][A-Za-z0-9_]*)
  | (?P<punct>[|@.(),*-])
  | (?P<space>\s+)
""", re.VERBOSE | re.DOTALL)

_KEYWORDS = {"TRUE", "FALSE", "AND", "OR", "var", "lambda"}
_ARG_KINDS = {"string", "reference", "duration", "number", "TRUE", "FALSE", "star"}


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, line) tokens; raises ValueError naming the line of an unlexable spot."""
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        line = text.count("\n", 0, pos) + 1
        if m is None:
            raise ValueError(f"line {line}: cannot lex {text[pos:pos + 15]!r}")
        kind = m.lastgroup
        value = m.group()
        if kind == "ident" and value in _KEYWORDS:
            kind = value
        elif kind == "punct" and value == "*":
            kind = "star"
        if kind not in ("space", "comment"):
            out.append((kind, value, line))
        pos = m.end()
    return out


def _kind_for(option_type: str, value: str, kind: str) -> bool:
    if option_type == INT:
        return kind == "number" and "." not in value
    if option_type == DOUBLE:
        return kind == "number" and "." in value
    if option_type == STRING:
        return kind == "string"
    if option_type == BOOL:
        return kind in ("TRUE", "FALSE")
    if option_type == DURATION:
        return kind == "duration"
    return False


def tick_errors(text: str, options: dict[str, str] | None = None) -> list[str]:
    """Problems in a TICKscript of the shape the generated examples use:

        dbrp "db"."rp"
        stream|batch ( |node(args) | @udf() | .property(args) )+

    Arguments are literals (optionally negated numbers or durations). With `options`
    (TICKscript option name -> declared type) the properties of the `@udf()` node must be
    declared options with values of the declared type; a flag takes no value."""
    try:
        toks = tokenize(text)
    except ValueError as exc:
        return [str(exc)]
    errors: list[str] = []
    i = 0

    def expect(kind: str, what: str) -> tuple[str, str, int] | None:
        nonlocal i
        if i < len(toks) and toks[i][0] == kind:
            i += 1
            return toks[i - 1]
        got = f"{toks[i][1]!r}" if i < len(toks) else "end of script"
        line = toks[i][2] if i < len(toks) else "end"
        errors.append(f"line {line}: expected {what}, got {got}")
        return None

    if i < len(toks) and toks[i][:2] == ("ident", "dbrp"):
        i += 1
        if not (expect("reference", '"database"') and expect("punct", ".")
                and expect("reference", '"retention policy"')):
            return errors
    else:
        errors.append("no dbrp statement")
    statements = 0
    while i < len(toks) and not errors:
        head = expect("ident", "stream or batch")
        if head is None:
            break
        if head[1] not in ("stream", "batch"):
            errors.append(f"line {head[2]}: a pipeline starts with stream or batch")
            break
        statements += 1
        in_udf = False
        first = True
        while i < len(toks) and toks[i][0] == "punct" and toks[i][1] in "|@." and not errors:
            op = toks[i][1]
            i += 1
            name = expect("ident", f"a name after {op!r}")
            if name is None:
                break
            if first and (op != "|" or name[1] != ("from" if head[1] == "stream" else "query")):
                errors.append(f"line {name[2]}: {head[1]} must be followed by "
                              f"|{'from' if head[1] == 'stream' else 'query'}()")
            first = False
            if op == "@":
                in_udf = True
            elif op == "|":
                in_udf = False
            if expect("punct", "(") is None:
                break
            args = []
            while i < len(toks) and toks[i][1] != ")":
                neg = toks[i][1] == "-" and toks[i][0] == "punct"
                if neg:
                    i += 1
                if i >= len(toks) or toks[i][0] not in _ARG_KINDS or (
                        neg and toks[i][0] not in ("number", "duration")):
                    got = toks[i][1] if i < len(toks) else "end of script"
                    errors.append(f"line {name[2]}: .{name[1]}(): {got!r} is not a literal")
                    break
                args.append(toks[i])
                i += 1
                if i < len(toks) and toks[i][1] == ",":
                    i += 1
                elif i < len(toks) and toks[i][1] != ")":
                    errors.append(f"line {toks[i][2]}: .{name[1]}(): expected ',' or ')' "
                                  f"after {args[-1][1]!r}, got {toks[i][1]!r}")
                    break
            if errors or expect("punct", ")") is None:
                break
            if op == "." and in_udf and options is not None:
                declared = options.get(name[1])
                if declared is None:
                    errors.append(f"line {name[2]}: the UDF has no option {name[1]!r}")
                elif declared == FLAG:
                    if args:
                        errors.append(f"line {name[2]}: .{name[1]}() is a flag, takes no value")
                elif len(args) != 1 or not _kind_for(declared, args[0][1], args[0][0]):
                    errors.append(f"line {name[2]}: .{name[1]}() takes one {declared.upper()}, "
                                  f"got {' '.join(a[1] for a in args) or 'nothing'}")
    if not statements and not errors:
        errors.append("no stream or batch pipeline")
    return errors


@pytest.mark.parametrize("name", registry.names())
def test_tick_script_is_valid_tickscript(name):
    cls = registry.get(name)
    options = {o.name: o.type for o in cls.all_options()}
    text = render.example_tick(cls)  # what the file holds when current (checked above)
    assert tick_errors(text, options) == []
    assert f"@{name}()" in text
    source = "|query(" if cls.wants == "batch" else "|from()"
    assert source in text


@pytest.mark.parametrize(("script", "problem"), [
    ('dbrp "db"."rp"\nstream\n    |from()\n    @u()\n        .size(1e-05)', "expected ',' or ')'"),
    ('dbrp "db"."rp"\nstream\n    |from()\n    @u()\n        .hold(1m30s)', "expected ',' or ')'"),
    ('dbrp "db"."rp"\nstream\n    |from()\n    @u()\n        .hold(500ns)', "expected ',' or ')'"),
    ('dbrp "db"."rp"\nstream\n    |from()\n    @u()\n        .field(\'x)', "cannot lex"),
    ('dbrp "db"."rp"\nstream\n    |from()\n    @u()\n        .field("x")', "takes one STRING"),
    ('dbrp "db"."rp"\nstream\n    |from()\n    @u()\n        .size(3.0)', "takes one INT"),
    ('dbrp "db"."rp"\nstream\n    |from()\n    @u()\n        .low(3)', "takes one DOUBLE"),
    ('dbrp "db"."rp"\nstream\n    |from()\n    @u()\n        .debug(TRUE)', "is a flag"),
    ('dbrp "db"."rp"\nstream\n    |from()\n    @u()\n        .sise(3)', "no option 'sise'"),
    ('dbrp "db"."rp"\nstream\n    |query(\'SELECT 1\')\n    @u()', "|from()"),
    ('dbrp "db"."rp"\nbatch\n    |from()', "|query()"),
    ('stream\n    |from()', "no dbrp"),
    ('dbrp "db"."rp"\nstream\n    |from()\n    @u()\n        .field(x)', "not a literal"),
    ('dbrp "db"."rp"\nstream\n    |from(\n', "expected ), got end of script"),
])
def test_tick_checker_catches_invalid_scripts(script, problem):
    options = {"size": INT, "low": DOUBLE, "hold": DURATION, "field": STRING, "debug": FLAG}
    errors = tick_errors(script, options)
    assert errors, script
    assert problem in errors[0]


def test_tick_checker_accepts_kapacitor_documented_forms():
    script = """// comment with 'quotes' and "references"
dbrp "telegraf"."autogen"

batch
    |query('''
        SELECT mean("value") FROM "telegraf"."autogen".cpu
    ''')
        .period(1m)
        .every(20s)
        .groupBy('cpu', 'host')
    @u()
        .size(10)
        .low(-2.5)
        .hold(1500ms)
        .field('it\\'s')
        .debug()
"""
    options = {"size": INT, "low": DOUBLE, "hold": DURATION, "field": STRING, "debug": FLAG}
    assert tick_errors(script, options) == []
