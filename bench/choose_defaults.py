"""How the preprocessing defaults are chosen: rolling-origin validation, never the test period.

The last 20 % of the real data is the benchmark's test period and is not read here. Within the
first 80 %, each fold trains on everything before a validation period and scores that period:
fold 1 trains on 0-40 % and validates on 40-60 %, fold 2 trains on 0-60 % and validates on
60-80 % (the benchmark's own validation split). A single period holds only about 16 breaks, so
one fold alone can mislead; the table gives both folds and their mean.

    .venv/bin/python bench/choose_defaults.py      # about 10 minutes on 2 cores
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REAL = Path(os.environ.get("SHEET_BREAK_CSV", HERE.parents[1] / "shared/data/sheet-break.csv.gz"))
FOLDS = {"fold 1 (valid 40-60 %)": (0.4, 0.2, 0.4), "fold 2 (valid 60-80 %)": (0.6, 0.2, 0.2)}
DETREND = (0, 30)
CLIP = (0.0, 10.0)
ERRORS = ("last", "mean")
HEADER = """# Choosing the preprocessing defaults (`bench/choose_defaults.py`)

Rolling-origin validation on the real data, before and apart from the test period (the last
20 %, never read here). Each fold trains the default network on everything before its
validation period and scores that period. PR-AUC is given as a multiple of the period's
positive rate. Chosen: `--detrend 30 --clip 10 --error mean`.

"""


def table_lines(rows) -> list[str]:
    lines = ["| detrend | clip | error | " + " | ".join(f"{f}: ROC-AUC, PR-AUC / base" for f in FOLDS)
             + " | mean ROC-AUC | mean PR-AUC / base |", "|" + " --- |" * (5 + len(FOLDS))]
    for key, group in itertools.groupby(sorted(rows, key=lambda r: r[:3]), key=lambda r: r[:3]):
        group = sorted(group, key=lambda r: r[3])
        cells = " | ".join(f"{r[5]:.3f}, {r[6]:.2f} ({r[4]} breaks)" for r in group)
        lines.append(f"| {key[0]} | {key[1]:g} | {key[2]} | {cells} | {np.mean([r[5] for r in group]):.3f} "
                     f"| {np.mean([r[6] for r in group]):.2f} |")
    return lines


def validation_metrics(run_dir: Path) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from lstm_rare_event.reconstruction import compute_errors
    from lstm_rare_event.preprocess.windows import load_split

    valid = load_split(run_dir, "valid")
    out = {"breaks": int(np.unique(valid.event_time[valid.y == 1]).size)}
    for mode in ERRORS:
        errors, _ = compute_errors(run_dir, valid, mode)
        out[mode] = (roc_auc_score(valid.y, errors), average_precision_score(valid.y, errors) / valid.y.mean())
    return out


def main() -> int:
    if not REAL.exists():
        print(f"choose_defaults: the real data set is needed at {REAL} (or SHEET_BREAK_CSV)", file=sys.stderr)
        return 2
    from lstm_rare_event.steps.prepare import PrepareOptions, prepare, save
    from lstm_rare_event.steps.train import TrainOptions, train

    rows = []
    with tempfile.TemporaryDirectory() as work:
        for (fold, fractions), detrend, clip in itertools.product(FOLDS.items(), DETREND, CLIP):
            run_dir = Path(work) / f"{fold[:6]}-{detrend}-{clip}"
            save(prepare(REAL, PrepareOptions(detrend=detrend, clip=clip, fractions=fractions)), run_dir)
            train(run_dir, TrainOptions())
            metrics = validation_metrics(run_dir)
            for mode in ERRORS:
                rows.append((detrend, clip, mode, fold, metrics["breaks"], *metrics[mode]))
                print(f"{fold}: detrend {detrend}, clip {clip:g}, error {mode}: ROC-AUC {metrics[mode][0]:.3f}, "
                      f"PR-AUC / base rate {metrics[mode][1]:.2f}", file=sys.stderr, flush=True)

    table = "\n".join(table_lines(rows))
    print(table)
    (HERE / "defaults.md").write_text(HEADER + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
