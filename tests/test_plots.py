"""Figures: each writes a PNG for small and large synthetic cases and edge cases, user text is
never parsed as mathtext, and tick labels do not overlap."""

import itertools

import numpy as np
import pytest

from lstm_rare_event.alarms import plots

START = np.datetime64("2024-03-01T00:00:00", "s")
TITLE = "run$\\foo$"  # mathtext would fail on it: an unknown command inside $...$


def written(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000


def timeline_case(n: int, days: float, n_breaks: int, seed: int = 0) -> dict:
    """Scores with bumps before breaks, the episodes above the 97th percentile, the breaks."""
    rng = np.random.default_rng(seed)
    end_time = START + (np.arange(n) * (days * 86400 / max(n, 1))).astype("timedelta64[s]")
    scores = rng.lognormal(-3, 0.5, n)
    at = np.sort(rng.choice(np.arange(min(20, n - 1), n), n_breaks, replace=False)) if n_breaks else []
    breaks = []
    for i in at:
        scores[max(0, i - 15):i] *= rng.uniform(1, 4)
        warned = bool(rng.random() < 0.6)
        breaks.append({"time": end_time[i], "warned": warned,
                       "lead_minutes": float(rng.integers(5, 120)) if warned else None})
    threshold = float(np.quantile(scores, 0.97))
    flags = np.concatenate([[False], scores > threshold, [False]]).astype(int)
    starts, ends = np.flatnonzero(np.diff(flags) == 1), np.flatnonzero(np.diff(flags) == -1) - 1
    episodes = list(zip(end_time[starts], end_time[ends]))
    boundaries = [(end_time[int(i)], f"fold {k + 1}") for k, i in enumerate(np.linspace(0, n - 1, 7)[1:-1])]
    return {"end_time": end_time, "scores": scores, "threshold": threshold, "episodes": episodes, "breaks": breaks,
            "boundaries": boundaries}


def visible_tick_labels(fig, axis):
    """The drawn tick labels of ``axis``: visible, non-empty and inside the view interval."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    low, high = sorted(axis.get_view_interval())
    labels = [label for label in axis.get_ticklabels()
              if label.get_visible() and label.get_text()
              and low - 1e-9 * abs(high - low) <= label.get_position()[0 if axis.axis_name == "x" else 1] <= high]
    return [(label.get_text(), label.get_window_extent(renderer)) for label in labels]


def assert_no_overlap(fig, axis, at_least: int = 2):
    labels = visible_tick_labels(fig, axis)
    assert len(labels) >= at_least, [text for text, _ in labels]
    for (a, box_a), (b, box_b) in itertools.combinations(labels, 2):
        assert not box_a.overlaps(box_b), f"tick labels {a!r} and {b!r} overlap"


def test_importing_plots_leaves_matplotlib_unimported(heavy_imports):
    assert "matplotlib" not in heavy_imports("import lstm_rare_event.alarms.plots")


# alarm_timeline


@pytest.mark.parametrize("n, days, n_breaks", [(720, 1, 4), (20_000, 30, 80)], ids=["small", "large"])
def test_alarm_timeline_writes_small_and_large(tmp_path, n, days, n_breaks):
    case = timeline_case(n, days, n_breaks)
    fig = plots.alarm_timeline(case["end_time"], case["scores"], case["threshold"], tmp_path / "t.png",
                               episodes=case["episodes"], breaks=case["breaks"], boundaries=case["boundaries"],
                               title=TITLE)
    assert written(tmp_path / "t.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    legend = "\n".join(text.get_text() for text in fig.legends[0].get_texts())
    warned = sum(b["warned"] for b in case["breaks"])
    assert f"warned break ({warned} of {n_breaks})" in legend
    assert f"missed break ({n_breaks - warned} of {n_breaks})" in legend
    notes = [text.get_text() for text in ax.texts if text.get_text().endswith(" min")]
    # Lead times are written for a few breaks only: with many they would overlap.
    assert len(notes) == (sum(1 for b in case["breaks"] if b["warned"]) if n_breaks <= 15 else 0)
    assert_no_overlap(fig, ax.xaxis)


@pytest.mark.parametrize("edge", ["no episodes or breaks", "all scores zero, no threshold", "single window"])
def test_alarm_timeline_edge_cases(tmp_path, edge):
    case = timeline_case(200, 0.2, 3)
    kwargs = {"episodes": case["episodes"], "breaks": case["breaks"], "boundaries": case["boundaries"]}
    end_time, scores, threshold = case["end_time"], case["scores"], case["threshold"]
    if edge == "no episodes or breaks":
        kwargs = {}
    elif edge == "all scores zero, no threshold":
        scores, threshold = np.zeros_like(scores), None
        kwargs["episodes"] = []
    else:
        end_time, scores = end_time[:1], scores[:1]
        kwargs = {"breaks": [{"time": end_time[0], "warned": True, "lead_minutes": 30.0}]}
    fig = plots.alarm_timeline(end_time, scores, threshold, tmp_path / "t.png", ylabel="error", **kwargs)
    assert written(tmp_path / "t.png")
    assert fig.axes[0].get_yscale() == ("linear" if edge.startswith("all scores zero") else "log")
    assert_no_overlap(fig, fig.axes[0].xaxis)


@pytest.mark.parametrize("days", [1 / 24, 60], ids=["1 hour", "60 days"])
def test_alarm_timeline_time_labels_do_not_overlap(tmp_path, days):
    # 1 day and 30 days: test_alarm_timeline_writes_small_and_large.
    case = timeline_case(2000, days, 10)
    fig = plots.alarm_timeline(case["end_time"], case["scores"], case["threshold"], tmp_path / "t.png",
                               episodes=case["episodes"], breaks=case["breaks"])
    assert_no_overlap(fig, fig.axes[0].xaxis, at_least=3)
    assert_no_overlap(fig, fig.axes[0].yaxis)


# threshold_curve


def threshold_case(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    thresholds = np.geomspace(0.005, 0.5, n)
    recall = np.clip(1.2 - np.log10(thresholds / 0.005) / 2, 0, 1)
    precision = np.clip(0.05 + np.log10(thresholds / 0.005) / 2.5 + rng.normal(0, 0.02, n), 0, 1)
    false_alarms = np.maximum(80 * (0.05 / thresholds) ** 1.5 - 0.5, 0)  # reaches 0 at the top
    return thresholds, precision, recall, false_alarms


def test_threshold_curve_marks_the_operating_point(tmp_path):
    thresholds, precision, recall, false_alarms = threshold_case()
    chosen = float(thresholds[200])
    fig = plots.threshold_curve(thresholds, precision, recall, chosen, tmp_path / "t.png",
                                false_alarms_per_day=false_alarms, budget=1.0, title=TITLE)
    assert written(tmp_path / "t.png")
    assert len(fig.axes) == 2  # the false alarms on a second y axis
    notes = [text.get_text() for ax in fig.axes for text in ax.texts]
    assert notes == [f"threshold {chosen:.3g}: {plots._number(false_alarms[200])} false alarms/day, "
                     f"recall {plots._number(recall[200])}"]
    assert_no_overlap(fig, fig.axes[0].xaxis)


@pytest.mark.parametrize("edge", ["plain", "NaN false alarms, no budget", "all positive", "all NaN"])
def test_threshold_curve_edge_cases(tmp_path, edge):
    thresholds, precision, recall, false_alarms = threshold_case(40)
    kwargs = {"false_alarms_per_day": false_alarms, "budget": 2.0}
    if edge == "plain":
        kwargs = {}
    elif edge == "NaN false alarms, no budget":
        false_alarms[[0, 5, 20]] = np.nan  # also at the chosen threshold: its note says n/a
        kwargs["budget"] = None
    elif edge == "all positive":
        kwargs["false_alarms_per_day"] = false_alarms + 0.01
    else:
        kwargs["false_alarms_per_day"] = np.full_like(false_alarms, np.nan)
    fig = plots.threshold_curve(thresholds, precision, recall, float(thresholds[20]), tmp_path / "t.png", **kwargs)
    assert written(tmp_path / "t.png")
    if edge == "all positive":
        assert fig.axes[1].get_yscale() == "log"
    if edge.startswith("NaN"):
        assert [text.get_text() for text in fig.axes[0].texts][0].endswith(
            f"n/a false alarms/day, recall {plots._number(recall[20])}")


# roc_pr


def test_roc_pr_marks_the_operating_point(tmp_path):
    fpr = np.linspace(0, 1, 50)
    curves = {"fpr": fpr, "tpr": np.sqrt(fpr), "recall": fpr[::-1], "precision": 0.05 + 0.9 * fpr}
    point = {"fpr": 0.03, "tpr": 0.4, "precision": 0.2, "recall": 0.4}
    fig = plots.roc_pr(curves, 0.8, 0.3, 0.04, tmp_path / "r.png", operating_point=point, title=TITLE)
    assert written(tmp_path / "r.png")
    labels = [text.get_text() for ax in fig.axes for text in ax.get_legend().get_texts()]
    assert "operating point (FPR 0.03, TPR 0.4)" in labels
    assert "operating point (recall 0.4, precision 0.2)" in labels
    plots.roc_pr(None, float("nan"), float("nan"), 0.0, tmp_path / "none.png", operating_point=point)
    assert written(tmp_path / "none.png")


# error_histogram


@pytest.mark.parametrize("low, high", [(0.012, 0.018), (0.003, 0.03), (1e-6, 100)])
def test_error_histogram_log_ticks_do_not_overlap(tmp_path, low, high):
    rng = np.random.default_rng(0)
    errors = np.exp(rng.uniform(np.log(low), np.log(high), 2000))
    y = (rng.random(2000) < 0.05).astype(int)
    fig = plots.error_histogram(errors, y, float(np.quantile(errors, 0.9)), tmp_path / "h.png")
    assert written(tmp_path / "h.png")
    assert fig.axes[0].get_xscale() == "log"
    assert_no_overlap(fig, fig.axes[0].xaxis)
    # Minor ticks carry no labels (in a narrow range matplotlib would label them, and they overlap).
    assert not any(label.get_text() for label in fig.axes[0].xaxis.get_minorticklabels())


def test_error_histogram_all_zero_errors(tmp_path):
    plots.error_histogram(np.zeros(50), np.r_[np.zeros(45), np.ones(5)], 0.0, tmp_path / "h.png")
    assert written(tmp_path / "h.png")


# warning_curve


@pytest.mark.parametrize("points", [5, 500], ids=["small", "large"])
def test_warning_curve(tmp_path, points):
    x = np.concatenate([[0.0, 0.0], np.geomspace(0.05, 40, points)])
    curves = {name: {"false_episodes_per_day": x, "warned_share": np.clip(scale * (0.2 + 0.25 * np.log10(1 + 10 * x)),
                                                                          0, 1)}
              for name, scale in (("lstm_ae", 1.0), ("pca", 0.7), ("z $score$", 0.4))}
    fig = plots.warning_curve(curves, tmp_path / "w.png", budget=1.0, title=TITLE)
    assert written(tmp_path / "w.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog" and ax.get_xlim()[0] == 0  # zeros on the axis, no negative side
    labels = [text.get_text() for text in fig.legends[0].get_texts()]
    assert labels[0].startswith("lstm_ae: ") and labels[0].endswith("% warned within budget")
    assert_no_overlap(fig, ax.xaxis)


@pytest.mark.parametrize("edge", ["all positive, no budget", "no detectors", "single point"])
def test_warning_curve_edge_cases(tmp_path, edge):
    x = np.geomspace(0.05, 40, 20)
    curves = {"a": {"false_episodes_per_day": x, "warned_share": np.linspace(0.1, 0.9, 20)}}
    budget = 1.0
    if edge == "all positive, no budget":
        budget = None
    elif edge == "no detectors":
        curves = {}
    elif edge == "single point":
        curves = {"a": {"false_episodes_per_day": [0.0], "warned_share": [0.5]}}
    fig = plots.warning_curve(curves, tmp_path / "w.png", budget=budget)
    assert written(tmp_path / "w.png")
    if edge.startswith("all positive"):
        assert fig.axes[0].get_xscale() == "log"


# fold_budget


@pytest.mark.parametrize("folds, by_detector", [(5, True), (12, False), (40, True)])
def test_fold_budget_labels_readable(tmp_path, folds, by_detector):
    rng = np.random.default_rng(folds)
    labels = [f"2024-{1 + i // 28:02d}-{1 + i % 28:02d} to 2024-{1 + i // 28:02d}-{2 + i % 28:02d}"
              for i in range(folds)]
    values = {name: rng.gamma(2, 0.6, folds) for name in ("lstm_ae", "pca")} if by_detector \
        else rng.gamma(2, 0.6, folds)
    fig = plots.fold_budget(labels, values, 1.0, tmp_path / "f.png", title=TITLE)
    assert written(tmp_path / "f.png")
    assert_no_overlap(fig, fig.axes[0].xaxis)
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert any(text.endswith(f"of {folds} folds over budget") for text in legend)


def test_fold_budget_with_nan_and_user_labels(tmp_path):
    values = np.array([0.5, np.nan, 2.0, 0.0, 1.5])
    plots.fold_budget([f"f$\\x${i}" for i in range(5)], values, 1.0, tmp_path / "f.png")
    assert written(tmp_path / "f.png")


# mathtext-unsafe titles


def test_titles_from_user_data_are_not_mathtext(tmp_path):
    history = {"loss": [1.0, 0.5, 0.2], "val_loss": [1.1, 0.6, 0.3]}
    fig = plots.loss_curve(history, tmp_path / "loss.png", best_epoch=3, title=TITLE)
    assert written(tmp_path / "loss.png")
    assert fig.axes[0].get_title() == TITLE
    case = timeline_case(100, 0.1, 2)
    fig = plots.alarm_timeline(case["end_time"], case["scores"], case["threshold"], tmp_path / "t.png",
                               breaks=case["breaks"], boundaries=[(case["end_time"][50], "$\\bar$")], title=TITLE,
                               ylabel="$\\err$")
    assert written(tmp_path / "t.png")
    assert fig.axes[0].get_title() == TITLE


def test_existing_figures_still_write(tmp_path):
    case = timeline_case(300, 0.5, 3)
    y = np.zeros(300, int)
    y[100:110] = 1
    fig = plots.error_timeline(case["end_time"], case["scores"], y, [case["end_time"][110]], case["threshold"],
                               tmp_path / "e.png", title=TITLE)
    assert written(tmp_path / "e.png")
    assert_no_overlap(fig, fig.axes[0].xaxis)
