"""Principal component analysis as process plants monitor with it: Hotelling's T-squared on the
retained components plus the Q statistic (squared prediction error) of the residual.

Multivariate statistical process control (MSPC): the normal training rows, autoscaled, are
projected on the components that explain ``variance`` of their variance (or ``components`` of
them). T-squared measures how far a row lies inside that model, Q how far it lies off it (a
broken correlation). Both are divided by their training upper limit at ``confidence``:

- T-squared: k (n^2 - 1) / (n (n - k)) F(k, n - k), the limit for a new observation;
- Q: Box's approximation g chi2(h), g = theta2 / theta1, h = theta1^2 / theta2, theta_i the sums
  of the residual eigenvalues' i-th powers (Box 1954; it needs no care where the
  Jackson-Mudholkar formula's h0 turns negative).

The score is Yue and Qin's combined index T2 / T2_lim + Q / Q_lim (``combine="sum"``, 2001),
or the larger of the two ratios (``"max"``): 1 is a row at its limit. Each part splits exactly
over the sensors: T-squared by the complete decomposition c_f = z_f (P L^-1 P' z)_f (Alcala and
Qin 2009; a term can be negative where correlated sensors explain part of a deviation), Q by
the squared residual e_f^2; the score's contributions are the parts' contributions divided by
their limits (for ``max``, the larger part's). Without residual variance in training (every
direction retained) Q is left out.

The detector scores each window's last row, the row the label belongs to, as the Mahalanobis
detector does: flattening a 5 x 59 window would give 295 strongly autocorrelated columns, whose
covariance a few days of rows estimate poorly, and each sensor's contribution would be spread
over its lags. The limits are computed once at fit time (SciPy's F and chi-squared quantiles);
scoring is NumPy alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_rare_event.detectors.base import Detector, as_windows, normal
from lstm_rare_event.errors import UserError
from lstm_rare_event.files import Params
from lstm_rare_event.preprocess.windows import Windows

COMBINE = ("sum", "max")


@dataclass(frozen=True)
class PcaOptions:
    """How many components T-squared keeps and how the two statistics make one score.

    ``variance`` 0.95: the usual MSPC choice, a model of the sensors' correlated movement that
    leaves the last few percent (mostly noise) to Q; chosen on that reasoning, not on any test
    data. ``confidence`` 0.99: the limits' level, which only weighs T-squared against Q (the
    alarm threshold is chosen by ``threshold``'s rule).
    """

    components: int = 0  # 0: as many as explain ``variance`` of the training variance
    variance: float = 0.95
    combine: str = "sum"
    confidence: float = 0.99

    def __post_init__(self):
        if self.components < 0:
            raise UserError(f"--components must be 0 (use --variance) or more, got {self.components}")
        if not 0 < self.variance <= 1:
            raise UserError(f"--variance must be a share in (0, 1], got {self.variance:g}")
        if self.combine not in COMBINE:
            raise UserError(f"--combine {self.combine!r}: choose one of {', '.join(COMBINE)}")
        if not 0 < self.confidence < 1:
            raise UserError(f"--confidence must be between 0 and 1, got {self.confidence:g}")


class PcaDetector(Detector):
    name = "pca"
    Options = PcaOptions
    summary = ("Hotelling's T-squared on the principal components of the normal training rows plus the Q "
               "residual (squared prediction error) of each window's last row, each divided by its "
               "training upper limit, then summed (or the larger)")
    state_arrays = ("mean", "scale", "loadings", "eigenvalues", "residual_eigenvalues", "limits")

    def fit_windows(self, train: Windows, valid: Windows | None = None) -> "PcaDetector":
        from scipy import stats

        rows = np.asarray(normal(train).X[:, -1, :], dtype=np.float64)
        n = len(rows)
        if n < 3:
            none = " (no windows at all)" if len(train) == 0 else ""
            raise UserError(f"the pca detector needs at least 3 normal training windows, got {n}{none}")
        self.n_features_ = rows.shape[1]
        self.mean_ = rows.mean(axis=0)
        std = rows.std(axis=0, ddof=1)
        # A sensor constant in training: unscaled, so any later movement of it lands in Q.
        self.scale_ = np.where(std > 0, std, 1.0)
        z = (rows - self.mean_) / self.scale_
        eigenvalues, vectors = np.linalg.eigh(z.T @ z / (n - 1))
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues, vectors = np.maximum(eigenvalues[order], 0.0), vectors[:, order]
        k = self._retained(eigenvalues, n)
        self.loadings_, self.eigenvalues_ = vectors[:, :k], eigenvalues[:k]
        self.residual_eigenvalues_ = eigenvalues[k:]
        t2_limit = k * (n * n - 1) / (n * (n - k)) * stats.f.ppf(self.options.confidence, k, n - k)
        theta1, theta2 = self.residual_eigenvalues_.sum(), np.square(self.residual_eigenvalues_).sum()
        # No residual variance (every direction the training rows moved in is retained): Q is
        # rounding noise, and a limit of 0 leaves it out of the score.
        q_limit = theta2 / theta1 * stats.chi2.ppf(self.options.confidence, theta1 ** 2 / theta2) if theta2 > 0 else 0.0
        self.limits_ = np.array([t2_limit, q_limit], dtype=np.float64)
        self._prepare()
        return self

    def _retained(self, eigenvalues: np.ndarray, n: int) -> int:
        """k: the components asked for, or the fewest that explain ``variance``; at least 1 and
        fewer than the rows (the T-squared limit needs n > k)."""
        if self.options.components:
            k = self.options.components
            if k > len(eigenvalues):
                raise UserError(f"--components {k}: the data has only {len(eigenvalues)} features")
        else:
            total = eigenvalues.sum()
            share = np.cumsum(eigenvalues) / total if total > 0 else np.ones_like(eigenvalues)
            k = int(np.searchsorted(share, self.options.variance - 1e-12) + 1)
        return max(1, min(k, len(eigenvalues), n - 1))

    def _prepare(self) -> None:
        # The two F x F maps every row goes through: P L^-1 P' (T-squared) and I - P P' (residual).
        # A zero eigenvalue (a retained direction without variance) adds nothing instead of inf.
        inverse = np.divide(1.0, self.eigenvalues_, out=np.zeros_like(self.eigenvalues_),
                            where=self.eigenvalues_ > 0)
        self._t2_map = (self.loadings_ * inverse) @ self.loadings_.T
        self._residual_map = np.eye(self.n_features_) - self.loadings_ @ self.loadings_.T

    def statistics(self, windows) -> dict[str, np.ndarray]:
        """T-squared and Q of each window's last row (``windows``: as :meth:`explain` takes them), and their per-sensor contributions:
        ``t2`` (N,), ``q`` (N,), ``t2_contributions`` and ``q_contributions`` (N, F), each
        summing over the sensors to its statistic."""
        windows = as_windows(windows)
        self._check_windows(windows)
        z = (np.asarray(windows.X[:, -1, :], dtype=np.float64) - self.mean_) / self.scale_
        with np.errstate(over="ignore", invalid="ignore"):
            # One matrix-vector product per row: a row's rounding never depends on how many
            # rows are scored together (see the Mahalanobis detector).
            t2_contributions = z * (z[:, None, :] @ self._t2_map)[:, 0, :]
            residual = (z[:, None, :] @ self._residual_map)[:, 0, :]
            q_contributions = np.square(residual)
        return {"t2": t2_contributions.sum(axis=1), "q": q_contributions.sum(axis=1),
                "t2_contributions": t2_contributions, "q_contributions": q_contributions}

    def explain_windows(self, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
        s = self.statistics(windows)
        t2_limit, q_limit = self.limits_
        with np.errstate(over="ignore", invalid="ignore"):
            t2_part = s["t2_contributions"] / t2_limit
            q_part = s["q_contributions"] / q_limit if q_limit > 0 else np.zeros_like(t2_part)
            if self.options.combine == "sum":
                contributions = t2_part + q_part
            else:
                t2_wins = t2_part.sum(axis=1) >= q_part.sum(axis=1)
                contributions = np.where(t2_wins[:, None], t2_part, q_part)
            score = contributions.sum(axis=1)
        # Clipped at 0: rounding can leave T-squared a hair below it, and scores must not be negative.
        return np.maximum(score, 0.0), contributions

    def describe(self) -> dict:
        out = super().describe()
        if getattr(self, "limits_", None) is not None:
            retained = self.eigenvalues_.sum()
            out["pca"] = {"components": len(self.eigenvalues_),
                          "variance_explained": float(retained / (retained + self.residual_eigenvalues_.sum())),
                          "t2_limit": float(self.limits_[0]), "q_limit": float(self.limits_[1])}
        return out

    def state(self):
        values, arrays = super().state()
        return values, {**arrays, "mean": self.mean_, "scale": self.scale_, "loadings": self.loadings_,
                        "eigenvalues": self.eigenvalues_, "residual_eigenvalues": self.residual_eigenvalues_,
                        "limits": self.limits_}

    def set_state(self, values: Params, arrays, folder) -> None:
        super().set_state(values, arrays, folder)
        n = self.n_features_
        k = arrays["eigenvalues"].shape[0] if arrays["eigenvalues"].ndim == 1 else -1
        shapes = {"mean": (n,), "scale": (n,), "loadings": (n, k), "eigenvalues": (k,),
                  "residual_eigenvalues": (n - k,), "limits": (2,)}
        if k < 1 or any(arrays[key].shape != shape for key, shape in shapes.items()):
            raise UserError(f"{folder}: the saved components do not fit {n} features; {values.hint}")
        self.mean_, self.scale_, self.loadings_ = arrays["mean"], arrays["scale"], arrays["loadings"]
        self.eigenvalues_, self.residual_eigenvalues_ = arrays["eigenvalues"], arrays["residual_eigenvalues"]
        self.limits_ = arrays["limits"]
        self._prepare()
