"""Figures written as PNG files.

Matplotlib is imported inside each function, and only its Agg canvas is used (never pyplot),
so importing this module is free and plotting works without a display and without touching
any global backend state.
"""

from __future__ import annotations

import numpy as np


def loss_curve(history: dict, path, best_epoch: int | None = None, title: str = "") -> None:
    """Training and validation loss per epoch (log scale), with the best epoch marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="training loss (normal windows)")
    ax.plot(epochs, history["val_loss"], label="validation loss (normal windows)")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
    values = np.asarray([*history["loss"], *history["val_loss"]], dtype=float)
    if np.all(values[np.isfinite(values)] > 0):
        ax.set_yscale("log")  # losses fall by orders of magnitude early on
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def _figure(width: float = 7, height: float = 4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _log_scale_if_positive(values) -> str:
    # Reconstruction errors span orders of magnitude; a log axis needs them all above 0.
    values = np.asarray(values, dtype=float)
    return "log" if values.size and np.all(values > 0) else "linear"


def threshold_curve(thresholds, precision, recall, chosen: float, path, title: str = "") -> None:
    """Precision and recall on validation against the threshold, the chosen one marked:
    the recipe's key figure, from which it read off its threshold."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(thresholds, precision, label="precision")
    ax.plot(thresholds, recall, label="recall")
    ax.axvline(chosen, color="black", linestyle="--", label=f"threshold {chosen:.4g}")
    ax.set_xscale(_log_scale_if_positive(thresholds))
    ax.set_xlabel("threshold on the reconstruction error")
    ax.set_ylabel("validation precision / recall")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or "Validation precision and recall by threshold")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def error_timeline(end_time, errors, y, break_times, threshold: float, path, title: str = "") -> None:
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
    ax.set_xlabel("window end time")
    ax.set_ylabel("reconstruction error")
    ax.set_title(title or "Test reconstruction error over time")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)


def roc_pr(curves: dict | None, roc_auc: float, pr_auc: float, base_rate: float, path, title: str = "") -> None:
    """ROC and precision-recall curves side by side; ``curves`` as from metrics.curves, None
    when the split has one class and neither curve exists."""
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
    roc.set(xlabel="false-positive rate", ylabel="true-positive rate (recall)", title="ROC")
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    for ax in (roc, pr):
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right" if ax is roc else "upper right", fontsize="small")
    fig.suptitle(title or "Test split: reconstruction error as a score")
    fig.tight_layout()
    fig.savefig(path)


def error_histogram(errors, y, threshold: float, path, title: str = "") -> None:
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
    ax.set_xlabel("reconstruction error")
    ax.set_ylabel("share of the class's windows")
    ax.set_title(title or "Test reconstruction error by class")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
