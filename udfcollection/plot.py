"""`kapudf test --plot FILE.png`: a picture of one offline run.

Generic picture, one panel per group (and watched field): the input field over time (numbers as
a line, strings and bools as a labelled step line), the points the UDF emitted marked on it, the
anomalous ones (an output field such as `anomaly_status`, `outlier` or the UDF's `as` field above
zero) in red, and numeric fields the UDF added whose values live on the input's scale (a moving
average) drawn as a line. When the UDF emits (nearly) every point, only anomalies are marked.

Wind-turbine picture (output fields `expected_power`, `power_error`, `anomaly_status` and options
`speedField`/`powerField`): power against wind speed, coloured by anomaly level, with the model's
expected-power curve, and beside it power over time with the anomalies marked.

matplotlib is an optional extra (`pip install 'udfcollection[plot]'`), imported only here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from udfcollection.lineprotocol import LPPoint
from udfcollection.offline import group_id

MAX_PANELS = 6
ANOMALY_FIELDS = ("anomaly_status", "outlier", "anomaly", "is_anomaly")
WIND_FIELDS = ("expected_power", "power_error", "anomaly_status")
LEVEL_NAMES = {0.3: "LOW", 0.6: "MEDIUM", 1.0: "HIGH"}
LEVEL_COLOURS = {0.3: "#f2c500", 0.6: "#f07f09", 1.0: "#d62728"}
OTHER_LEVEL_COLOURS = ("#7b1fa2", "#1b5e20", "#795548", "#e377c2")
INPUT_COLOUR = "#1f77b4"
EMIT_COLOUR = "#ff7f0e"
ANOMALY_COLOUR = "#d62728"
EXTRA_COLOURS = ("#2ca02c", "#9467bd", "#8c564b")
SERIES_COLOURS = ("#1f77b4", "#17becf", "#7f7f7f", "#bcbd22", "#8c564b", "#e377c2", "#9467bd",
                  "#2ca02c")
MAX_SERIES_LINES = 8


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise PlotUnavailable with the install command when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib, an optional extra: "
                              "pip install 'udfcollection[plot]'") from None


@dataclass
class RunInfo:
    """What the picture is of: the UDF, its resolved options (TICKscript name -> value, defaults
    filled in), the grouping, a label for the input and the TICKscript call for the title."""

    udf: str
    options: Mapping[str, Any]
    output_fields: Sequence[str]
    group_by: Sequence[str]
    source: str
    call: str = ""  # the TICKscript node, e.g. @edge_detect().field('value')


def plot_run(path: str, run: RunInfo, inputs: Sequence[LPPoint],
             outputs: Sequence[LPPoint]) -> str:
    """Draw the run into `path` (format from its extension, PNG usually). Returns which picture
    was drawn: 'wind' or 'series'."""
    require_matplotlib()
    import logging

    import matplotlib

    # Its font-cache notice is not news about the run.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg", force=False)
    if _is_wind(run, outputs):
        fig = _wind_figure(run, inputs, outputs)
        kind = "wind"
    else:
        fig = _series_figure(run, inputs, outputs)
        kind = "series"
    fig.savefig(path, dpi=110)
    return kind


# --- shared helpers ---------------------------------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _times(ns: Sequence[int]):
    import numpy as np

    return np.array(ns, dtype="datetime64[ns]")


def _by_group(points: Sequence[LPPoint], group_by: Sequence[str]) -> dict[str, list[LPPoint]]:
    out: dict[str, list[LPPoint]] = {}
    for p in points:
        out.setdefault(group_id(p.tags, group_by), []).append(p)
    return out


def _group_label(gid: str) -> str:
    return gid or "all points (no groupBy)"


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _title(run: RunInfo, n_in: int, n_out: int) -> str:
    import textwrap

    head = (f"{run.udf} on {run.source}: {n_in:,} points in, {n_out:,} out"
            + (f", grouped by {', '.join(run.group_by)}" if run.group_by else ""))
    call = "\n".join(textwrap.wrap(run.call, 130)) if run.call else ""
    return head + ("\n" + call if call else "")


def _short_value(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_short_value(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _anomaly_fields(run: RunInfo, outputs: Sequence[LPPoint]) -> list[str]:
    names = list(ANOMALY_FIELDS)
    as_name = run.options.get("as")
    if isinstance(as_name, str) and as_name and any(f in ANOMALY_FIELDS
                                                    for f in run.output_fields):
        names.append(as_name)
    seen = set()
    for p in outputs[:1000]:
        seen.update(p.fields)
    return [n for n in names if n in seen]


def _is_anomalous(p: LPPoint, fields: Sequence[str]) -> bool:
    for f in fields:
        v = p.fields.get(f)
        if v is True or (_is_number(v) and v > 0):
            return True
    return False


def _watched_fields(run: RunInfo, inputs: Sequence[LPPoint]) -> list[str]:
    present: dict[str, None] = {}
    for p in inputs[:1000]:
        present.update(dict.fromkeys(p.fields))
    named: list[str] = []
    for value in run.options.values():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v in present and v not in named:
                named.append(v)
    if named:
        return named[:4]
    numeric = [f for f in present if any(_is_number(p.fields.get(f)) for p in inputs[:100])]
    return (numeric or list(present))[:4]


# --- generic picture --------------------------------------------------------------------------

def _series_figure(run: RunInfo, inputs: Sequence[LPPoint], outputs: Sequence[LPPoint]):
    from matplotlib.figure import Figure

    groups_in = _by_group(inputs, run.group_by)
    groups_out = _by_group(outputs, run.group_by)
    fields = _watched_fields(run, inputs)
    anomaly = _anomaly_fields(run, outputs)
    panels = [(g, f) for g in groups_in for f in fields]
    shown = panels[:MAX_PANELS]
    fig = Figure(figsize=(11, 1.0 + 2.6 * max(1, len(shown))), layout="constrained")
    axes = fig.subplots(max(1, len(shown)), 1, sharex=True, squeeze=False)[:, 0]
    title = _title(run, len(inputs), len(outputs))
    if len(panels) > len(shown):
        title += f"\n(first {len(shown)} of {len(panels)} group/field panels shown)"
    fig.suptitle(title, fontsize=10)
    for ax, (gid, fname) in zip(axes, shown, strict=False):
        _series_panel(ax, fname, groups_in[gid], groups_out.get(gid, []), anomaly)
        ax.set_title(f"{fname} - {_group_label(gid)}", fontsize=9, loc="left")
    if not shown:
        axes[0].text(0.5, 0.5, "no input points", ha="center", va="center",
                     transform=axes[0].transAxes)
    axes[-1].set_xlabel("time (UTC)", fontsize=8)
    return fig


def _series_panel(ax, fname: str, pin: list[LPPoint], pout: list[LPPoint],
                  anomaly: list[str]) -> None:
    rows = [(p.time, p.fields[fname], _series_key(p)) for p in pin if fname in p.fields]
    if not rows:
        ax.text(0.5, 0.5, f"no {fname!r} values in this group", ha="center", va="center",
                transform=ax.transAxes)
        return
    numeric = all(_is_number(v) for _, v, _ in rows)
    levels: dict[Any, int] = {}
    if numeric:
        def y(v: Any) -> float:
            return float(v)
    else:
        for _, v, _ in rows:
            levels.setdefault(v, len(levels))

        def y(v: Any) -> float:
            return float(levels.get(v, math.nan))
    # One line per series: an ungrouped run mixing hosts must not zig-zag between them.
    series: dict[str, list[tuple[int, float]]] = {}
    for t, v, key in rows:
        series.setdefault(key, []).append((t, y(v)))
    many = len(series) > MAX_SERIES_LINES
    for i, (key, pts) in enumerate(series.items()):
        colour = INPUT_COLOUR if len(series) == 1 else SERIES_COLOURS[i % len(SERIES_COLOURS)]
        label = f"{fname} (input)" if len(series) == 1 else f"{fname} {key}"
        if many:
            label = f"{fname} (input, {len(series)} series)" if i == 0 else None
        xs = _times([t for t, _ in pts])
        ys = [v for _, v in pts]
        if many:
            ax.plot(xs, ys, ".", color=INPUT_COLOUR, ms=2, label=label, zorder=2)
        elif numeric:
            gt, gy = _break_gaps([t for t, _ in pts], ys)
            ax.plot(_times(gt), gy, color=colour, lw=1.0, label=label, zorder=2)
            if len(rows) <= 400:
                ax.plot(xs, ys, "o", color=colour, ms=2.5, zorder=2)
        else:
            ax.step(xs, ys, where="post", color=colour, lw=1.2, label=label, zorder=2)
            ax.plot(xs, ys, "o", color=colour, ms=3, zorder=2)
    if not numeric:
        ax.set_yticks(range(len(levels)))
        ax.set_yticklabels([str(k) for k in levels])
        ax.set_ylim(-0.6, len(levels) - 0.4)
    y_in = [y(v) for _, v, _ in rows]
    at = {(key, t): y(v) for t, v, key in rows}
    at_time = {t: y(v) for t, v, _ in rows}

    def out_y(p: LPPoint) -> float:
        if fname in p.fields and (not numeric or _is_number(p.fields[fname])):
            return y(p.fields[fname])
        return at.get((_series_key(p), p.time), at_time.get(p.time, math.nan))

    every_point = len(pout) >= 0.9 * len(pin)
    bad = [p for p in pout if _is_anomalous(p, anomaly)]
    if not every_point:
        ok = [p for p in pout if not _is_anomalous(p, anomaly)]
        if ok:
            ax.plot(_times([p.time for p in ok]), [out_y(p) for p in ok], "o", mfc="none",
                    mec=EMIT_COLOUR, mew=1.6, ms=9, label="emitted by the UDF", zorder=3)
    if bad:
        ax.plot(_times([p.time for p in bad]), [out_y(p) for p in bad], "o",
                color=ANOMALY_COLOUR, ms=6, label="anomalous (emitted)", zorder=4)
    if numeric:
        lo, hi = min(y_in), max(y_in)
        span = (hi - lo) or abs(hi) or 1.0
        extra = [f for f in _output_only_numeric(pout, pin) if f not in anomaly]
        k = 0
        for f in extra:
            vals = [(p.time, float(p.fields[f])) for p in pout if _is_number(p.fields.get(f))]
            if not vals:
                continue
            mid = sorted(v for _, v in vals)[len(vals) // 2]
            if not (lo - 0.5 * span <= mid <= hi + 0.5 * span):
                continue  # another scale (a duration, a count): would flatten the input line
            ax.plot(_times([t for t, _ in vals]), [v for _, v in vals], "-",
                    color=EXTRA_COLOURS[k % len(EXTRA_COLOURS)], lw=1.6,
                    label=f"{f} (output)", zorder=3)
            k += 1
    _date_axis(ax)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if (every_point and not bad) or not pout:
        labels.append(f"{len(pout)} of {len(pin)} points emitted")
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], ls="none"))
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0),
              borderaxespad=0)


def _break_gaps(ts: list[int], ys: list[float]) -> tuple[list[int], list[float]]:
    """Insert a NaN where the time step is over 5 times the median step, so a line does not
    draw a straight ramp across missing data."""
    if len(ts) < 3:
        return ts, ys
    steps = sorted(b - a for a, b in pairwise(ts) if b > a)
    if not steps:
        return ts, ys
    limit = 5 * steps[len(steps) // 2]
    out_t, out_y = [ts[0]], [ys[0]]
    for i in range(1, len(ts)):
        if ts[i] - ts[i - 1] > limit:
            out_t.append((ts[i] + ts[i - 1]) // 2)
            out_y.append(math.nan)
        out_t.append(ts[i])
        out_y.append(ys[i])
    return out_t, out_y


def _series_key(p: LPPoint) -> str:
    tags = ",".join(f"{k}={p.tags[k]}" for k in sorted(p.tags))
    return f"{p.name},{tags}" if tags else p.name


def _output_only_numeric(pout: list[LPPoint], pin: list[LPPoint]) -> list[str]:
    in_fields: set[str] = set()
    for p in pin[:1000]:
        in_fields.update(p.fields)
    out: dict[str, None] = {}
    for p in pout[:1000]:
        for k, v in p.fields.items():
            if k not in in_fields and _is_number(v):
                out[k] = None
    return list(out)


# --- wind turbine -----------------------------------------------------------------------------

def _is_wind(run: RunInfo, outputs: Sequence[LPPoint]) -> bool:
    if "speedField" not in run.options or "powerField" not in run.options:
        return False
    return any(all(f in p.fields for f in WIND_FIELDS) for p in outputs[:100])


def _level_colour(v: float, levels: list[float]) -> str:
    """Fixed colours for wind_turbine's LOW/MEDIUM/HIGH, whichever of them occur; others in
    turn."""
    for k, colour in LEVEL_COLOURS.items():
        if abs(v - k) < 1e-9:
            return colour
    others = [x for x in levels if all(abs(x - k) >= 1e-9 for k in LEVEL_COLOURS)]
    return OTHER_LEVEL_COLOURS[others.index(v) % len(OTHER_LEVEL_COLOURS)]


def _level_name(v: float) -> str:
    for k, name in LEVEL_NAMES.items():
        if abs(v - k) < 1e-9:
            return f"{name} ({v:g})"
    return f"level {v:g}"


def _wind_figure(run: RunInfo, inputs: Sequence[LPPoint], outputs: Sequence[LPPoint]):
    from matplotlib.figure import Figure

    speed_f = str(run.options["speedField"])
    power_f = str(run.options["powerField"])
    groups_out = _by_group(outputs, run.group_by)
    groups_in = _by_group(inputs, run.group_by)
    gids = list(groups_out)[:MAX_PANELS] or [""]
    fig = Figure(figsize=(13, 0.9 + 4.2 * len(gids)), layout="constrained")
    axes = fig.subplots(len(gids), 2, squeeze=False, width_ratios=(1, 1.35))
    title = _title(run, len(inputs), len(outputs))
    if len(groups_out) > len(gids):
        title += f"\n(first {len(gids)} of {len(groups_out)} groups shown)"
    fig.suptitle(title, fontsize=10)
    for row, gid in zip(axes, gids, strict=True):
        _wind_panels(row[0], row[1], gid, speed_f, power_f, groups_in.get(gid, []),
                     groups_out.get(gid, []))
    return fig


def _wind_panels(ax_curve, ax_time, gid: str, speed_f: str, power_f: str,
                 pin: list[LPPoint], pout: list[LPPoint]) -> None:
    by_time = {p.time: p for p in pin}

    def value(p: LPPoint, f: str) -> float:
        v = p.fields.get(f)
        if not _is_number(v):
            src = by_time.get(p.time)
            v = src.fields.get(f) if src is not None else None
        return float(v) if _is_number(v) else math.nan

    rows = []
    for p in pout:
        status = p.fields.get("anomaly_status", 0.0)
        expected = p.fields.get("expected_power", 0.0)
        error = p.fields.get("power_error", 0.0)
        evaluated = not (status == 0 and expected == 0 and error == 0)
        rows.append((p.time, value(p, speed_f), value(p, power_f), float(status),
                     float(expected), evaluated))
    normal = [r for r in rows if r[5] and r[3] <= 0]
    skipped = [r for r in rows if not r[5]]
    levels = sorted({r[3] for r in rows if r[3] > 0})

    ax_curve.scatter([r[1] for r in skipped], [r[2] for r in skipped], s=4, c="#bdbdbd",
                     label=f"not evaluated ({len(skipped):,})", zorder=1, linewidths=0)
    ax_curve.scatter([r[1] for r in normal], [r[2] for r in normal], s=4, c=INPUT_COLOUR,
                     alpha=0.35, label=f"normal ({len(normal):,})", zorder=2, linewidths=0)
    for i, lv in enumerate(levels):
        sel = [r for r in rows if r[3] == lv]
        ax_curve.scatter([r[1] for r in sel], [r[2] for r in sel], s=16,
                         c=_level_colour(lv, levels), edgecolors="black",
                         linewidths=0.3, label=f"{_level_name(lv)} ({len(sel):,})",
                         zorder=3 + i)
    curve = sorted((r[1], r[4]) for r in rows if r[5] and not math.isnan(r[1]))
    if curve:
        ax_curve.plot([c[0] for c in curve], [c[1] for c in curve], "-", color="black", lw=1.4,
                      label="model: expected power", zorder=10)
    ax_curve.set_xlabel(f"wind speed: {speed_f}")
    ax_curve.set_ylabel(f"power: {power_f}")
    ax_curve.set_title(f"power vs wind speed - {_group_label(gid)}", fontsize=9, loc="left")
    ax_curve.grid(True, alpha=0.3)
    ax_curve.legend(fontsize=8, loc="upper left", markerscale=2)

    rows.sort(key=lambda r: r[0])
    dense = len(rows) > 2000
    gt, gy = _break_gaps([r[0] for r in rows], [r[2] for r in rows])
    ax_time.plot(_times(gt), gy, "-", color=INPUT_COLOUR,
                 lw=0.3 if dense else 0.8, alpha=0.35 if dense else 0.8, label=f"{power_f}")
    for lv in levels:
        sel = [r for r in rows if r[3] == lv]
        ax_time.plot(_times([r[0] for r in sel]), [r[2] for r in sel], "o",
                     color=_level_colour(lv, levels), mec="black", mew=0.3, ms=4,
                     label=_level_name(lv))
    ax_time.set_ylabel(f"power: {power_f}")
    ax_time.set_xlabel("time (UTC)", fontsize=8)
    ax_time.set_title(f"power over time, anomalies marked - {_group_label(gid)}", fontsize=9,
                      loc="left")
    _date_axis(ax_time)
    ax_time.grid(True, alpha=0.3)
    ax_time.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0)
