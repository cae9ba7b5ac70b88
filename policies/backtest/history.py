"""How the backtest reads the health checks: chunk by chunk, each chunk's pages dropped after use.

At 1,000 services the checks are 86M rows in memory-mapped day files (5 GB,
policies/telemetry/mapped.py). The backtest fits the failure model twice, on the whole history
and on its past, so it reads every chunk twice; read whole, the pages it touched stayed resident
until the stage ended (3.8 GB of RSS on top of the run's own memory). Here each chunk's window
grid is computed and its pages dropped before the next, and the past, a prefix of the history,
takes the whole history's grids of the chunks it shares (the same rows at the same addresses)
instead of reading them again.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from policies.backtest.config import BacktestConfig
from policies.model.failure_model import FailureModel, fit_failure_model
from policies.model.states import to_epoch_ms
from policies.model.window_grid import WindowGrid, window_grid
from policies.telemetry.mapped import release_batch

__all__ = ["ChunkGrids", "chunk_grids", "fit_history", "before"]

ChunkGrids = tuple[list[pa.RecordBatch], list[WindowGrid]]  # the chunks read and their grids


def fit_history(
    tables: Mapping[str, pa.Table], cfg: BacktestConfig, checks: pa.Table, grids: ChunkGrids | None
) -> FailureModel:
    """The failure model of ``checks`` from their chunk grids (None: the checks are scanned)."""
    return fit_failure_model(
        tables["services"],
        tables["dependencies"],
        checks,
        tables.get("incidents"),
        window_min=cfg.window_min,
        hysteresis_windows=cfg.hysteresis_windows,
        hysteresis_min=cfg.hysteresis_min,
        agreement=cfg.agreement,
        grids=None if grids is None else grids[1],
    )


def chunk_grids(checks: pa.Table, window_min: int, known: ChunkGrids | None = None) -> ChunkGrids | None:
    """One window grid per chunk (a day file's batch each), so the fit never holds every check as
    numpy; the grids give exactly what one scan gives (policies/model/window_grid.py). None: scan.

    ``known``: chunks already gridded; a chunk that is one of them (same rows at the same
    addresses, as a slice's leading chunks are) takes its grid without reading it again."""
    batches, grids = [], []
    for i, batch in enumerate(checks.to_batches()):
        if known is not None and i < len(known[0]) and _same_rows(batch, known[0][i]):
            grid = known[1][i]
        else:
            grid = window_grid(pa.Table.from_batches([batch]), window_min) if batch.num_rows else None
            release_batch(batch)  # its mapped pages: read once, not kept (no-op for memory tables)
        if grid is None:
            return None
        batches.append(batch)
        grids.append(grid)
    return (batches, grids) if grids else None


def _same_rows(a: pa.RecordBatch, b: pa.RecordBatch) -> bool:
    """Whether two batches are views of the same memory (so the same rows), by buffer address."""

    def where(batch: pa.RecordBatch) -> list:
        return [
            (col.offset, len(col), [(buf.address, buf.size) if buf is not None else None for buf in col.buffers()])
            for col in batch.columns
        ]

    return a.schema.equals(b.schema) and a.num_rows == b.num_rows and where(a) == where(b)


def before(checks: pa.Table, split_at: pd.Timestamp) -> pa.Table:
    """The checks before ``split_at``: a zero-copy slice when they are in time order (day files
    are), else a filtered copy."""
    bound = pa.scalar(split_at.to_pydatetime(), checks.schema.field("ts").type)
    ts = checks.column("ts")
    if ts.null_count == 0:
        bound_ms = int(to_epoch_ms(pa.chunked_array([pa.array([bound])]))[0])
        cut, last, ordered = None, None, True
        for offset, chunk in zip(np.cumsum([0, *(len(c) for c in ts.chunks)]), ts.chunks):
            ms = to_epoch_ms(pa.chunked_array([chunk]))
            release_batch(chunk)
            if ms.size and ((last is not None and ms[0] < last) or (np.diff(ms) < 0).any()):
                ordered = False
                break
            if ms.size:
                last = int(ms[-1])
                if cut is None and last >= bound_ms:
                    cut = int(offset) + int(np.searchsorted(ms, bound_ms, side="left"))
        if ordered:
            return checks.slice(0, checks.num_rows if cut is None else cut)
    return checks.filter(pc.less(ts, bound))
