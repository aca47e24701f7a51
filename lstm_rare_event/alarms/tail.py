"""The upper tail of normal scores: peaks over threshold with a generalized Pareto fit.

The method of SPOT (Siffer et al., "Anomaly detection in streams with extreme value theory",
KDD 2017): above a high empirical quantile ``t`` of the normal scores (the initial threshold),
the excesses ``Y = score - t`` follow a generalized Pareto distribution (shape ``gamma``,
scale ``sigma``) for nearly any score distribution (Pickands-Balkema-de Haan). Fitted by
maximum likelihood, the tail gives the score a normal window exceeds with probability ``risk``,

    z = t + (sigma / gamma) * ((risk * n / n_t) ** -gamma - 1)     (gamma = 0: t - sigma * log(risk * n / n_t))

with ``n`` normal scores of which ``n_t`` exceed ``t``. It extrapolates: a risk far below 1/n
gives a threshold beyond the largest score seen, which an empirical quantile cannot.

The fit follows Grimshaw's reduction, as SPOT does: with ``theta = gamma / sigma``, the
likelihood maximised over ``gamma`` for a given ``theta`` has ``gamma(theta) = mean(log(1 +
theta * Y))``, leaving one variable. That profile is maximised on a log-spaced grid and refined
by golden-section search, in NumPy: ``score`` imports the threshold rules and must start fast
(no SciPy). Shapes below -1 are excluded: there the likelihood has no maximum (it grows without
bound as the scale approaches the largest excess).

NumPy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lstm_rare_event.errors import UserError

# The initial threshold's quantile, as in SPOT; lowered for few scores so that at least
# MIN_PEAKS excesses remain to fit (libspot's advice: at least 10).
LEVEL = 0.98
MIN_PEAKS = 10
# The lowest shape fitted (see the module docstring).
MIN_SHAPE = -1.0


@dataclass(frozen=True)
class Tail:
    """A fitted tail: the initial threshold, the GPD shape and scale, and the counts."""

    threshold: float  # t
    shape: float  # gamma
    scale: float  # sigma
    n: int  # normal scores fitted
    peaks: int  # n_t: scores above t

    def quantile(self, risk: float) -> float:
        """The score a normal window exceeds with probability ``risk``."""
        r = risk * self.n / self.peaks
        if self.shape == 0:
            return self.threshold - self.scale * math.log(r)
        return self.threshold + self.scale / self.shape * (r ** -self.shape - 1)

    def as_dict(self) -> dict:
        return {"initial_threshold": self.threshold, "shape": self.shape, "scale": self.scale, "n": self.n,
                "peaks": self.peaks}


def _profile(excess: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log-likelihood, gamma) of the GPD at each ``theta = gamma / sigma``, gamma profiled out;
    theta = 0 is the exponential limit."""
    n = excess.size
    theta = np.atleast_1d(theta).astype(np.float64)
    logs = np.log1p(theta[:, None] * excess[None, :])  # (T, n)
    total = logs.sum(axis=1)
    gamma = total / n
    ll = np.full(theta.shape, -np.inf)
    nonzero = theta != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = gamma[nonzero] / theta[nonzero]
        ll[nonzero] = -n * np.log(sigma) - (1 + 1 / gamma[nonzero]) * total[nonzero]
    mean = excess.mean()
    ll[~nonzero] = -n * math.log(mean) - n
    gamma[~nonzero] = 0.0
    ll[~np.isfinite(ll) | (gamma < MIN_SHAPE)] = -np.inf
    return ll, gamma


def fit_gpd(excess) -> tuple[float, float]:
    """(shape, scale) of a generalized Pareto distribution fitted by maximum likelihood to the
    positive ``excess`` values."""
    y = np.asarray(excess, dtype=np.float64)
    if y.size < 2 or not np.all(y > 0) or not np.isfinite(y).all():
        raise ValueError("fit_gpd needs at least two positive finite excesses")
    top, mean = y.max(), y.mean()
    # theta ranges over (-1/max(y), inf): 1 + theta * y > 0 for every excess.
    steps = np.geomspace(1e-8, 1e4, 400) / mean
    negative = -(1 - np.geomspace(1e-8, 1, 200)[::-1][:-1]) / top  # approaching -1/top
    grid = np.unique(np.concatenate([negative, [0.0], steps]))
    ll, _ = _profile(y, grid)
    best = int(np.argmax(ll))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
    # Golden-section search between the best point's neighbours: the profile is smooth there.
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    for _ in range(100):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        lc, ld = _profile(y, np.array([c, d]))[0]
        if lc >= ld:
            b = d
        else:
            a = c
    candidates = np.array([grid[best], (a + b) / 2])
    lls, gammas = _profile(y, candidates)
    pick = int(np.argmax(lls))
    theta, gamma = float(candidates[pick]), float(gammas[pick])
    if theta == 0:
        return 0.0, float(mean)
    return gamma, gamma / theta


def _peaks(s: np.ndarray) -> tuple[float, np.ndarray, float]:
    """(initial threshold, excesses over it, its level) of the sorted scores ``s``."""
    n = s.size
    at = min(int(LEVEL * n), n - MIN_PEAKS - 1)  # MIN_PEAKS scores above it, unless tied
    t = float(s[at])
    return t, s[s > t] - t, at / n


def fittable(scores) -> bool:
    """Whether :func:`fit_tail` can fit ``scores``: enough of them, and spread in their tail."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    return s.size >= 2 * MIN_PEAKS and bool(np.isfinite(s).all()) and _peaks(s)[1].size >= 2


def fit_tail(scores, what: str = "normal scores") -> Tail:
    """The tail of ``scores`` (normal windows' scores) above their LEVEL quantile, lowered so
    that MIN_PEAKS scores exceed it; refused when there are too few scores or no spread."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if not np.isfinite(s).all():
        raise UserError(f"{int((~np.isfinite(s)).sum())} {what} are not finite numbers")
    if s.size < 2 * MIN_PEAKS:
        raise UserError(f"a tail fit needs at least {2 * MIN_PEAKS} {what}, got {s.size}")
    t, excess, level = _peaks(s)
    if excess.size < 2:
        raise UserError(f"the {what} have too few distinct large values for a tail fit "
                        f"({excess.size} above their {level:.3g} quantile {t:g})")
    shape, scale = fit_gpd(excess)
    return Tail(threshold=t, shape=shape, scale=scale, n=int(s.size), peaks=int(excess.size))
