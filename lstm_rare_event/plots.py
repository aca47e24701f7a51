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
