"""Which sensors an alarm names: one definition for the alert, scores.csv, ``--plot`` and the report.

A window's top sensors are the ``k`` with the largest share of its score (:func:`top_sensors`).
An episode's top sensors are those of the window that opened it (:func:`episode_sensors`):
the alert is sent when that window is scored and cannot know the later ones, so the figure
and the report name the same sensors the operator was told about, whatever the call
boundaries were. (The sensors summed over the whole episode named others: the alert said
x20, x8, x25 where the report said x11, x2, x12.)
"""

from __future__ import annotations

import numpy as np

TOP_SENSORS = 3


def top_sensors(contributions: np.ndarray, features, k: int = TOP_SENSORS) -> tuple[np.ndarray, np.ndarray]:
    """Per window, the ``k`` features with the largest share of the score, largest first:
    (names (N, k), shares (N, k)). A share is the feature's part of the window's summed
    contributions; 0 for a window whose contributions sum to 0. Fewer than ``k`` features: all."""
    k = min(k, contributions.shape[1])
    if not (contributions > -np.inf).all():  # NaN (sorted last) or -inf (the mark of a column taken)
        order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    else:
        order = _largest(contributions, k)
    top = np.take_along_axis(contributions, order, axis=1)
    total = contributions.sum(axis=1, keepdims=True)
    shares = np.divide(top, total, out=np.zeros_like(top), where=total > 0)
    return np.asarray(features, dtype=object)[order], shares


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    """Per row, the columns of the ``k`` largest values, largest first, a tie to the first
    column: ``np.argsort(-values, kind="stable")[:, :k]`` for values without NaN or -inf, found
    by ``k`` argmax passes (a few times faster than sorting 59 columns to keep 3)."""
    left = values.copy()
    order = np.empty((len(values), k), dtype=np.intp)
    rows = np.arange(len(values))
    for i in range(k):
        order[:, i] = np.argmax(left, axis=1)  # the first of equal maxima: the stable sort's order
        left[rows, order[:, i]] = -np.inf
    return order


def episode_sensors(episode: np.ndarray, opened: np.ndarray, top: list) -> dict[int, list]:
    """Per episode id, the top sensors of the window that opened it, as ``top`` holds them per
    window (a list of (name, share) pairs, or of names). ``episode``: the episode id of each
    window (0: not flagged); ``opened``: 1 where a window opened its episode. An episode whose
    opening window is not among these windows (it opened before them) is named by its first
    window here."""
    episode, opened = np.asarray(episode), np.asarray(opened).astype(bool)
    named: dict[int, list] = {}
    for i in np.flatnonzero(opened & (episode > 0)):
        named.setdefault(int(episode[i]), list(top[i]))
    for i in np.flatnonzero(episode > 0):
        named.setdefault(int(episode[i]), list(top[i]))
    return named
