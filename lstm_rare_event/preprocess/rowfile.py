"""Rows on disk: sensor values too many to hold in memory, written in blocks and read back by
range.

``prepare`` spills the values it reads here, so its memory is bounded by a block, not by the
file: 5 million rows of 59 sensors are 2.4 GB as float64. Blocks are read with plain reads,
not a memory map, so the pages read do not count towards the process's resident memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: rows handled at a time by the block-wise steps (about 50 MB of float64 for 59 sensors)
BLOCK_ROWS = 100_000


class RowFile:
    """A (rows, columns) array in a raw file; ``values[a:b]`` is a view (nothing is read) and
    ``np.asarray(view)`` reads its rows."""

    def __init__(self, path: Path, n_columns: int, dtype=np.float64, start: int = 0, stop: int | None = None):
        self.path, self.n_columns, self.dtype = Path(path), int(n_columns), np.dtype(dtype)
        self._row_bytes = self.n_columns * self.dtype.itemsize
        self.start = start
        self.stop = os.path.getsize(self.path) // self._row_bytes if stop is None else stop

    @classmethod
    def create(cls, path: Path, n_columns: int, dtype=np.float64) -> "RowFile":
        Path(path).write_bytes(b"")
        return cls(path, n_columns, dtype)

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.ndim != 2 or block.shape[1] != self.n_columns:
            raise ValueError(f"a block of shape {block.shape} for {self.n_columns} columns")
        with open(self.path, "ab") as handle:
            handle.write(block.tobytes())
        self.stop += len(block)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.n_columns)

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: slice) -> "RowFile":
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("a RowFile is sliced by a contiguous range of rows")
        start, stop, _ = index.indices(len(self))
        return RowFile(self.path, self.n_columns, self.dtype, self.start + start, self.start + max(start, stop))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        with open(self.path, "rb") as handle:
            handle.seek(self.start * self._row_bytes)
            data = np.fromfile(handle, dtype=self.dtype, count=len(self) * self.n_columns)
        data = data.reshape(len(self), self.n_columns)
        return data if dtype is None else data.astype(dtype, copy=False)


def blocks(values) -> list[tuple[int, int]]:
    """(start, stop) of the row blocks to process ``values`` in: one block when they are held
    in memory (the arithmetic is then exactly that of one pass), else :data:`BLOCK_ROWS` rows."""
    n = len(values)
    size = BLOCK_ROWS if isinstance(values, RowFile) else max(n, 1)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


class NpyWriter:
    """An ``.npy`` file of a known shape, written a block of rows at a time (``np.load`` and
    its memory map read it as any other)."""

    def __init__(self, path: Path, shape: tuple[int, int], dtype=np.float32):
        self.path, self.shape, self.dtype = Path(path), shape, np.dtype(dtype)
        self.written = 0
        with open(self.path, "wb") as handle:
            np.lib.format.write_array_header_1_0(
                handle, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape})

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        with open(self.path, "ab") as handle:
            handle.write(block.tobytes())
        self.written += len(block)

    def close(self) -> None:
        if self.written != self.shape[0]:
            raise RuntimeError(f"{self.path}: {self.written} rows written of {self.shape[0]}")
