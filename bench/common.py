"""What every bench script shares: where the real data and the work folders are (each can be
moved through the environment, for a machine that keeps the data elsewhere), BENCH_QUICK, and
the command line as this interpreter runs it (the checkout's code, not an installed copy)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REAL = Path(os.environ.get("SHEET_BREAK_CSV", ROOT.parent / "shared/data/sheet-break.csv.gz"))
WORK = Path(os.environ.get("BENCH_WORK", HERE / "work"))
QUICK = os.environ.get("BENCH_QUICK") == "1"
CLI = [sys.executable, "-m", "lstm_rare_event"]
