"""Which options make the detectors work on SKAB's valve1 experiments, under SKAB's protocol
(issue 18, items 6 and 8): the study behind bench/skab_study.md.

SKAB's protocol (waico/SKAB, notebooks/LSTM_AE.ipynb and Conv_AE.ipynb, core/metrics.py): per
experiment, fit on the first 400 rows (anomaly-free), set the limit from the scores of those
rows (LSTM-AE: 1.5 x their 99th percentile; Conv-AE: 4/3 x the 99.9th), flag every later row;
point-wise F1, FAR and MAR over all experiments pooled. Here every row from row 400 on is judged
and a row without a full window is flagged 0. (SKAB's chp_score counts the 400 training rows
too, as true negatives when unflagged, which roughly halves the FAR it reports; both counts are
given.)

Built from the project's own parts: the Preprocessor (detrending, scaling on training rows,
clipping, windows that never span a gap) and the mahalanobis and lstm detectors. Hotelling's T²
with the Q (SPE) residual of a PCA is written here in NumPy until the pca detector exists. The
files are read with pandas as they are (the CSV reader cannot name SKAB's columns yet); a clock
step of 2 s in this 1-s data is not a gap, longer steps are (``--max-gap``).

Stages (each prints progress on stderr; scores are cached under bench/work/skab, never the data):

    python bench/skab_study.py [DATA] scores   # mahalanobis and T²+Q scores per row, per option set
    python bench/skab_study.py [DATA] lstm     # the autoencoders' scores (one training at a time)
    python bench/skab_study.py [DATA] report   # post-processing grid, metrics, bootstrap -> tables
    python bench/skab_study.py [DATA] pairs    # option sets against each other, paired by file
    python bench/skab_study.py [DATA] gaps     # judged rows left without a window, by lookback

``--only NAME,...`` limits a stage to some option sets; ``report`` keeps the results of the others.

DATA defaults to ../shared/data/skab/valve1 (beside the worktree). Only valve1 is ever read.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import HERE, ROOT

sys.path.insert(0, str(ROOT))

from lstm_rare_event import detectors  # noqa: E402
from lstm_rare_event.preprocess.csv import Table  # noqa: E402
from lstm_rare_event.preprocess.preprocessor import Preprocessor, PreprocessOptions  # noqa: E402

DATA = ROOT.parent / "shared/data/skab/valve1"
WORK = HERE / "work/skab"
TRAIN_ROWS = 400  # SKAB: fit on the first 400 rows of each experiment
VALID_SHARE = 0.1  # the autoencoder's early stopping: the last 10 % of the training windows (SKAB's VAL_SPLIT)
MAX_GAP = np.timedelta64(2, "s")  # a step up to 2 s is clock jitter in this 1-s data, not a gap
REPLICATES, SEED = 1000, 0
THERMAL = ("Temperature", "Thermocouple")
SKAB_Q, SKAB_FACTOR = 0.99, 1.5  # the LSTM-AE notebook's limit: 1.5 x q99 of the training scores


def log(message: str) -> None:
    print(f"[skab {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- data ------------------------------------------------------------------------------------
@dataclass
class Experiment:
    name: str
    table: Table


def read_experiments(folder: Path) -> list[Experiment]:
    """Every ``*.csv`` of ``folder`` as SKAB writes them: ';'-separated, a ``datetime`` column,
    the label ``anomaly`` (1 on every row of an interval); ``changepoint`` is dropped."""
    paths = sorted(folder.glob("*.csv"), key=lambda p: (len(p.stem), p.stem))
    if not paths:
        raise SystemExit(f"{folder}: no .csv files")
    out = []
    for path in paths:
        raw = pd.read_csv(path, sep=";", parse_dates=["datetime"]).drop(columns=["changepoint"])
        features = [c for c in raw.columns if c not in ("datetime", "anomaly")]
        out.append(Experiment(path.stem, Table(raw["datetime"].to_numpy().astype("datetime64[s]"),
                                               raw[features].to_numpy(np.float64), features,
                                               raw["anomaly"].to_numpy().astype(np.int8))))
    return out


# -- scores ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prep:
    lookback: int = 1
    detrend: int = 0
    clip: float = 10.0
    max_gap: bool = True  # False: today's CLI, where every step above the 1-s cadence is a gap
    drop: tuple[str, ...] = ()


def windows_of(table: Table, prep: Prep, scaler: bool = True):
    """The Preprocessor's windows over one experiment, its scaler fitted on the training rows;
    returns (windows, end row of each window, segment id per row); without ``scaler``, no windows."""
    if prep.drop:
        keep = [i for i, f in enumerate(table.features) if f not in prep.drop]
        table = Table(table.time, table.values[:, keep], [table.features[i] for i in keep], table.y)
    pre = Preprocessor(PreprocessOptions(shift=0, lookback=prep.lookback, drop=(), features=tuple(table.features),
                                         detrend=prep.detrend, clip=prep.clip))
    pre.fit_layout(table)
    if prep.max_gap:
        pre.interval_ = MAX_GAP  # what --max-gap will set: the longest step that is not a gap
    rows = pre.rows(table)
    ends = pre.window_ends(rows)
    if scaler is False:
        return None, ends, rows.window_segment
    pre.fit_scaler(rows, ends[ends < TRAIN_ROWS])
    return pre.windows(rows, ends), ends, rows.window_segment


def pca_scores(train: np.ndarray, X: np.ndarray, variance: float, combine: str) -> np.ndarray:
    """Hotelling's T² on the principal components that explain ``variance`` of the training
    rows, and Q (SPE), the squared residual off them; each divided by its training mean, then
    combined: "or" (the larger: either chart out of control) or "sum" (a combined index)."""
    mean = train.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.cov(train - mean, rowvar=False))
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.maximum(eigval[order], 0.0), eigvec[:, order]
    a = int(np.searchsorted(np.cumsum(eigval) / eigval.sum(), variance) + 1)
    a = min(a, len(eigval))
    P = eigvec[:, :a]

    def stats(rows):
        centred = rows - mean
        t = centred @ P
        t2 = (t**2 / np.maximum(eigval[:a], 1e-12)).sum(axis=1)
        q = ((centred - t @ P.T) ** 2).sum(axis=1)
        return t2, q

    t2_train, q_train = stats(train)
    t2, q = stats(X)
    t2 = t2 / t2_train.mean()
    q = q / q_train.mean() if a < len(eigval) and q_train.mean() > 0 else np.zeros_like(q)
    return np.maximum(t2, q) if combine == "or" else t2 + q


def experiment_scores(table: Table, prep: Prep, detector: str, params: dict) -> dict:
    """Per table row: the score of the window ending there (NaN where no window ends), and the
    row's gap-free segment."""
    windows, ends, segment = windows_of(table, prep)
    train_mask = ends < TRAIN_ROWS
    if detector == "pca":
        last = np.asarray(windows.X[:, -1, :], dtype=np.float64)
        s = pca_scores(last[train_mask], last, params["variance"], params["combine"])
    else:
        det = detectors.create(detector, **params)
        train = windows.subset(train_mask)
        if detector == "lstm":
            n_fit = int(round(len(train) * (1 - VALID_SHARE)))
            det.fit(train.subset(slice(0, n_fit)), train.subset(slice(n_fit, None)))
        else:
            det.fit(train)
        s = det.score(windows)
    score = np.full(len(table), np.nan)
    score[ends] = s
    return {"score": score, "segment": segment, "y": table.y.astype(np.int8)}


def base_configs() -> dict[str, tuple[str, Prep, dict]]:
    """The option sets whose scores are computed (post-processing is applied to them later)."""
    configs = {}
    for detrend, clip in itertools.product((0, 30, 120, 300, 600), (0.0, 10.0)):
        configs[f"mahalanobis d{detrend} c{clip:g}"] = ("mahalanobis", Prep(1, detrend, clip), {})
    # The two temperatures drift over every experiment; without them (not a recommendation: a
    # heating fault would show in them), to see what the drift costs.
    configs["mahalanobis d0 c10 no-temperatures"] = ("mahalanobis", Prep(1, 0, 10.0, drop=THERMAL), {})
    # Today's CLI defaults (lookback 5, detrend 30, clip 10, every 2-s step a gap), and the same
    # with 2-s steps tolerated: what the gap rule alone costs.
    configs["mahalanobis cli-today"] = ("mahalanobis", Prep(5, 30, 10.0, max_gap=False), {})
    configs["mahalanobis cli-today max-gap"] = ("mahalanobis", Prep(5, 30, 10.0), {})
    # The run: detrending off, lookback 10, every 2-s step still a gap.
    configs["mahalanobis L10 d0 gaps-today"] = ("mahalanobis", Prep(10, 0, 10.0, max_gap=False), {})
    # Clipping changes nothing here (rows beyond 10 sd are over any limit either way) and detrending
    # hides the level shifts (mahalanobis above): PCA is tried at clip 10 without detrending, and once with.
    for variance, combine in itertools.product((0.85, 0.9, 0.95, 0.99), ("or", "sum")):
        configs[f"pca d0 c10 v{variance} {combine}"] = ("pca", Prep(1, 0, 10.0), {"variance": variance, "combine": combine})
    configs["pca d30 c10 v0.9 or"] = ("pca", Prep(1, 30, 10.0), {"variance": 0.9, "combine": "or"})
    return configs


def lstm_configs() -> dict[str, tuple[str, Prep, dict]]:
    """Few, small and fast autoencoders (2 shared cores): SKAB's window of 10 rows, then one change
    at a time. Batches of 32 (SKAB's), as 360 windows would be one batch of the default 512."""
    base = {"encoder": "32,16", "epochs": 100, "batch_size": 32, "patience": 5, "seed": 123}
    return {
        "lstm L10 d0": ("lstm", Prep(10, 0, 10.0), base),
        "lstm L30 d0": ("lstm", Prep(30, 0, 10.0), base),
        "lstm L10 d0 last": ("lstm", Prep(10, 0, 10.0), {**base, "error": "last"}),
        "lstm L10 d0 enc16": ("lstm", Prep(10, 0, 10.0), {**base, "encoder": "16"}),
        "lstm L10 d30": ("lstm", Prep(10, 30, 10.0), base),
        "lstm L10 d0 no-temperatures": ("lstm", Prep(10, 0, 10.0, drop=THERMAL), base),
        "lstm L5 cli-today": ("lstm", Prep(5, 30, 10.0, max_gap=False), {**base}),
    }


def compute_scores(experiments, configs, which: set[str] | None) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    for name, (detector, prep, params) in configs.items():
        if which and name not in which:
            continue
        path = WORK / (name.replace(" ", "_") + ".npz")
        if path.exists():
            continue
        start = time.perf_counter()
        parts = []
        for e in experiments:
            parts.append(experiment_scores(e.table, prep, detector, params))
            if detector == "lstm":
                log(f"{name}: experiment {e.name} done, {time.perf_counter() - start:.0f} s")
        np.savez(path, **{f"{key}_{i}": part[key] for i, part in enumerate(parts) for key in part})
        log(f"{name}: {time.perf_counter() - start:.1f} s")


def load_scores(name: str, n: int) -> list[dict] | None:
    path = WORK / (name.replace(" ", "_") + ".npz")
    if not path.exists():
        return None
    data = np.load(path)
    return [{key: data[f"{key}_{i}"] for key in ("score", "segment", "y")} for i in range(n)]


# -- post-processing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Post:
    smooth: str = "none"  # "none", "mean" or "median": of the score over the last k scored rows
    k_smooth: int = 1
    rule: str = "quantile"  # "quantile": factor x q-quantile of the training rows' scores; "evt"
    q: float = SKAB_Q
    factor: float = SKAB_FACTOR
    risk: float = 1e-3  # evt: the tail probability the limit is set at
    consecutive: int = 1  # a row raises an alarm when it and the k - 1 rows before it are over the limit

    def label(self) -> str:
        parts = []
        if self.smooth != "none":
            parts.append(f"{self.smooth} {self.k_smooth}")
        parts.append(f"{self.factor:g} x q{self.q:g}" if self.rule == "quantile" else f"evt {self.risk:g}")
        if self.consecutive > 1:
            parts.append(f"{self.consecutive} in a row")
        return ", ".join(parts)


def smoothed(score: np.ndarray, segment: np.ndarray, how: str, k: int) -> np.ndarray:
    """Trailing (causal) mean or median over the last ``k`` rows of the same segment that have a
    score; rows that have fewer use those they have."""
    if how == "none" or k <= 1:
        return score
    frame = pd.DataFrame({"s": score, "g": segment})
    rolled = frame.groupby("g")["s"].rolling(k, min_periods=1)
    out = (rolled.mean() if how == "mean" else rolled.median()).reset_index(level=0, drop=True).sort_index()
    return np.where(np.isnan(score), np.nan, out.to_numpy())


def evt_threshold(train: np.ndarray, risk: float, init_q: float = 0.9) -> float:
    """Peaks over threshold (SPOT, Siffer et al. 2017): a generalized Pareto tail fitted to the
    training scores above their ``init_q`` quantile, read at probability ``risk``. Fitted by
    probability-weighted moments (Hosking and Wallis 1987), which are sound for the ~40
    exceedances that 400 training rows give, in closed form (SPOT's maximum likelihood needs a
    search per fit)."""
    t = np.quantile(train, init_q)
    excess = np.sort(train[train > t] - t)
    if len(excess) < 5 or excess.mean() <= 0:
        return float(train.max())
    a0 = excess.mean()
    a1 = np.mean(excess * (1 - (np.arange(1, len(excess) + 1) - 0.35) / len(excess)))
    shape = 2 - a0 / (a0 - 2 * a1)  # xi; Hosking's k is -xi
    sigma = 2 * a0 * a1 / (a0 - 2 * a1)
    ratio = risk * len(train) / len(excess)
    if abs(shape) < 1e-8:
        return float(t - sigma * np.log(ratio))
    return float(t + sigma / shape * (ratio ** (-shape) - 1))


def consecutive(flags: np.ndarray, segment: np.ndarray, k: int) -> np.ndarray:
    """Rows whose last ``k`` rows (itself included, same segment) are all flagged."""
    if k <= 1:
        return flags
    index = np.arange(len(flags))
    # The run of flagged rows ending at a row starts after the last unflagged row, or at the segment's start.
    last_clear = np.maximum.accumulate(np.where(flags, -1, index))
    before_segment = np.searchsorted(segment, segment) - 1
    return flags & (index - np.maximum(last_clear, before_segment) >= k)


def counts(parts: list[dict], post: Post, cache: dict | None = None) -> np.ndarray:
    """(files, 6): TP, FP, FN, TN over the judged rows (row 400 on), then FP and TN over the
    training rows (SKAB's count includes them)."""
    out = np.zeros((len(parts), 6), dtype=np.int64)
    for i, part in enumerate(parts):
        key = (i, post.smooth, post.k_smooth)
        if cache is not None and key in cache:
            s = cache[key]
        else:
            s = smoothed(part["score"], part["segment"], post.smooth, post.k_smooth)
            if cache is not None:
                cache[key] = s
        n = len(s)
        is_train = np.arange(n) < TRAIN_ROWS
        limit_key = (*key, post.rule, post.q, post.factor, post.risk)
        if cache is not None and limit_key in cache:
            limit = cache[limit_key]
        else:
            train = s[is_train & ~np.isnan(s)]
            if post.rule == "quantile":
                limit = post.factor * np.quantile(train, post.q)
            else:
                limit = evt_threshold(train, post.risk)
            if cache is not None:
                cache[limit_key] = limit
        flags = np.nan_to_num(s, nan=-np.inf) > limit
        flags = consecutive(flags, part["segment"], post.consecutive)
        y = part["y"] == 1
        j = ~is_train
        out[i] = [(flags & y & j).sum(), (flags & ~y & j).sum(), (~flags & y & j).sum(), (~flags & ~y & j).sum(),
                  (flags & is_train).sum(), (~flags & is_train).sum()]
    return out


def metrics(c: np.ndarray) -> dict:
    """Point-wise F1, FAR, MAR (%) from summed counts; ``skab_*``: counted over every row, the
    training rows included, as SKAB's chp_score does."""
    tp, fp, fn, tn, fp_train, tn_train = c.sum(axis=0)
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    fp_all, tn_all = fp + fp_train, tn + tn_train
    return {"f1": f1, "far": 100 * fp / max(fp + tn, 1), "mar": 100 * fn / max(fn + tp, 1),
            "skab_f1": 2 * tp / max(2 * tp + fp_all + fn, 1), "skab_far": 100 * fp_all / max(fp_all + tn_all, 1)}


def bootstrap(c: np.ndarray, n: int = REPLICATES, seed: int = SEED) -> dict:
    """95 % percentile intervals, experiments (files) resampled with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(c), size=(n, len(c)))
    s = c[draws].sum(axis=1)  # (n, 6)
    tp, fp, fn, tn = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
    reps = {"f1": 2 * tp / np.maximum(2 * tp + fp + fn, 1), "far": 100 * fp / np.maximum(fp + tn, 1),
            "mar": 100 * fn / np.maximum(fn + tp, 1)}
    return {k: np.percentile(v, [2.5, 97.5]).tolist() for k, v in reps.items()}


def paired_f1(a: np.ndarray, b: np.ndarray, n: int = REPLICATES, seed: int = SEED) -> list[float]:
    """F1(a) - F1(b): the estimate and its 95 % interval, the same files drawn for both."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(a), size=(n, len(a)))

    def f1(c):
        s = c[draws].sum(axis=1)
        return 2 * s[:, 0] / np.maximum(2 * s[:, 0] + s[:, 1] + s[:, 2], 1)

    return [metrics(a)["f1"] - metrics(b)["f1"], *np.percentile(f1(a) - f1(b), [2.5, 97.5]).tolist()]


def post_grid() -> list[Post]:
    smooths = [("none", 1)] + [(how, k) for how in ("mean", "median") for k in (5, 10, 20, 30)]
    rules = [("quantile", q, f, Post.risk) for q in (0.95, 0.99, 0.995, 1.0) for f in (1.0, 1.25, 1.5, 2.0)]
    rules += [("evt", SKAB_Q, 1.0, r) for r in (1e-3, 1e-4)]
    return [Post(sm, k, rule, q, f, risk, cons) for (sm, k), (rule, q, f, risk), cons
            in itertools.product(smooths, rules, (1, 3, 5, 10))]


# A few post-processings read for every option set, to pick one semantics for all detectors.
COMMON = [Post(), Post(consecutive=5), Post("mean", 10), Post("mean", 30), Post("median", 30),
          Post("mean", 30, factor=2.0, q=1.0), Post("median", 30, factor=2.0, q=1.0),
          Post("mean", 30, "evt", factor=1.0, risk=1e-4)]


# The smoothing measured for every option set beside SKAB's rule (bench/skab_study.md): a trailing
# median of the score over 30 rows, an alarm above twice the largest smoothed training score.
RECOMMENDED = Post("median", 30, factor=2.0, q=1.0)


# Each knob's ordered values: a neighbour of an option set changes one knob by one step.
KNOBS = {
    "k_smooth": (1, 5, 10, 20, 30),
    "q": (0.95, 0.99, 0.995, 1.0),
    "factor": (1.0, 1.25, 1.5, 2.0),
    "consecutive": (1, 3, 5, 10),
}


def neighbours(post: Post, grid: set[Post]) -> list[Post]:
    out = []
    for knob, values in KNOBS.items():
        here = getattr(post, knob)
        if here not in values:
            continue
        i = values.index(here)
        for j in (i - 1, i + 1):
            if 0 <= j < len(values):
                changes = {knob: values[j]}
                if knob == "k_smooth" and values[j] == 1:
                    changes["smooth"] = "none"
                if knob == "k_smooth" and here == 1:
                    continue  # from no smoothing, mean and median are both neighbours: skip both
                candidate = Post(**{**post.__dict__, **changes})
                if candidate in grid:
                    out.append(candidate)
    return out


def robust_choice(table: dict[Post, np.ndarray], far: str = "skab_far", far_cap: float = 20.0, files=None) -> Post:
    """The option set with the best mean F1 over itself and its one-step neighbours, among those
    whose FAR (``far``: as SKAB counts it, or over the judged rows) is at most ``far_cap`` %: a
    plateau, not a peak."""
    grid = set(table)
    pick = (lambda c: c) if files is None else (lambda c: c[files])
    m = {p: metrics(pick(c)) for p, c in table.items()}
    best, best_value = None, -1.0
    for p, v in m.items():
        if v[far] > far_cap:
            continue
        around = [m[n]["f1"] for n in neighbours(p, grid)]
        value = np.mean([v["f1"], *around])
        if value > best_value:
            best, best_value = p, value
    return best


def leave_one_out(table: dict[Post, np.ndarray], n_files: int, far: str) -> np.ndarray:
    """Counts per file when the options are chosen on the other files: what the choice is worth
    on an experiment it did not see."""
    any_counts = next(iter(table.values()))
    out = np.zeros_like(any_counts)
    for i in range(n_files):
        others = np.array([j for j in range(n_files) if j != i])
        chosen = robust_choice(table, far, files=others)
        out[i] = table[chosen][i]
    return out


# -- report ------------------------------------------------------------------------------------
def row(name: str, options: str, c: np.ndarray) -> dict:
    m, ci = metrics(c), bootstrap(c)
    return {"set": name, "options": options, **{k: float(v) for k, v in m.items()},
            **{f"{k}_ci": v for k, v in ci.items()}}


def fmt(r: dict) -> str:
    return (f"| {r['set']} | {r['options']} | {r['f1']:.3f} [{r['f1_ci'][0]:.2f}, {r['f1_ci'][1]:.2f}] "
            f"| {r['far']:.1f} [{r['far_ci'][0]:.1f}, {r['far_ci'][1]:.1f}] "
            f"| {r['mar']:.1f} [{r['mar_ci'][0]:.1f}, {r['mar_ci'][1]:.1f}] | {r['skab_f1']:.3f} | {r['skab_far']:.1f} |")


HEADER = ("| option set | post-processing | F1 [95 % CI] | FAR % [95 % CI] | MAR % [95 % CI] | F1 (SKAB count) "
          "| FAR % (SKAB count) |\n|---|---|---|---|---|---|---|")


def report(experiments, configs) -> None:
    n = len(experiments)
    grid = post_grid()
    skab = Post()
    results = {}
    start = time.perf_counter()
    for name in configs:
        parts = load_scores(name, n)
        if parts is None:
            log(f"{name}: no scores yet, skipped")
            continue
        cache: dict = {}
        table = {p: counts(parts, p, cache) for p in grid}
        r = {"skab_rule": row(name, skab.label(), table[skab]),
             "recommended": row(name, RECOMMENDED.label(), table[RECOMMENDED]),
             "recommended_neighbours": [row(name, p.label(), table[p]) for p in neighbours(RECOMMENDED, set(table))],
             "recommended_minus_skab_rule": paired_f1(table[RECOMMENDED], table[skab]),
             "skab_rule_neighbours": [row(name, p.label(), table[p]) for p in neighbours(skab, set(table))]}
        for far in ("skab_far", "far"):
            chosen = robust_choice(table, far)
            if chosen is None:
                continue
            r[f"chosen_{far}"] = row(name, chosen.label(), table[chosen])
            r[f"chosen_{far}_post"] = chosen.__dict__
            r[f"chosen_{far}_minus_skab_rule"] = paired_f1(table[chosen], table[skab])
            r[f"neighbours_{far}"] = [row(name, p.label(), table[p]) for p in neighbours(chosen, set(table))]
            r[f"leave_one_out_{far}"] = row(name, "chosen on the other 15 files", leave_one_out(table, n, far))
        r["common"] = {post.label(): metrics(table[post] if post in table else counts(parts, post, cache))
                       for post in COMMON}
        unscored = [np.isnan(p["score"][TRAIN_ROWS:]).sum() for p in parts]
        r["unscored_judged_share"] = float(np.sum(unscored) / np.sum([len(p["score"]) - TRAIN_ROWS for p in parts]))
        results[name] = r
        chosen = r.get("chosen_skab_far")
        log(f"{name}: SKAB rule F1 {r['skab_rule']['f1']:.3f}; " + (
            f"chosen {chosen['options']} F1 {chosen['f1']:.3f} FAR {chosen['skab_far']:.1f} "
            f"(leave-one-out F1 {r['leave_one_out_skab_far']['f1']:.3f})" if chosen else "no option set within the FAR cap")
            + f"; {time.perf_counter() - start:.0f} s")
    # Stages run in pieces: results of option sets not run now are kept.
    path = WORK / "results.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}
    everything = {**base_configs(), **lstm_configs()}
    merged = {name: results.get(name, earlier.get(name)) for name in everything if name in results or name in earlier}
    path.write_text(json.dumps(merged, indent=1, default=float))
    text = tables(merged)
    (WORK / "tables.md").write_text(text)
    print(text)


def tables(results: dict) -> str:
    lines = []

    def section(title, keys):
        lines.append(f"\n### {title}\n")
        lines.append(HEADER)
        for r in results.values():
            for key in keys:
                entries = r.get(key, [])
                for entry in entries if isinstance(entries, list) else [entries]:
                    lines.append(fmt(entry))

    section("SKAB's rule (1.5 x q99 of the training rows' scores), and the post-processing chosen with "
            "FAR <= 20 % as SKAB counts it", ("skab_rule", "chosen_skab_far"))
    section("The recommended post-processing for every option set", ("recommended",))
    section("Chosen with FAR <= 20 % of the judged normal rows", ("chosen_far",))
    section("Leave one experiment out (FAR as SKAB counts): chosen on 15 files, judged on the 16th",
            ("leave_one_out_skab_far",))
    section("Leave one experiment out (FAR of the judged rows)", ("leave_one_out_far",))
    section("Neighbours of each choice (FAR as SKAB counts): one knob one step", ("chosen_skab_far", "neighbours_skab_far"))
    lines.append("\n### Fixed post-processings for every option set: F1 / FAR % as SKAB counts / FAR % of judged rows\n")
    lines.append("| option set | " + " | ".join(p.label() for p in COMMON) + " |")
    lines.append("|---|" + "---|" * len(COMMON))
    for name, r in results.items():
        if "common" in r:
            cells = [r["common"][p.label()] for p in COMMON]
            lines.append(f"| {name} | " + " | ".join(f"{c['f1']:.3f} / {c['skab_far']:.0f} / {c['far']:.0f}"
                                                     for c in cells) + " |")
    section("Neighbours of SKAB's rule", ("skab_rule", "skab_rule_neighbours"))
    section("Neighbours of the median 30, 2 x max post-processing", ("recommended", "recommended_neighbours"))
    lines.append("\n### F1 minus F1 of SKAB's rule, paired by file: the recommended post-processing, and the one "
                 "chosen per option set (FAR as SKAB counts)\n")
    lines.append("| option set | recommended [95 % CI] | chosen [95 % CI] |\n|---|---|---|")
    show = lambda d: f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]" if d else "none within the FAR cap"  # noqa: E731
    for name, r in results.items():
        lines.append(f"| {name} | {show(r.get('recommended_minus_skab_rule'))} "
                     f"| {show(r.get('chosen_skab_far_minus_skab_rule'))} |")
    lines.append("\n### Judged rows without a score (no full window)\n")
    lines.append("| option set | unscored share |\n|---|---|")
    for name, r in results.items():
        lines.append(f"| {name} | {100 * r['unscored_judged_share']:.1f} % |")
    return "\n".join(lines) + "\n"


# Option sets compared under SKAB's rule, the same files drawn for both: (a, b) reads "a - b".
PAIRS = [("lstm L10 d0 last", "lstm L10 d0"), ("lstm L30 d0", "lstm L10 d0"), ("lstm L10 d0", "mahalanobis d0 c10"),
         ("lstm L10 d0 last", "mahalanobis d0 c10"), ("pca d0 c10 v0.99 or", "pca d0 c10 v0.85 or"),
         ("lstm L10 d0 no-temperatures", "lstm L10 d0"), ("mahalanobis d0 c10 no-temperatures", "mahalanobis d0 c10"),
         ("lstm L10 d0 enc16", "lstm L10 d0"), ("lstm L10 d30", "lstm L10 d0")]


def paired_sets(n_files: int, n: int = REPLICATES, seed: int = SEED) -> str:
    """F1 and FAR (as SKAB counts) differences between option sets under SKAB's rule."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_files, size=(n, n_files))

    def reps(c):
        tp, fp, fn, tn, fp_train, tn_train = c[draws].sum(axis=1).T
        far = 100 * (fp + fp_train) / np.maximum(fp + fp_train + tn + tn_train, 1)
        return 2 * tp / np.maximum(2 * tp + fp + fn, 1), far

    lines = ["| a - b | F1 [95 % CI] | FAR % as SKAB counts [95 % CI] |", "|---|---|---|"]
    for a, b in PAIRS:
        parts_a, parts_b = load_scores(a, n_files), load_scores(b, n_files)
        if parts_a is None or parts_b is None:
            continue
        ca, cb = counts(parts_a, Post()), counts(parts_b, Post())
        (fa, ra), (fb, rb) = reps(ca), reps(cb)
        ma, mb = metrics(ca), metrics(cb)
        f_lo, f_hi = np.percentile(fa - fb, [2.5, 97.5])
        r_lo, r_hi = np.percentile(ra - rb, [2.5, 97.5])
        lines.append(f"| {a} - {b} | {ma['f1'] - mb['f1']:+.3f} [{f_lo:+.3f}, {f_hi:+.3f}] "
                     f"| {ma['skab_far'] - mb['skab_far']:+.1f} [{r_lo:+.1f}, {r_hi:+.1f}] |")
    return "\n".join(lines) + "\n"


def unscored_by_lookback(experiments) -> str:
    """Judged rows that get no window: today (every step above the 1-s cadence a gap) and with
    2-s steps tolerated, by lookback. No detector needed."""
    lines = ["| lookback | judged rows unscored, every 2-s step a gap (today) | training windows (today) "
             "| judged rows unscored, 2-s steps tolerated |", "|---|---|---|---|"]
    for lookback in (1, 5, 10, 30, 60):
        shares = []
        for max_gap in (False, True):
            judged = missing = trained = 0
            for e in experiments:
                _, ends, _ = windows_of(e.table, Prep(lookback, 0, 10.0, max_gap=max_gap), scaler=False)
                scored = np.zeros(len(e.table), dtype=bool)
                scored[ends] = True
                judged += len(scored) - TRAIN_ROWS
                missing += int((~scored[TRAIN_ROWS:]).sum())
                trained += int((ends < TRAIN_ROWS).sum())
            shares.append((100 * missing / judged, trained))
        lines.append(f"| {lookback} | {shares[0][0]:.1f} % | {shares[0][1]} | {shares[1][0]:.1f} % |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DATA, help="folder of SKAB valve1 .csv files")
    parser.add_argument("stage", choices=("scores", "lstm", "report", "gaps", "pairs"), help="scores: mahalanobis and "
                        "pca; lstm: the autoencoders (one training at a time); report: the grid and the tables; "
                        "gaps: judged rows left without a window, by lookback; pairs: option sets compared")
    parser.add_argument("--only", default="", help="comma-separated option set names (default: all of the stage)")
    args = parser.parse_args(argv)
    if "valve1" not in args.data.resolve().parts:
        raise SystemExit("this study reads SKAB's valve1 experiments only; the others are a held-out check")
    experiments = read_experiments(args.data)
    log(f"{len(experiments)} experiments from {args.data}")
    which = set(filter(None, args.only.split(",")))
    if args.stage == "scores":
        compute_scores(experiments, base_configs(), which)
    elif args.stage == "lstm":
        compute_scores(experiments, lstm_configs(), which)
    elif args.stage == "pairs":
        text = paired_sets(len(experiments))
        (WORK / "pairs.md").write_text(text)
        print(text)
    elif args.stage == "gaps":
        text = unscored_by_lookback(experiments)
        (WORK / "gaps.md").write_text(text)
        print(text)
    else:
        report(experiments, {**base_configs(), **lstm_configs()} if not which else
               {k: v for k, v in {**base_configs(), **lstm_configs()}.items() if k in which})


if __name__ == "__main__":
    main()
