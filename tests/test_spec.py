"""Option validation from the one declaration: every kind of error, reported all at once, each
naming the option; CLI value parsing; TICKscript literals."""

from __future__ import annotations

from typing import ClassVar

import pytest
from kapudf_test_udfs import Counter

from udfcollection.spec import (
    DOUBLE,
    FLAG,
    INT,
    STRING,
    UDF,
    Option,
    parse_cli_option,
    python_attr,
    tick_literal,
    validate_options,
)

GOOD = [("field", [("string", "value")])]


def errors(given):
    result = validate_options(Counter, given)
    assert result.options is None, "expected validation to fail"
    return result.errors


def test_good_options_and_defaults():
    r = validate_options(Counter, [*GOOD, ("every", [("int", 3)]), ("tag", [("string", "a")]),
                                   ("tag", [("string", "b")]), ("debug", [])])
    assert r.errors == []
    o = r.options
    assert o.field == "value" and o.every == 3
    assert o.tag == ["a", "b"]  # repeatable options collect every occurrence
    assert o.scale == 1.0 and o.window == 0 and o.label == "plain" and o.chatty is False
    assert o.debug is True and o.on_error == "drop" and o.max_groups == 100_000
    assert o.given("every") and not o.given("scale")


def test_repeatable_option_defaults_to_empty_list():
    assert validate_options(Counter, GOOD).options.tag == []


def test_unknown_option_with_close_match_lists_valid_ones():
    (err,) = errors([*GOOD, ("evry", [("int", 2)])])
    assert "unknown option evry" in err
    assert "did you mean every?" in err
    for name in ("field", "every", "scale", "window", "label", "debug", "onError", "maxGroups"):
        assert name in err


def test_unknown_option_case_slip_is_matched():
    (err,) = errors([*GOOD, ("Every", [("int", 2)])])
    assert "did you mean every?" in err


def test_unknown_option_without_close_match_has_no_guess():
    (err,) = errors([*GOOD, ("zzzzzz", [("int", 2)])])
    assert "unknown option zzzzzz" in err and "did you mean" not in err


def test_missing_required_option_names_it_with_an_example():
    (err,) = errors([])
    assert "missing required option field" in err
    assert ".field('value')" in err


@pytest.mark.parametrize(("name", "sent", "hint"), [
    ("scale", ("int", 2), "DOUBLE literal such as 10.0"),       # .scale(2) instead of 2.0
    ("every", ("double", 2.0), "INT literal such as 10"),         # .every(2.0)
    ("field", ("int", 1), "string literal in single quotes"),
    ("chatty", ("string", "yes"), "TRUE or FALSE"),
    ("window", ("int", 5), "duration literal such as 10s"),
])
def test_wrong_type_names_option_and_tickscript_literal(name, sent, hint):
    given = [x for x in GOOD if x[0] != name] + [(name, [sent])]
    if name == "field":
        given = [(name, [sent])]
    (err,) = errors(given)
    assert err.startswith(f"option {name}: expected ")
    assert f"got {sent[0].upper()}" in err
    assert hint in err


def test_repeated_single_value_option():
    (err,) = errors([*GOOD, ("every", [("int", 2)]), ("every", [("int", 3)])])
    assert err == "option every: given more than once but takes a single value"


@pytest.mark.parametrize(("name", "sent", "words"), [
    ("every", ("int", 0), "option every: must be >= 1, got 0"),
    ("scale", ("double", 0.0), "option scale: must be > 0.0, got 0.0"),  # exclusive minimum
    ("window", ("duration", -1_000_000_000), "option window: must be >= 0s"),
    ("label", ("string", "fancyy"), "is not one of 'plain', 'fancy' (did you mean 'fancy'?)"),
    ("onError", ("string", "ignore"), "option onError: 'ignore' is not one of"),
    ("maxGroups", ("int", 0), "option maxGroups: must be >= 1"),
])
def test_out_of_range(name, sent, words):
    (err,) = errors([*GOOD, (name, [sent])])
    assert words in err


def test_flag_with_value_and_option_with_no_value():
    errs = errors([*GOOD, ("debug", [("bool", True)]), ("every", [])])
    assert "option debug: is a flag and takes no value, write .debug()" in errs
    assert "option every: takes exactly one value, got 0" in errs


def test_every_error_reported_at_once():
    errs = errors([("evry", [("int", 2)]), ("scale", [("int", 2)]), ("every", [("int", 0)]),
                   ("label", [("string", "x")]), ("debug", [("string", "on")])])
    joined = " | ".join(errs)
    assert len(errs) == 6
    for name in ("evry", "scale", "every", "label", "debug", "field"):
        assert name in joined


class Pair(UDF):
    name = "pair"
    summary = "s"
    options = (Option("size", INT, "h", example=3), Option("period", DOUBLE, "h", example=1.0))

    @classmethod
    def validate(cls, opts):
        if (opts.size is None) == (opts.period is None):
            return ["exactly one of size or period is required"]
        return []


def test_cross_option_check_runs_after_per_option_checks():
    assert validate_options(Pair, []).errors == ["exactly one of size or period is required"]
    assert validate_options(Pair, [("size", [("int", 2)])]).errors == []
    # A per-option error is reported without running the cross check on half-valid options.
    assert validate_options(Pair, [("size", [("double", 2.0)])]).errors == [
        "option size: expected INT, got DOUBLE (write an INT literal such as 10)"]


def test_on_error_default_follows_the_udf():
    class Passing(Pair):
        on_error_default = "pass"
        options: ClassVar = ()

        @classmethod
        def validate(cls, opts):
            return []

    assert validate_options(Passing, []).options.on_error == "pass"


def test_unknown_option_type_is_rejected_at_declaration():
    with pytest.raises(ValueError, match="unknown type"):
        Option("x", "float", "h")


@pytest.mark.parametrize(("name", "attr"), [
    ("as", "as_"), ("emitFirst", "emit_first"), ("maxGroups", "max_groups"), ("field", "field"),
    ("previousAs", "previous_as"),
])
def test_python_attribute_names(name, attr):
    assert python_attr(name) == attr


OPTS = {o.name: o for o in Counter.all_options()}


@pytest.mark.parametrize(("name", "text", "parsed"), [
    ("field", "value", ("string", "value")),
    ("field", "'quoted'", ("string", "quoted")),
    ("every", "10", ("int", 10)),
    ("every", "-3", ("int", -3)),
    ("scale", "2", ("double", 2.0)),
    ("scale", "1e-3", ("double", 0.001)),
    ("chatty", "TRUE", ("bool", True)),
    ("chatty", "false", ("bool", False)),
    ("window", "1m30s", ("duration", 90_000_000_000)),
    ("window", "500ms", ("duration", 500_000_000)),
    ("debug", "", (FLAG, True)),
])
def test_parse_cli_option(name, text, parsed):
    assert parse_cli_option(OPTS[name], text) == parsed


@pytest.mark.parametrize(("name", "text", "words"), [
    ("every", "10.0", "option every: expected an INT such as 10, got '10.0' (drop the decimal"),
    ("every", "ten", "option every: expected an INT"),
    ("chatty", "maybe", "option chatty: expected TRUE or FALSE"),
    ("window", "10 parsecs", "option window: not a duration"),
    ("scale", "abc", "option scale:"),
    ("debug", "yes", "option debug: is a flag"),
])
def test_parse_cli_option_errors_name_the_option(name, text, words):
    with pytest.raises(ValueError) as info:
        parse_cli_option(OPTS[name], text)
    assert words in str(info.value)


@pytest.mark.parametrize(("value", "type_", "literal"), [
    ("it's", STRING, "'it\\'s'"), (True, "bool", "TRUE"), (False, FLAG, "FALSE"),
    (10, INT, "10"), (10.0, DOUBLE, "10.0"), (0.25, DOUBLE, "0.25"),
    # Kapacitor's lexer reads one integer and one unit per duration token and no exponent in
    # numbers: `1m30s` and `1e-05` are not TICKscript literals.
    (90_000_000_000, "duration", "90s"), (0, "duration", "0s"), (1e-05, DOUBLE, "0.00001"),
    (1_500_000, "duration", "1500u"), (3_600_000_000_000, "duration", "1h"),
])
def test_tick_literal(value, type_, literal):
    assert tick_literal(value, type_) == literal
