"""The one declaration a UDF writes, and everything derived from it.

A catalogue UDF is a subclass of `UDF` that states, once: its name, summary, description,
what it wants and provides, its options (`Option`), and its per-group state. From that the
framework derives the InfoResponse, init validation, the CLI's list/info/conf output, the
example TICKscript and the snapshot format.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from udfcollection.durations import format_duration, parse_duration

STREAM = "stream"
BATCH = "batch"

BOOL = "bool"
INT = "int"
DOUBLE = "double"
STRING = "string"
DURATION = "duration"
FLAG = "flag"  # zero value types in Info: `.debug()`
OPTION_TYPES = (BOOL, INT, DOUBLE, STRING, DURATION, FLAG)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default marker for an option the user must give."""

ON_ERROR_CHOICES = ("drop", "pass", "fail")

NumberKernel = tuple[str, str, Callable[[float, int, Any], float]]
"""(field, out_field, step) of `UDF.number_kernel`."""


@dataclass(frozen=True)
class Option:
    """One TICKscript property method of a UDF, e.g. `.field('value')`.

    `name` is the TICKscript name (not always a Python identifier: `as`); `attr` the attribute
    UDF code reads (default: the name in snake_case, `as` -> `as_`). Repeatable options collect
    every occurrence into a list. `check` returns an error text for a bad value, or None.
    """

    name: str
    type: str
    help: str
    default: Any = None
    required: bool = False
    repeatable: bool = False
    example: Any = None
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    attr: str = ""
    check: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        if self.type not in OPTION_TYPES:
            raise ValueError(f"option {self.name}: unknown type {self.type!r}")
        if not self.attr:
            object.__setattr__(self, "attr", python_attr(self.name))
        if self.type == FLAG and self.default is None:
            object.__setattr__(self, "default", False)

    @property
    def value_types(self) -> tuple[str, ...]:
        """Value types as Kapacitor's Info lists them (a flag takes none)."""
        return () if self.type == FLAG else (self.type,)

    def default_value(self) -> Any:
        if self.repeatable:
            if self.default is None:
                return []
            return list(self.default) if isinstance(self.default, list | tuple) else [self.default]
        return self.default

    def constraint_text(self) -> str:
        parts = []
        if self.choices:
            parts.append("one of " + ", ".join(tick_literal(c, self.type) for c in self.choices))
        if self.min is not None:
            parts.append(("> " if self.min_exclusive else ">= ") + fmt_number(self.min, self.type))
        if self.max is not None:
            parts.append("<= " + fmt_number(self.max, self.type))
        return ", ".join(parts)

    def validate_value(self, value: Any) -> str | None:
        """Error text for a value of the right type that breaks a constraint, else None."""
        if self.choices is not None and value not in self.choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return (f"option {self.name}: {tick_literal(value, self.type)} is not one of "
                    f"{', '.join(tick_literal(c, self.type) for c in self.choices)}{hint}")
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            op = ">" if self.min_exclusive else ">="
            return (f"option {self.name}: must be {op} {fmt_number(self.min, self.type)}, "
                    f"got {tick_literal(value, self.type)}")
        if self.max is not None and value > self.max:
            return (f"option {self.name}: must be <= {fmt_number(self.max, self.type)}, "
                    f"got {tick_literal(value, self.type)}")
        if self.check is not None:
            msg = self.check(value)
            if msg:
                return f"option {self.name}: {msg}"
        return None


def python_attr(name: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    import keyword

    return snake + "_" if keyword.iskeyword(snake) else snake


def fmt_number(v: float, type_: str) -> str:
    if type_ == DURATION:
        return format_duration(int(v))
    if type_ == INT:
        return str(int(v))
    return repr(float(v))


def tick_literal(value: Any, type_: str) -> str:
    """The TICKscript literal for a value: 'text', 10, 10.0, TRUE, 90s.

    Kapacitor's lexer reads a number as digits with at most one decimal point (no exponent:
    `1e-05` is not a number there), and a duration as one integer and one unit among u, ms, s,
    m, h, d, w (no `1m30s`, no `ns`), so doubles are written positionally and durations in the
    largest unit that divides them. NaN, infinities and sub-microsecond remainders have no
    TICKscript literal; they are written readably instead."""
    if type_ == STRING:
        return "'" + str(value).replace("'", "\\'") + "'"
    if type_ in (BOOL, FLAG):
        return "TRUE" if value else "FALSE"
    if type_ == DURATION:
        return tick_duration(int(value))
    if type_ == DOUBLE:
        return tick_double(float(value))
    return str(value)


_TICK_DURATION_UNITS = (("d", 86_400_000_000_000), ("h", 3_600_000_000_000),
                        ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000),
                        ("u", 1_000))


def tick_duration(ns: int) -> str:
    """A duration as one TICKscript duration token: `90s`, `1500ms`, `2h`."""
    if ns == 0:
        return "0s"
    sign, mag = ("-", -ns) if ns < 0 else ("", ns)
    for unit, size in _TICK_DURATION_UNITS:
        if mag % size == 0:
            return f"{sign}{mag // size}{unit}"
    return format_duration(ns)


def tick_double(v: float) -> str:
    """A double as a TICKscript number: always with a decimal point, never an exponent."""
    if v != v or v in (float("inf"), float("-inf")):
        return repr(v)
    text = repr(v)
    if "e" in text or "E" in text:
        from decimal import Decimal

        text = format(Decimal(text), "f")
    return text if "." in text else text + ".0"


# Options every UDF takes, in addition to its own.
COMMON_OPTIONS: tuple[Option, ...] = (
    Option("debug", FLAG, "Log this task's UDF at DEBUG level (also KAPUDF_LOG_LEVEL=debug)."),
    Option(
        "onError",
        STRING,
        "What to do with a point the UDF cannot process (missing or mistyped field, error in "
        "the UDF): 'drop' it, 'pass' it on unchanged, or 'fail' the task (the stock agent's "
        "behaviour). Every case is logged, rate-limited.",
        default="drop",
        choices=ON_ERROR_CHOICES,
        example="drop",
    ),
    Option(
        "maxGroups",
        INT,
        "Most groups whose state is kept; the least recently seen group is forgotten beyond "
        "this (Kapacitor never says a group is gone, so state would otherwise grow forever).",
        default=100_000,
        min=1,
        example=100000,
    ),
)


class Options:
    """Validated option values, read as attributes (`opts.field`, `opts.as_`)."""

    def __init__(self, values: dict[str, Any], given: Iterable[str] = ()):
        self.__dict__.update(values)
        self._given = frozenset(given)

    def given(self, tick_name: str) -> bool:
        """Whether the user set this option (by TICKscript name) rather than taking the default."""
        return tick_name in self._given

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class InitError(Exception):
    """Raised by a UDF's `setup` for a problem the user must fix (bad model path, ...). The text
    is sent to Kapacitor as the init error."""


class PointError(Exception):
    """Raised by UDF code for a point it cannot process (missing or mistyped field); handled by
    the task's onError policy. The text should name the field and what was expected."""


@dataclass
class UDFState:
    """Base for per-group state. Subclasses are dataclasses whose fields hold JSON-ready values
    (numbers, strings, bools, None, lists, dicts, deques). The framework snapshots them as JSON:
    override `to_json`/`from_json` for anything else."""

    def to_json(self) -> Any:
        out = {}
        for k, v in self.__dict__.items():
            out[k] = list(v) if isinstance(v, tuple | list) or type(v).__name__ == "deque" else v
        return out

    @classmethod
    def from_json(cls, data: Any) -> UDFState:
        fresh = cls()
        if not isinstance(data, dict):
            raise ValueError("group state is not an object")
        for k, v in data.items():
            if k not in fresh.__dict__:
                raise ValueError(f"unknown state field {k!r}")
            cur = fresh.__dict__[k]
            if type(cur).__name__ == "deque":
                v = type(cur)((tuple(x) if isinstance(x, list) else x) for x in v)
            setattr(fresh, k, v)
        return fresh


class UDF:
    """Base class of every catalogue UDF. Subclasses set the class attributes below and
    implement `process` (stream in) or `process_batch` (batch in)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    description: ClassVar[str] = ""
    wants: ClassVar[str] = STREAM
    provides: ClassVar[str] = STREAM
    options: ClassVar[Sequence[Option]] = ()
    State: ClassVar[type[UDFState] | None] = None
    state_version: ClassVar[int] = 1
    on_error_default: ClassVar[str] = "drop"
    on_error_help: ClassVar[str] = ""  # the UDF's own one-line help for onError, if it differs
    example_options: ClassVar[dict[str, Any]] = {}
    example_measurement: ClassVar[str] = "cpu"
    example_group_by: ClassVar[tuple[str, ...]] = ("host",)
    output_fields: ClassVar[Sequence[str]] = ()
    emits: ClassVar[str] = ""  # what the output is, completing "Emits ..." (README catalogue)
    heavy: ClassVar[bool] = False  # loads big libraries or a model at init

    def __init__(self, opts: Options, log):
        self.opts = opts
        self.log = log

    # --- declaration helpers ------------------------------------------------------------

    @classmethod
    def all_options(cls) -> tuple[Option, ...]:
        own = tuple(cls.options)
        names = {o.name for o in own}
        common = []
        for o in COMMON_OPTIONS:
            if o.name in names:
                continue
            if o.name == "onError" and (cls.on_error_default != o.default
                                        or cls.on_error_help):
                o = Option(o.name, o.type, cls.on_error_help or o.help,
                           default=cls.on_error_default, choices=o.choices,
                           example=cls.on_error_default)
            common.append(o)
        return own + tuple(common)

    @classmethod
    def validate(cls, opts: Options) -> list[str]:
        """Checks across options (e.g. exactly one of size or period). Errors name the options."""
        return []

    # --- lifecycle ----------------------------------------------------------------------

    def setup(self) -> None:
        """Called once after options are validated, before any data: load models here. Raise
        InitError with a message naming what is wrong."""

    def new_state(self) -> UDFState | None:
        return self.State() if self.State is not None else None

    def process(self, point, state):
        """Stream in: handle one point with its group's state; return None, a Point, or an
        iterable of Points. A UDF that defines only `process_many` gets this: the point is
        handled alone by `process_many` (an Exception it returns for the point is raised)."""
        if self.process_many is None:
            raise NotImplementedError(f"{type(self).__name__} defines no process()")
        out = self.process_many([point], [state])[0]
        if isinstance(out, Exception):
            raise out
        return out

    def number_kernel(self) -> NumberKernel | None:
        """Optional fast path, asked once after `setup`, for a UDF whose every output is its
        input point with one float as the only field, computed from one numeric field and the
        group's state (moving_avg). Return `(field, out_field, step)`: the framework then
        serves a point whose `field` is a finite double or int by calling
        `step(value: float, time_ns: int, state) -> float` and emitting the point with
        `out_field` as its only field, without building a `Point`. `step` may raise
        PointError. Every other point (field missing, mistyped, NaN, infinite) goes to
        `process`, which must report it, so `process` must give the same output as the kernel.
        None (the default): every point goes to `process`."""
        return None

    def column_inputs(self) -> Sequence[str] | None:
        """Optional, for a UDF with `process_many`, asked once after `setup`: the numeric
        fields it reads from every point with `udfcollection.ml.inputs.read_matrix`. The
        framework then reads them while it decodes each point and passes `process_many` a
        `udfcollection.columns.PointBlock` (a sequence of Points, made only when accessed)
        whose matrix `read_matrix` returns without another pass over the points. None (the
        default): `process_many` gets a list of Points."""
        return None

    process_many: ClassVar[Callable | None] = None
    """Optional vectorised stream handler `process_many(points, states) -> list`, one entry per
    input point (None, a Point, or a list of Points). When defined, all points already read are
    passed at once, in order."""

    def process_batch(self, batch, state):  # pragma: no cover - documented interface
        """Batch in: handle one whole batch; return the points of the output batch."""
        raise NotImplementedError


@dataclass
class ValidationResult:
    options: Options | None
    errors: list[str] = field(default_factory=list)


def close_match(name: str, candidates: Iterable[str]) -> str | None:
    lower = {c.lower(): c for c in candidates}
    if name.lower() in lower:
        return lower[name.lower()]
    m = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return m[0] if m else None


def coerce_typed(option: Option, value: Any, value_type: str) -> tuple[Any, str | None]:
    """Check one value sent with Kapacitor type `value_type` against the option's type. Returns
    (python value, error or None). The error explains the TICKscript literal to use."""
    expected = option.type
    if value_type == expected:
        return value, None
    hint = {
        INT: "an INT literal such as 10",
        DOUBLE: "a DOUBLE literal such as 10.0 (with a decimal point)",
        STRING: "a string literal in single quotes such as 'value'",
        BOOL: "TRUE or FALSE",
        DURATION: "a duration literal such as 10s or 5m",
    }.get(expected, expected)
    return None, (f"option {option.name}: expected {expected.upper()}, got "
                  f"{value_type.upper()} (write {hint})")


def validate_options(
    udf_cls: type[UDF], given: Sequence[tuple[str, Sequence[tuple[str, Any]]]]
) -> ValidationResult:
    """Validate options as sent by Kapacitor: a list of (name, [(value_type, value), ...]).

    Reports every error at once: unknown option (listing valid ones and a close match), wrong
    number of values, wrong type, repeated non-repeatable option, missing required, out of
    range, and the UDF's own cross-option checks.
    """
    decl = {o.name: o for o in udf_cls.all_options()}
    errors: list[str] = []
    values: dict[str, Any] = {}
    seen: set[str] = set()
    for name, vals in given:
        opt = decl.get(name)
        if opt is None:
            match = close_match(name, decl)
            hint = f" (did you mean {match}?)" if match else ""
            errors.append(f"unknown option {name}{hint}; valid options: {', '.join(decl)}")
            continue
        if name in seen and not opt.repeatable:
            errors.append(f"option {name}: given more than once but takes a single value")
            continue
        seen.add(name)
        want_n = len(opt.value_types)
        if len(vals) != want_n:
            if want_n == 0:
                errors.append(f"option {name}: is a flag and takes no value, write .{name}()")
            else:
                errors.append(f"option {name}: takes exactly one value, got {len(vals)}")
            continue
        if opt.type == FLAG:
            values[opt.attr] = True
            continue
        vtype, raw = vals[0]
        value, err = coerce_typed(opt, raw, vtype)
        if err:
            errors.append(err)
            continue
        err = opt.validate_value(value)
        if err:
            errors.append(err)
            continue
        if opt.repeatable:
            values.setdefault(opt.attr, []).append(value)
        else:
            values[opt.attr] = value
    for opt in decl.values():
        if opt.attr in values or opt.name in seen:
            continue
        if opt.required:
            ex = f", e.g. .{opt.name}({tick_literal(opt.example, opt.type)})" if (
                opt.example is not None) else ""
            errors.append(f"missing required option {opt.name} ({opt.help.rstrip('.')}{ex})")
        else:
            values[opt.attr] = opt.default_value()
    if errors:
        return ValidationResult(None, errors)
    opts = Options(values, seen)
    errors.extend(udf_cls.validate(opts))
    if errors:
        return ValidationResult(None, errors)
    return ValidationResult(opts, [])


def parse_cli_option(opt: Option, text: str) -> tuple[str, Any]:
    """Parse `-o name=value` text into (value_type, value) by the option's declared type.

    Accepts the TICKscript literals as well as plain text: `'x'` or `x` for strings, TRUE/false
    for bools, `10s` for durations. Raises ValueError with a message naming the option.
    """
    t = opt.type
    s = text.strip()
    try:
        if t == FLAG:
            if s.lower() in ("", "true"):
                return FLAG, True
            raise ValueError("is a flag and takes no value")
        if t == STRING:
            if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
                s = s[1:-1]
            return STRING, s
        if t == BOOL:
            if s.lower() in ("true", "1", "yes"):
                return BOOL, True
            if s.lower() in ("false", "0", "no"):
                return BOOL, False
            raise ValueError("expected TRUE or FALSE")
        if t == INT:
            if re.fullmatch(r"[+-]?\d+", s):
                return INT, int(s)
            raise ValueError(f"expected an INT such as 10, got {s!r}"
                             + (" (drop the decimal point)" if re.fullmatch(r"[+-]?\d+\.0*", s)
                                else ""))
        if t == DOUBLE:
            return DOUBLE, float(s)
        if t == DURATION:
            return DURATION, parse_duration(s)
    except ValueError as exc:
        raise ValueError(f"option {opt.name}: {exc}") from None
    raise ValueError(f"option {opt.name}: unsupported type {t}")  # pragma: no cover
