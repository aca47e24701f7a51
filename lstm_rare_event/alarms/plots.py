"""Figures written as PNG files.

Matplotlib is imported inside each function, and only its Agg canvas is used (never pyplot),
so importing this module is free and plotting works without a display and without touching
any global backend state. Each function saves its figure and also returns it (callers may
ignore it; tests measure its text).

Text that can come from user data (titles built from run directory names, detector names,
fold labels) is never parsed as mathtext or TeX: a name such as ``run$\\foo$`` would make
matplotlib fail while drawing.

Why one module of about 600 lines: every figure shares the same axis, legend and text helpers
(the first third of the file), so that all figures look alike and none parses user text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

# Keyword arguments for every text call that may carry user data: plain text, drawn as is.
_PLAIN = {"parse_math": False, "usetex": False}

# How many breaks the timeline can annotate with their lead time before the notes overlap.
MAX_ANNOTATED_BREAKS = 15
# How many boundaries the timeline can name on the plot (beyond that: the legend only).
MAX_NAMED_BOUNDARIES = 12


# Shared helpers.


def _figure(width: float = 7, height: float = 4, layout: str | None = None) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _plain_legend(legend):
    """Make a legend's labels plain text (they may carry user data, e.g. detector names)."""
    if legend is not None:
        for text in legend.get_texts():
            text.set_parse_math(False)
            text.set_usetex(False)
    return legend


def _legend(ax, **kwargs):
    return _plain_legend(ax.legend(**kwargs))


def _legend_below(fig, ax_list, max_cols: int = 4):
    """One legend for ``ax_list`` under the axes (needs the constrained layout): it never hides data."""
    handles, labels = [], []
    for ax in ax_list:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    if not handles:
        return None
    ncols = min(len(handles), max_cols)
    while True:
        legend = _plain_legend(fig.legend(handles, labels, loc="outside lower center", ncols=ncols,
                                          fontsize="small", frameon=False))
        if ncols == 1:
            return legend
        # Fewer columns while the legend is wider than the figure.
        if legend.get_window_extent(fig.canvas.get_renderer()).width <= fig.bbox.width * 0.98:
            return legend
        legend.remove()
        ncols -= 1


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def _log_scale_if_positive(values) -> str:
    # Reconstruction errors span orders of magnitude; a log axis needs them all above 0.
    values = np.asarray(values, dtype=float)
    return "log" if values.size and np.all(values > 0) else "linear"


def _short_number(value, _pos=None) -> str:
    """Short tick text: 0.002, 0.5, 30, 2e+04 -> '2e4', 1e-05 -> '1e-5'."""
    if value == 0:
        return "0"
    text = f"{value:.3g}"
    return text.replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")


def _tidy_log_ticks(axis, values) -> None:
    """Few, short major labels on a log axis and unlabelled minor ticks.

    Matplotlib's default labels minor ticks as well when the data span less than about a
    decade (2x10^-2, 3x10^-2, ...), and those labels overlap.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    positive = _finite(values)
    positive = positive[positive > 0]
    decades = float(np.log10(positive.max() / positive.min())) if positive.size else 0.0
    if decades < 0.5:  # hardly any of the 1-2-3-5 steps fall inside: evenly spaced round values
        axis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
    else:
        subs = (1.0, 2.0, 3.0, 5.0) if decades < 1.6 else (1.0, 3.0) if decades < 3 else (1.0,)
        axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=7))
    axis.set_major_formatter(FuncFormatter(_short_number))
    axis.set_minor_locator(LogLocator(base=10, subs="auto", numticks=12))
    axis.set_minor_formatter(NullFormatter())


def _count_scale(axis, values, reference: float | None = None) -> None:
    """Scale for counts per day, which span orders of magnitude but often reach 0: log when all
    are positive, symmetric log (linear below the smallest positive value or the reference,
    rounded down to a power of ten) when some are 0, else linear."""
    from matplotlib.ticker import FuncFormatter

    values = _finite(values)
    positive = values[values > 0]
    set_scale = axis.axes.set_xscale if axis is axis.axes.xaxis else axis.axes.set_yscale
    if values.size and positive.size == values.size:
        set_scale("log")
        _tidy_log_ticks(axis, np.append(values, [reference] if reference and reference > 0 else []))
    elif positive.size and positive.max() / positive.min() > 20 and np.all(values >= 0):
        floor = positive.min() if not (reference and reference > 0) else min(positive.min(), reference)
        set_scale("symlog", linthresh=10.0 ** np.floor(np.log10(floor)), linscale=0.5)
        axis.set_major_formatter(FuncFormatter(_short_number))
        if axis is axis.axes.xaxis:
            axis.axes.set_xlim(left=0)  # no empty negative side
    else:
        set_scale("linear")


def _declutter_xticks(fig, ax) -> None:
    """Rotate, then thin, the x tick labels until no two visible ones overlap."""
    labels = ax.get_xticklabels()
    if len(labels) < 2:
        return
    for step in ("rotate", "thin"):
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        shown = [label for label in ax.get_xticklabels() if label.get_visible() and label.get_text()]
        boxes = [label.get_window_extent(renderer) for label in shown]
        if not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:])):
            return
        if step == "rotate":
            for label in ax.get_xticklabels():
                label.set_rotation(90)
                label.set_horizontalalignment("center")
        else:
            pitch = np.median(np.diff([box.x0 for box in boxes])) if len(boxes) > 1 else 1.0
            need = max(box.width for box in boxes) * 1.3
            every = int(np.ceil(need / max(pitch, 1e-9)))
            for i, label in enumerate(ax.get_xticklabels()):
                label.set_visible(i % every == 0)


def _date_axis(ax) -> None:
    """Dates that never crowd: AutoDateLocator with at most 8 ticks, ConciseDateFormatter."""
    from matplotlib import dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _number(value) -> str:
    """A value for a note: 'n/a', 0.9, 0.05, 12, 340."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2g}"


# The figures.


def loss_curve(history: dict, path, best_epoch: int | None = None, title: str = "") -> Figure:
    """Training and validation loss per epoch (log scale), with the best epoch marked."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(7, 4)
    ax = fig.add_subplot()
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="training loss (normal windows)")
    ax.plot(epochs, history["val_loss"], label="validation loss (normal windows)")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
    values = np.asarray([*history["loss"], *history["val_loss"]], dtype=float)
    if np.all(values[np.isfinite(values)] > 0):
        ax.set_yscale("log")  # losses fall by orders of magnitude early on
        _tidy_log_ticks(ax.yaxis, values)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error")
    ax.set_title(str(title), **_PLAIN)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    fig.tight_layout()
    fig.savefig(path)
    return fig


def threshold_curve(thresholds, precision, recall, chosen: float, path, *, false_alarms_per_day=None,
                    budget: float | None = None, title: str = "", xlabel: str = "threshold on the reconstruction error",
                    alarms_label: str = "false alarms per day") -> Figure:
    """Precision and recall on validation against the threshold, the chosen one marked:
    the recipe's key figure, from which it read off its threshold.

    With ``false_alarms_per_day`` (aligned with ``thresholds``): those on a second y axis, the
    ``budget`` as a horizontal line on it, and the chosen threshold's operating point (the
    values at the nearest of ``thresholds``) marked and written out.
    """
    fig = _figure(8, 5 if false_alarms_per_day is None else 5.4, layout="constrained")
    ax = fig.add_subplot()
    thresholds = np.asarray(thresholds, dtype=float)
    precision, recall = np.asarray(precision, dtype=float), np.asarray(recall, dtype=float)
    ax.plot(thresholds, precision, color="tab:blue", label="precision")
    ax.plot(thresholds, recall, color="tab:orange", label="recall")
    ax.axvline(chosen, color="black", linestyle="--", label=f"threshold {chosen:.4g}")
    scale = _log_scale_if_positive(thresholds)
    ax.set_xscale(scale)
    if scale == "log":
        _tidy_log_ticks(ax.xaxis, np.append(thresholds, chosen))
    ax.set_xlabel(str(xlabel), **_PLAIN)
    ax.set_ylabel("validation precision / recall")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(str(title or "Validation precision and recall by threshold"), **_PLAIN)
    ax.grid(True, alpha=0.3)
    axes = [ax]
    if false_alarms_per_day is not None:
        alarms = np.asarray(false_alarms_per_day, dtype=float)
        twin = ax.twinx()
        axes.append(twin)
        twin.plot(thresholds, alarms, color="tab:purple", label=str(alarms_label))
        if budget is not None:
            twin.axhline(budget, color="tab:purple", linestyle=":", label=f"budget {budget:g} false alarms/day")
        _count_scale(twin.yaxis, alarms, budget)
        twin.set_ylabel(str(alarms_label), color="tab:purple", **_PLAIN)
        finite = np.isfinite(thresholds)
        if finite.any() and np.isfinite(chosen):
            gap = np.abs(np.log(np.maximum(thresholds, 1e-300) / chosen)) if scale == "log" and chosen > 0 \
                else np.abs(thresholds - chosen)
            at = int(np.argmin(np.where(finite, gap, np.inf)))
            rate, share = alarms[at], recall[at]
            note = f"threshold {chosen:.3g}: {_number(rate)} false alarms/day, recall {_number(share)}"
            ax.plot([chosen], [share], "o", color="tab:orange", markeredgecolor="black", zorder=5)
            twin.plot([chosen], [rate], "o", color="tab:purple", markeredgecolor="black", zorder=5,
                      label="chosen operating point")
            # The note on the side of the dot with more room.
            low, high = np.nanmin(thresholds[finite]), np.nanmax(thresholds[finite])
            if scale == "log":
                low, high, where = np.log(low), np.log(high), np.log(chosen) if chosen > 0 else np.log(low)
            else:
                where = chosen
            right_half = high > low and (where - low) / (high - low) > 0.5
            anchor = (twin, rate) if np.isfinite(rate) else (ax, share if np.isfinite(share) else 0.5)
            anchor[0].annotate(note, xy=(chosen, anchor[1]), xytext=(-10 if right_half else 10, 12),
                               textcoords="offset points", ha="right" if right_half else "left", fontsize="small",
                               bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "alpha": 0.85,
                                     "edgecolor": "0.7"}, zorder=6, **_PLAIN)
    _legend_below(fig, axes)
    fig.savefig(path)
    return fig


def error_timeline(end_time, errors, y, break_times, threshold: float, path, title: str = "") -> Figure:
    """Each window's error at its end time, positives in red, with the threshold and the breaks."""
    fig = _figure(10, 4)
    ax = fig.add_subplot()
    y = np.asarray(y)
    ax.scatter(end_time[y == 0], errors[y == 0], s=3, color="tab:blue", alpha=0.5, label="normal window")
    ax.scatter(end_time[y == 1], errors[y == 1], s=12, color="tab:red", label="window before a break")
    for i, when in enumerate(break_times):
        ax.axvline(when, color="tab:red", alpha=0.3, linewidth=0.8, label="break" if i == 0 else None)
    ax.axhline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_yscale(_log_scale_if_positive(errors))
    if ax.get_yscale() == "log":
        _tidy_log_ticks(ax.yaxis, errors)
    _date_axis(ax)
    ax.set_xlabel("window end time")
    ax.set_ylabel("reconstruction error")
    ax.set_title(str(title or "Test reconstruction error over time"), **_PLAIN)
    ax.grid(True, alpha=0.3)
    _legend(ax, loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return fig


def _lead_levels(positions: list[float], gap: float = 0.07, levels: int = 3) -> list[int]:
    """A vertical level for each note at ``positions`` (axes fractions, ascending) so that
    notes closer than ``gap`` do not share a level."""
    last = [-np.inf] * levels
    chosen = []
    for x in positions:
        free = [i for i in range(levels) if x - last[i] >= gap]
        level = free[0] if free else int(np.argmin(last))
        last[level] = x
        chosen.append(level)
    return chosen


def offset_text(utc_offset_seconds: int | None) -> str:
    """'UTC+02:00' for 7200 seconds; '' for None (times without a time zone)."""
    if utc_offset_seconds is None:
        return ""
    sign = "-" if utc_offset_seconds < 0 else "+"
    minutes = abs(int(utc_offset_seconds)) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _local(when, utc_offset_seconds: int | None) -> np.datetime64:
    t = np.datetime64(when, "s")
    return t if utc_offset_seconds is None else t + np.timedelta64(int(utc_offset_seconds), "s")


def _break_at_gaps(times: np.ndarray, values: np.ndarray):
    """The line lifted over gaps in time (more than 3 times the usual step): no diagonal across downtime."""
    if times.size < 3:
        return times, values
    steps = np.diff(times).astype(np.int64)
    usual = np.median(steps[steps > 0]) if (steps > 0).any() else 0
    gaps = np.flatnonzero(steps > 3 * usual) + 1 if usual > 0 else np.zeros(0, dtype=int)
    if gaps.size == 0:
        return times, values
    return np.insert(times, gaps, np.datetime64("NaT", "s")), np.insert(values.astype(float), gaps, np.nan)


def alarm_timeline(end_time, scores, threshold, path, *, episodes=(), breaks=(), boundaries=(), title: str = "",
                   ylabel: str = "score", utc_offset_seconds: int | None = None) -> Figure:
    """Scores over time with the threshold, the alarm episodes shaded, the breaks (warned ones
    in green with their lead time, missed ones in red) and fold or split boundaries.

    ``end_time``: datetime64 (N,); ``scores``: (N,); ``threshold``: a float, or None for no line;
    ``episodes``: (start, end) datetime64 pairs; ``breaks``: dicts {"time", "warned", "lead_minutes"};
    ``boundaries``: (time, label) pairs. ``utc_offset_seconds``: the times are in UTC and are
    drawn in the data's own time zone (UTC plus this offset), named on the axis.
    """
    fig = _figure(10, 5, layout="constrained")
    ax = fig.add_subplot()
    _alarm_axes(fig, ax, end_time, scores, threshold, episodes=episodes, breaks=breaks, boundaries=boundaries,
                title=title, ylabel=ylabel, utc_offset_seconds=utc_offset_seconds)
    _legend_below(fig, [ax], max_cols=3)
    fig.savefig(path)
    return fig


def _alarm_axes(fig, ax, end_time, scores, threshold, *, episodes=(), breaks=(), boundaries=(), title: str = "",
                ylabel: str = "score", utc_offset_seconds: int | None = None) -> None:
    """Draw :func:`alarm_timeline`'s content on ``ax`` (no legend, no saving)."""
    from matplotlib import dates as mdates
    from matplotlib.collections import PolyCollection

    off = utc_offset_seconds
    times = np.asarray(end_time).astype("datetime64[s]")
    if off is not None:
        times = times + np.timedelta64(int(off), "s")
    scores = np.asarray(scores, dtype=float)
    episodes = [(_local(s, off), _local(e, off)) for s, e in episodes]
    breaks = [dict(b, time=_local(b["time"], off)) for b in breaks]
    boundaries = [(_local(when, off), str(label)) for when, label in boundaries]

    line_t, line_s = _break_at_gaps(times, scores)
    ax.plot(line_t, line_s, color="tab:blue", linewidth=0.7 if scores.size <= 5000 else 0.4, marker="." if scores.size <= 300 else None,
            markersize=4, label=f"{ylabel} per window")
    if scores.size == 0:
        ax.text(0.5, 0.5, "no windows", transform=ax.transAxes, ha="center", va="center", **_PLAIN)
    # A threshold per window: the runs that scored the period (a nightly swap inside it).
    per_window = threshold is not None and np.ndim(threshold) == 1
    if per_window:
        limits = np.asarray(threshold, dtype=float)
        ax.plot(times, limits, drawstyle="steps-post", color="black", linestyle="--", linewidth=1,
                label=f"threshold of the run that scored each window ({_short_number(limits[0])}"
                      f" to {_short_number(limits[-1])})")
        threshold = float(np.max(limits))
    has_threshold = threshold is not None and np.isfinite(threshold)
    if has_threshold and not per_window:
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.4g}")
    finite = _finite(scores)
    lowest = float(np.min(limits)) if per_window else threshold
    if finite.size and np.all(finite > 0) and (not has_threshold or lowest > 0):
        ax.set_yscale("log")
        _tidy_log_ticks(ax.yaxis, np.append(finite, [threshold] if has_threshold else []))

    if episodes:
        # One collection, not a patch per episode (there can be hundreds); its edge, as wide as
        # a line, keeps one-window episodes (start == end) visible.
        starts, ends = (mdates.date2num(np.array(column, dtype="datetime64[s]")) for column in zip(*episodes))
        spans = PolyCollection([[(s, 0), (e, 0), (e, 1), (s, 1)] for s, e in zip(starts, ends)],
                               transform=ax.get_xaxis_transform(), facecolor="tab:orange", edgecolor="tab:orange",
                               alpha=0.3, linewidth=0.8, label=f"alarm episode ({len(episodes)})")
        ax.add_collection(spans, autolim=False)

    # Every time on the plot, to place the notes and to widen a span of zero length.
    stamps = np.array([*times[~np.isnat(times)], *(t for pair in episodes for t in pair),
                       *(b["time"] for b in breaks), *(t for t, _ in boundaries)], dtype="datetime64[s]")
    if stamps.size:
        first, last = stamps.min(), stamps.max()
        if first == last:
            ax.set_xlim(first - np.timedelta64(1, "h"), last + np.timedelta64(1, "h"))
            first, last = first - np.timedelta64(1, "h"), last + np.timedelta64(1, "h")
        span = float((last - first) / np.timedelta64(1, "s"))

    top = ax.get_xaxis_transform()  # x in data, y in axes fractions
    warned = [b for b in breaks if b.get("warned")]
    missed = [b for b in breaks if not b.get("warned")]
    for group, color, marker, name in ((warned, "tab:green", "v", "warned"), (missed, "tab:red", "X", "missed")):
        if not group:
            continue
        ax.vlines(mdates.date2num(np.array([b["time"] for b in group])), 0, 1, transform=top, color=color,
                  alpha=0.6 if len(breaks) <= MAX_ANNOTATED_BREAKS else 0.4, linewidth=0.9)
        ax.plot([b["time"] for b in group], np.full(len(group), 1.0), transform=top, linestyle="none", marker=marker,
                markersize=7, color=color, markeredgecolor="black", markeredgewidth=0.5, clip_on=False, zorder=5,
                label=f"{name} break ({len(group)} of {len(breaks)})")
    if 0 < len(breaks) <= MAX_ANNOTATED_BREAKS:
        notes = sorted((b["time"], b["lead_minutes"]) for b in warned
                       if b.get("lead_minutes") is not None and np.isfinite(b["lead_minutes"]))
        positions = [float((when - first) / np.timedelta64(1, "s")) / span for when, _ in notes]
        for (when, lead), level in zip(notes, _lead_levels(positions)):
            ax.annotate(f"{lead:.0f} min", xy=(mdates.date2num(when), 1.0), xycoords=top, xytext=(3, -16 - 11 * level),
                        textcoords="offset points", fontsize=7, color="darkgreen", zorder=6,
                        bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.7, "linewidth": 0},
                        **_PLAIN)

    if boundaries:
        ax.vlines(mdates.date2num(np.array([when for when, _ in boundaries])), 0, 1, transform=top, color="0.3",
                  linestyle="--", linewidth=0.7, label="fold / split boundary")
    for when, label in boundaries:
        if len(boundaries) <= MAX_NAMED_BOUNDARIES and label:
            ax.text(mdates.date2num(when), 0.02, label, transform=top, rotation=90, ha="right", va="bottom", fontsize=7,
                    color="0.3", **_PLAIN)

    _date_axis(ax)
    zone = offset_text(off)
    ax.set_xlabel(f"window end time ({zone})" if zone else "window end time")
    ax.set_ylabel(str(ylabel), **_PLAIN)
    # Room above the axes for the break markers drawn on its top edge.
    ax.set_title(str(title or "Scores, alarm episodes and breaks"), pad=12 if breaks else 6, **_PLAIN)
    ax.grid(True, alpha=0.3)


def roc_pr(curves: dict | None, roc_auc: float, pr_auc: float, base_rate: float, path, *,
           operating_point: dict | None = None, title: str = "") -> Figure:
    """ROC and precision-recall curves side by side; ``curves`` as from metrics.curves, None
    when the split has one class and neither curve exists. ``operating_point``
    ({"fpr", "tpr", "precision", "recall"}) is marked on both panels."""
    fig = _figure(10, 4.5)
    roc, pr = fig.subplots(1, 2)
    if curves is None:
        for ax in (roc, pr):
            ax.text(0.5, 0.5, "undefined: the test split has only one class", ha="center", va="center")
    else:
        roc.plot(curves["fpr"], curves["tpr"], label=f"ROC-AUC {roc_auc:.3f}")
        pr.step(curves["recall"], curves["precision"], where="post", label=f"PR-AUC (AP) {pr_auc:.4f}")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    pr.axhline(base_rate, color="grey", linestyle=":", label=f"chance (base rate {base_rate:.4f})")
    if operating_point is not None:
        point = {key: operating_point.get(key) for key in ("fpr", "tpr", "precision", "recall")}
        point = {key: float(value) if value is not None else np.nan for key, value in point.items()}
        style = {"linestyle": "none", "marker": "o", "markersize": 8, "color": "tab:red", "markeredgecolor": "black",
                 "zorder": 5}
        roc.plot([point["fpr"]], [point["tpr"]], **style,
                 label=f"operating point (FPR {_number(point['fpr'])}, TPR {_number(point['tpr'])})")
        pr.plot([point["recall"]], [point["precision"]], **style,
                label=f"operating point (recall {_number(point['recall'])}, precision {_number(point['precision'])})")
    roc.set(xlabel="false-positive rate", ylabel="true-positive rate (recall)", title="ROC")
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    for ax in (roc, pr):
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        _legend(ax, loc="lower right" if ax is roc else "best", fontsize="small")
    fig.suptitle(str(title or "Test split: reconstruction error as a score"), **_PLAIN)
    fig.tight_layout()
    fig.savefig(path)
    return fig


def error_histogram(errors, y, threshold: float, path, title: str = "") -> Figure:
    """Error distributions of normal and pre-break windows, with the threshold. Each class is
    shown as shares of its own windows: the classes differ in size by orders of magnitude."""
    fig = _figure()
    ax = fig.add_subplot()
    errors, y = np.asarray(errors, dtype=float), np.asarray(y)
    scale = _log_scale_if_positive(errors)
    spread = errors.size and errors.min() < errors.max()
    bins = np.geomspace(errors.min(), errors.max(), 61) if scale == "log" and spread else 60
    for label, name, color in ((0, "normal windows", "tab:blue"), (1, "windows before a break", "tab:red")):
        part = errors[y == label]
        if part.size:
            ax.hist(part, bins=bins, weights=np.full(part.size, 1 / part.size), histtype="stepfilled",
                    alpha=0.4, color=color, label=f"{name} ({part.size:,})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_xscale(scale)
    if scale == "log":
        _tidy_log_ticks(ax.xaxis, np.append(errors, threshold if threshold > 0 else []))
    ax.set_xlabel("reconstruction error")
    ax.set_ylabel("share of the class's windows")
    ax.set_title(str(title or "Test reconstruction error by class"), **_PLAIN)
    ax.grid(True, alpha=0.3)
    _legend(ax, fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return fig


def warning_curve(curves: dict, path, *, budget: float | None = None, title: str = "") -> Figure:
    """Share of breaks warned against false alarm episodes per day, one line per detector
    (``curves``: {name: {"false_episodes_per_day": array, "warned_share": array}}), with the
    budget as a vertical line; each detector's best share within the budget is in the legend."""
    fig = _figure(8, 5, layout="constrained")
    ax = fig.add_subplot()
    every_x = []
    for name, curve in curves.items():
        x = np.asarray(curve["false_episodes_per_day"], dtype=float)
        share = np.asarray(curve["warned_share"], dtype=float)
        order = np.argsort(x, kind="stable")
        x, share = x[order], share[order]
        every_x.append(x)
        label = str(name)
        if budget is not None:
            within = share[np.isfinite(share) & (x <= budget)]
            label += f": {within.max():.0%} warned within budget" if within.size else ": none within budget"
        ax.plot(x, share, marker="o" if x.size <= 40 else None, markersize=3, linewidth=1.5, label=label)
    if not curves:
        ax.text(0.5, 0.5, "no detectors", transform=ax.transAxes, ha="center", va="center")
    if budget is not None:
        ax.axvline(budget, color="black", linestyle="--", label=f"budget {budget:g} false episodes/day")
    _count_scale(ax.xaxis, np.concatenate(every_x) if every_x else [], budget)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false alarm episodes per day")
    ax.set_ylabel("share of breaks warned")
    ax.set_title(str(title or "Breaks warned against false alarm episodes"), **_PLAIN)
    ax.grid(True, alpha=0.3)
    _legend_below(fig, [ax], max_cols=3)
    fig.savefig(path)
    return fig


def fold_budget(fold_labels, false_episodes_per_day, budget: float, path, *, title: str = "") -> Figure:
    """False alarm episodes per day in each fold as bars (one colour per detector when
    ``false_episodes_per_day`` is a dict {detector: array}) against the budget line."""
    labels = [str(label) for label in fold_labels]
    series = dict(false_episodes_per_day) if isinstance(false_episodes_per_day, dict) \
        else {"": false_episodes_per_day}
    n, k = len(labels), max(len(series), 1)
    fig = _figure(min(14.0, max(7.0, 3 + 0.18 * n * k)), 5, layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / k
    positions = np.arange(n)
    for j, (name, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=float)
        over = int(np.sum(values[np.isfinite(values)] > budget)) if budget is not None else 0
        count = f"{over} of {n} folds over budget" if budget is not None else f"{n} folds"
        ax.bar(positions - 0.4 + width * (j + 0.5), values, width * 0.95,
               label=f"{name}: {count}" if name != "" else count)
    if budget is not None:
        ax.axhline(budget, color="black", linestyle="--", label=f"budget {budget:g} false episodes/day")
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, **_PLAIN)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("fold")
    ax.set_ylabel("false alarm episodes per day")
    ax.set_title(str(title or "False alarm episodes per day by fold"), **_PLAIN)
    ax.grid(True, axis="y", alpha=0.3)
    _legend_below(fig, [ax], max_cols=3)
    _declutter_xticks(fig, ax)
    fig.savefig(path)
    return fig


# How many episodes the score figure names the sensors of (the latest ones), before the notes crowd.
MAX_NAMED_EPISODES = 12


def score_figure(end_time, scores, threshold, path, *, episodes=(), episode_sensors=(), breaks=(), title: str = "",
                 ylabel: str = "score", utc_offset_seconds: int | None = None) -> Figure:
    """A scored period (``score``'s output): scores over time, the threshold, the alarm episodes
    shaded, the breaks warned or missed, and the top sensors of each episode written at its
    start (the latest MAX_NAMED_EPISODES episodes; notes close in time go on separate levels).

    ``threshold``: a number, or one per window (the run that scored each, across a swap);
    ``episodes``: (start, end) pairs; ``episode_sensors``: one list of sensor names per episode
    (empty for detectors that name none); ``breaks``: as :func:`alarm_timeline` takes them.
    """
    from matplotlib import dates as mdates

    fig = _figure(10, 5.5, layout="constrained")
    ax = fig.add_subplot()
    episodes = list(episodes)
    _alarm_axes(fig, ax, end_time, scores, threshold, episodes=episodes, breaks=breaks, title=title or "Scored "
                "period: alarm episodes and the sensors behind them", ylabel=ylabel,
                utc_offset_seconds=utc_offset_seconds)
    sensors = list(episode_sensors) + [[]] * max(0, len(episodes) - len(episode_sensors))
    named = [(i, _local(episodes[i][0], utc_offset_seconds), sensors[i]) for i in range(len(episodes)) if sensors[i]]
    named = named[-MAX_NAMED_EPISODES:]
    if named:
        low, high = ax.get_xlim()
        width = max(high - low, 1e-9)
        positions = [(mdates.date2num(when) - low) / width for _, when, _ in named]
        top = ax.get_xaxis_transform()
        below = 42 if breaks else 0  # under the breaks' lead times, which the top of the axes holds
        for (i, when, names), level in zip(named, _lead_levels(positions, gap=0.14, levels=4)):
            ax.annotate("\n".join(str(n) for n in names[:3]), xy=(mdates.date2num(when), 1.0), xycoords=top,
                        xytext=(3, -6 - below - 34 * level), textcoords="offset points", fontsize=7, va="top",
                        color="saddlebrown", zorder=6,
                        bbox={"boxstyle": "square,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
                        **_PLAIN)
        shown = f"brown: top sensors of the latest {len(named)} episodes" if len(named) < len(episodes) \
            else "brown: top sensors of each episode"
        ax.plot([], [], linestyle="none", marker="s", color="saddlebrown", label=shown)
    _legend_below(fig, [ax], max_cols=3)
    fig.savefig(path)
    return fig


def episode_figure(sensor_time, sensor_values: dict, end_time, scores, threshold, episode, path, *, breaks=(),
                   title: str = "", utc_offset_seconds: int | None = None) -> Figure:
    """One alarm episode up close: each of its top sensors' raw values (``sensor_values``:
    {name: array over ``sensor_time``}, one panel each), then the score per window with the
    threshold; the episode (start, end) shaded and the breaks (as :func:`alarm_timeline` takes
    them) drawn on every panel. Times as :func:`alarm_timeline` takes them."""
    from matplotlib import dates as mdates

    off = utc_offset_seconds
    panels = len(sensor_values) + 1
    fig = _figure(10, 1.6 * panels + 1.6, layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    start, end = (mdates.date2num(_local(t, off)) for t in episode)
    sensor_time = np.asarray(sensor_time).astype("datetime64[s]")
    shown = sensor_time if off is None else sensor_time + np.timedelta64(int(off), "s")
    for ax, (name, values) in zip(axes, sensor_values.items()):
        ax.plot(*_break_at_gaps(shown, np.asarray(values, dtype=float)), color="0.25", linewidth=0.9)
        ax.set_ylabel(str(name), **_PLAIN)
    score_ax = axes[-1]
    times = np.asarray(end_time).astype("datetime64[s]")
    times = times if off is None else times + np.timedelta64(int(off), "s")
    score_ax.plot(*_break_at_gaps(times, np.asarray(scores, dtype=float)), color="tab:blue", linewidth=0.9,
                  marker="." if len(times) <= 300 else None, markersize=3, label="score per window")
    if threshold is not None and np.isfinite(threshold):
        score_ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.4g}")
    score_ax.set_ylabel("score")
    for i, ax in enumerate(axes):
        ax.axvspan(start, max(end, start + 1 / 1440), color="tab:orange", alpha=0.3,
                   label="alarm episode" if i == panels - 1 else None)
        for b in breaks:
            color = "tab:green" if b.get("warned") else "tab:red"
            kind = "warned break" if b.get("warned") else "missed break"
            ax.axvline(mdates.date2num(_local(b["time"], off)), color=color, linewidth=1.2,
                       label=kind if i == panels - 1 else None)
        ax.grid(True, alpha=0.3)
    _date_axis(score_ax)
    zone = offset_text(off)
    score_ax.set_xlabel(f"time ({zone})" if zone else "time")
    axes[0].set_title(str(title or "Alarm episode"), **_PLAIN)
    handles, labels = score_ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    _plain_legend(fig.legend(list(unique.values()), list(unique.keys()), loc="outside lower center",
                             ncols=min(len(unique), 4), fontsize="small", frameon=False))
    fig.savefig(path)
    return fig
