"""Plain-text tables for stdout: aligned columns, numbers right-aligned."""

from __future__ import annotations

import numbers


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if isinstance(value, numbers.Real):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def format_table(rows: list[list]) -> str:
    """The first row is the header; a row of one string is a section title."""
    cells = [[_cell(v) for v in row] for row in rows]
    width = max(len(r) for r in cells)
    widths = [max((len(r[i]) for r in cells if len(r) == width), default=0) for i in range(width)]
    numeric = [all(isinstance(row[i], numbers.Number) for row in rows[1:] if len(row) == width) for i in range(width)]
    lines = []
    for row in cells:
        if len(row) != width:
            lines.append("  ".join(row))
            continue
        parts = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
