"""Causal per-sensor baseline removal.

Sensor levels move with the paper grade and over days, so a model fitted on the first weeks
sees the last week as anomalous. Subtracting each sensor's median over the previous rows
removes the slow level and keeps the fast change that precedes a break. Only past rows are
used, and never across a time gap (a restart after downtime starts a fresh baseline).

The median is exact and gives the bytes of pandas' ``groupby().rolling().median()`` (which it
replaced: per-segment rolling windows cost most of ``score``'s time), the sensors split over the
cores (a column's median needs only that column). Windows of up to 32 rows, the default 30
included, are read off rows ranked 64 at a time (:func:`_ranked_medians`); longer ones, and a
segment's first rows, are sorted one window at a time (:func:`_medians`).
"""

from __future__ import annotations

import numpy as np

from lstm_rare_event.parallel import map_parts, parts

# Windows sorted at once: (features, BLOCK, window) float64, about 1 MB for 59 x 30, which stays in
# the core's cache between the copy and the sort (2048 windows, 30 MB, sorted 2.4 times slower).
BLOCK = 128
# Rows ranked together: a set of them is one uint64 of bits, one per rank.
GROUP = 64
# Groups ranked at once, about 2 MB of float64 for 59 sensors: in the core's cache.
GROUPS = 64
_ONE = np.uint64(1)
_MANTISSA_BITS, _EXPONENT_BIAS = np.uint64(52), np.uint64(1023)  # of a float64


def _medians(by_feature: np.ndarray, starts: np.ndarray, length: int, out: np.ndarray, rows: np.ndarray) -> None:
    """out[rows] = the median of the ``length`` rows from each of ``starts``, per feature.

    Sorted, then the middle element (odd) or the mean of the two middle ones (even) as
    ``(lo + hi) / 2``: the bytes pandas' rolling median gives.
    """
    view = np.lib.stride_tricks.sliding_window_view(by_feature, length, axis=1)  # (F, T - length + 1, length)
    half = length // 2
    for s in range(0, len(starts), BLOCK):
        block = view[:, starts[s : s + BLOCK]]  # a copy: sorted in place
        block.sort(axis=-1)
        median = block[..., half] if length % 2 else (block[..., half - 1] + block[..., half]) / 2
        out[rows[s : s + BLOCK]] = median.T


# Broadword select, in NumPy's integer arithmetic (Vigna, "Broadword implementation of rank/select queries", 2008): the
# bytes' bit counts summed up to each byte by one multiplication, the byte that holds the
# k-th set bit found by comparing all eight sums at once, and the bit inside it read off a table.
_BYTES = np.uint64(0x0101010101010101)
_HIGH_BITS = np.uint64(0x8080808080808080)
_BYTE = np.uint64(0xFF)
_PAIRS, _NIBBLES, _LOW_NIBBLES = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
_SELECT_IN_BYTE = np.zeros(256 * 8, dtype=np.uint64)  # [byte | r << 8]: the r-th set bit of byte
for _byte in range(256):
    for _r, _bit in enumerate(i for i in range(8) if _byte >> i & 1):
        _SELECT_IN_BYTE[_byte | _r << 8] = _bit


def _byte_sums(mask: np.ndarray) -> np.ndarray:
    """Per uint64, its bytes' set-bit counts summed up to each byte (byte i: bytes 0..i)."""
    s = mask - ((mask >> np.uint64(1)) & _PAIRS)
    s = (s & _NIBBLES) + ((s >> np.uint64(2)) & _NIBBLES)
    return ((s + (s >> np.uint64(4))) & _LOW_NIBBLES) * _BYTES


def _select(mask: np.ndarray, sums: np.ndarray, k: int) -> np.ndarray:
    """The index of the ``k``-th (from 0) set bit of each uint64 of ``mask``, which has more
    than ``k``; ``sums``: its :func:`_byte_sums`."""
    k = np.uint64(k)
    below = ((k * _BYTES | _HIGH_BITS) - sums) & _HIGH_BITS  # the high bit of each byte whose sum is <= k
    place = (((below >> np.uint64(7)) * _BYTES) >> np.uint64(56)) << np.uint64(3)  # 8 x their count
    rank = k - (((sums << np.uint64(8)) >> place) & _BYTE)  # the bit's rank inside its byte
    return place + _SELECT_IN_BYTE[((mask >> place) & _BYTE) | (rank << np.uint64(8))]


def _next_bit(mask: np.ndarray, bit: np.ndarray) -> np.ndarray:
    """The index of the lowest set bit of each uint64 of ``mask`` above ``bit`` (< 63), which it
    has: that bit alone, a power of two, is exact as a float64, whose exponent is its index."""
    above = mask >> (bit + _ONE)
    above &= ~above + _ONE
    return bit + _ONE + ((above.astype(np.float64).view(np.uint64) >> _MANTISSA_BITS) - _EXPONENT_BIAS)


def _ranked_medians(by_feature: np.ndarray, length: int) -> np.ndarray:
    """(F, T - length + 1): the median of every run of ``length`` (<= GROUP / 2) rows, per feature.

    Sorting each window costs a sort per row. Instead, GROUP rows at a time are ranked (one
    argsort), which covers the GROUP - length + 1 windows that start in its first rows: the
    rows of such a window are a set of ranks, one uint64 whose bits are an OR over a sliding
    span, and its middle ranks are that uint64's middle set bits. Ranks pick values of the
    window itself, so the median is the one sorting gives (but for the sign of a zero: NumPy's
    vectorized sort may return -0.0 for 0.0 when they tie, the ranks keep each as it is).
    """
    features, n = by_feature.shape
    starts = n - length + 1
    per_group = GROUP - length + 1
    groups = -(-starts // per_group)
    padded = np.zeros((features, groups * per_group + length - 1))
    padded[:, :n] = by_feature
    out = np.empty((features, groups * per_group))
    half = length // 2
    k = half if length % 2 else half - 1
    power = 1 << (length.bit_length() - 1)  # the largest power of 2 <= length
    bit_of_rank = _ONE << np.arange(GROUP, dtype=np.uint64)
    for g0 in range(0, groups, GROUPS):
        g1 = min(groups, g0 + GROUPS)
        rows = np.lib.stride_tricks.sliding_window_view(
            padded[:, g0 * per_group : g1 * per_group + length - 1], GROUP, axis=1)[:, ::per_group]
        rows = rows.reshape(-1, GROUP)  # (F * g, GROUP), a copy
        m = len(rows)
        base = np.arange(0, m * GROUP, GROUP)[:, None]
        at = np.argsort(rows, axis=-1)
        at += base
        at = at.ravel()  # each row's values in ascending order, as flat indices
        ranked = rows.ravel()[at]
        bits = np.empty(m * GROUP, dtype=np.uint64)
        bits[at] = np.broadcast_to(bit_of_rank, (m, GROUP)).ravel()  # the bit of each value's rank
        bits = bits.reshape(m, GROUP)
        span = 1
        while span < power:  # OR over 2 * span values from each, doubling
            bits = bits[:, :-span] | bits[:, span:]
            span *= 2
        mask = bits[:, :per_group] | bits[:, length - power : length - power + per_group]  # (m, per_group)
        lower = _select(mask, _byte_sums(mask), k)
        median = ranked[lower.astype(np.intp) + base]
        if not length % 2:  # (lo + hi) / 2, hi the next rank of the window
            median += ranked[_next_bit(mask, lower).astype(np.intp) + base]
            median /= 2
        out[:, g0 * per_group : g1 * per_group] = median.reshape(features, -1)
    return out[:, :starts]


def trailing_median(values: np.ndarray, segment: np.ndarray, window: int) -> np.ndarray:
    """Per column, the median of the up to ``window`` rows before each row in its segment
    (``segment``: ascending ids, one run of rows each).

    The first row of a segment has no past; its baseline is its own value.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    past = values.copy()
    if n < 2:
        return past
    segment = np.asarray(segment)
    index = np.arange(n)
    position = index - np.searchsorted(segment, segment)  # rows since the segment's first row
    by_feature = np.ascontiguousarray(values.T)
    full = index[position >= window]  # a whole window of past rows
    if full.size and 2 * window <= GROUP:
        past[full] = _ranked_medians(by_feature, window)[:, full - window].T
    elif full.size:
        _medians(by_feature, full - window, window, past, full)
    for length in range(1, min(window, int(position.max()) + 1)):  # a segment's first rows: fewer
        rows = index[position == length]
        if rows.size:
            _medians(by_feature, rows - length, length, past, rows)
    return past


def detrend(values: np.ndarray, segment: np.ndarray, window: int) -> np.ndarray:
    """Values minus their trailing median (see :func:`trailing_median`); ``window`` 0 is a no-op."""
    if window <= 0:
        return values
    values = np.asarray(values, dtype=np.float64)
    columns = parts(values.shape[1], 1) if len(values) >= BLOCK else [slice(None)]
    medians = map_parts(lambda part: trailing_median(values[:, part], segment, window), columns)
    return values - np.concatenate(medians, axis=1)
