"""The pca detector's options on SKAB valve1 (issue 18, items 5 and 8): which PcaOptions make
T-squared + Q work there, every variant tried reported.

`python bench/skab_pca.py` runs examples/skab/Makefile once per option set (DETECTOR=pca,
TRAIN=the set; everything else the Makefile's defaults) into bench/work/skab-pca-NAME, reads
each results.json (evaluate-scores), and writes bench/skab_pca.md and bench/skab_pca.json. Each
set is held against the Makefile's pca default (``--variance 0.99``) as a paired difference:
the same resampled experiments for both (evaluate-scores' draws, seed 0), so an interval that
holds 0 is "no difference". Only valve1 is read (bench/skab.py's DATA); a set whose results
are already in its folder with the same options is not rerun (make decides).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from skab import ABOVE, DATA, HERE, WORK, log, run_make
from lstm_rare_event.alarms.bootstrap import percentile_interval, pooled_replicates
from lstm_rare_event.steps.evaluate_scores import COUNTS, REPLICATES, SEED

BASELINE = "--variance 0.99"
# Every set tried, chosen before any was measured (`--components 7` was run first, alone, to time
# a set). A set takes 4-5 minutes on 2 shared cores: "max" was tried at two component counts, not
# at every one (cut for time after the variance sets, before any "max" set had run).
VARIANTS = [
    ("the Makefile's default: all 8 components on valve1, so T-squared alone", BASELINE),
    ("PcaOptions' default variance", "--variance 0.95"),
    ("variance 0.9", "--variance 0.9"),
    ("SKAB's notebook: variance 0.85", "--variance 0.85"),
    *[(f"{k} component{'s' * (k > 1)}, sum", f"--components {k}") for k in range(1, 8)],
    *[(f"{k} components, max", f"--components {k} --combine max") for k in (4, 7)],
]
# Added after the sets above were measured, around the best of them (3 components): the limits'
# confidence, which only weighs T-squared against Q. Chosen on the results, so read with care.
AROUND_BEST = [
    ("3 components, confidence 0.95 (after the first sets)", "--components 3 --confidence 0.95"),
    ("3 components, confidence 0.999 (after the first sets)", "--components 3 --confidence 0.999"),
]
BAR = ABOVE["pca"][1]


def slug(train: str) -> str:
    return train.replace("--", "").replace(" ", "-")


def paired(counts: np.ndarray, base: np.ndarray) -> dict:
    """The set's F1 and FAR minus the baseline's, on the same resampled experiments."""
    a, b = pooled_replicates(counts, REPLICATES, SEED), pooled_replicates(base, REPLICATES, SEED)
    return {name: percentile_interval(a[name] - b[name]) for name in ("f1", "far")}


def counts_of(results: dict, way: str) -> np.ndarray:
    return np.array([[e[way][k] for k in COUNTS] for e in results["per_experiment"]])


def measure(variants) -> list[dict]:
    rows = []
    for label, train in variants:
        out = WORK / f"skab-pca-{slug(train)}"
        m = run_make("pca", out, train)
        # How many components each experiment's fit kept (train.json: the detector's description).
        kept = [json.loads(p.read_text())["detector"]["pca"]["components"] for p in out.glob("runs/*/train.json")]
        rows.append({"label": label, "train": train, "components": [min(kept), max(kept)],
                     "results": m["results"]})
    return rows


def table(rows: list[dict], base: dict) -> list[str]:
    lines = ["| option set (`train --detector pca ...`) | components kept | F1 [95 % CI] | F1 - default [95 % CI] | "
             "FAR % judged [CI] | FAR % as SKAB counts | MAR % | FAR judged - default, points [CI] |",
             "|---|---|---|---|---|---|---|---|"]
    base_all, base_judged = counts_of(base["results"], "all_rows"), counts_of(base["results"], "judged")
    for row in rows:
        r = row["results"]
        a, j = r["all_rows"], r["judged"]
        d_f1 = paired(counts_of(r, "all_rows"), base_all)["f1"]
        d_far = paired(counts_of(r, "judged"), base_judged)["far"]
        same = row["train"] == BASELINE
        verdict = "-" if same else (f"{a['f1'] - base['results']['all_rows']['f1']:+.3f} "
                                    f"[{d_f1[0]:+.3f}, {d_f1[1]:+.3f}]"
                                    + (" no difference" if d_f1[0] <= 0 <= d_f1[1] else ""))
        far = "-" if same else f"{(j['far'] - base['results']['judged']['far']) * 100:+.1f} " \
                               f"[{d_far[0] * 100:+.1f}, {d_far[1] * 100:+.1f}]"
        low, high = row["components"]
        lines.append(f"| {row['label']}: `{row['train']}` | {low if low == high else f'{low}-{high}'} | {a['f1']:.3f} [{a['f1_interval'][0]:.2f}, "
                     f"{a['f1_interval'][1]:.2f}] | {verdict} | {j['far'] * 100:.1f} [{j['far_interval'][0] * 100:.1f}, "
                     f"{j['far_interval'][1] * 100:.1f}] | {a['far'] * 100:.1f} | {a['mar'] * 100:.1f} | {far} |")
    return lines


def main() -> int:
    if not DATA.is_dir():
        print(f"bench skab_pca: SKAB's valve1 folder is needed at {DATA}; set SKAB_DIR to it", file=sys.stderr)
        return 2
    rows = measure(VARIANTS + AROUND_BEST)
    base = next(r for r in rows if r["train"] == BASELINE)
    best = max(rows, key=lambda r: r["results"]["all_rows"]["f1"])
    above = [f"`{r['train']}`" for r in rows if r["results"]["all_rows"]["f1"] > BAR]
    base_all = counts_of(base["results"], "all_rows")
    better = [f"`{r['train']}`" for r in rows if paired(counts_of(r["results"], "all_rows"), base_all)["f1"][0] > 0]
    text = "\n".join([
        "# The pca detector's options on SKAB valve1",
        "",
        "`python bench/skab_pca.py` (module docstring): each set through "
        "`make -f examples/skab/Makefile SKAB=../shared/data/skab/valve1 OUT=bench/work/skab-pca-NAME DETECTOR=pca "
        "TRAIN='...'`, the Makefile's other defaults unchanged (lookback 10, no detrending, the first 400 rows "
        "fit, threshold 1.5 x the 0.99 quantile of their scores). F1 is point-wise over all rows as SKAB counts; "
        "intervals are 95 % percentile bootstraps resampling the 16 experiments (1000 replicates); the "
        "differences are paired (the same draws for both sets). Every set tried is listed.",
        "",
        *table(rows, base),
        "",
        f"Best F1: `{best['train']}` {best['results']['all_rows']['f1']:.3f}; the target (issue 18) is "
        f"pca > {BAR} (the leaderboard's T-squared+Q): "
        f"{'met by ' + ', '.join(above) if above else 'no set meets it'}. F1 above the default with a paired "
        f"interval above 0: {', '.join(better) or 'none'}.",
        "",
        "Why the default stays `--variance 0.99` (T-squared on every component): with 6-7 components the Q "
        "residual of those left out fires on the normal rows' drift (as bench/skab_study.md found at 0.85-0.95 "
        "of the variance); a model of the few largest components (3-4) sees less of the drift (fewer "
        "false alarms) but misses more of the faults, for the same F1. Choosing 3 or 4 components here "
        "would be a choice among sets that do not differ in F1, on the data they would be judged on.",
        "",
        "A set takes 4-5 minutes on 2 shared cores.",
        "",
    ])
    for row in rows:
        # Each experiment's counts (in the Makefile's order of the files), enough to redo the paired
        # differences; the paths are this machine's.
        r = row["results"]
        r["per_experiment"] = {"counts": list(COUNTS), **{way: counts_of(r, way).tolist() for way in ("judged", "all_rows")}}
    variants = ",\n".join(f"  {json.dumps(row)}" for row in rows)  # one line a set
    (HERE / "skab_pca.json").write_text(f'{{"baseline": {json.dumps(BASELINE)}, "variants": [\n{variants}\n]}}\n')
    (HERE / "skab_pca.md").write_text(text)
    print(text)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
