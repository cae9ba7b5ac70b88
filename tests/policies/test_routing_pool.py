"""Routing's latency pool, read chunk by chunk, is the one-pass pool: same services, order, arrays."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from policies.routing.policy import latency_pool


def _one_pass(hc: pa.Table) -> dict:
    codes = pc.dictionary_encode(hc.column("service_id")).combine_chunks()
    ids, idx = codes.dictionary.to_pylist(), codes.indices.to_numpy()
    down = pc.equal(hc.column("status"), "down").combine_chunks().to_numpy(zero_copy_only=False)
    lat = pc.fill_null(hc.column("latency_ms").cast(pa.float64()), np.nan).combine_chunks().to_numpy()
    out = {}
    for i, sid in enumerate(ids):
        mine = idx == i
        out[sid] = (np.sort(lat[mine & ~down & np.isfinite(lat)]), float(down[mine].sum() / mine.sum()))
    return out


@pytest.mark.parametrize("chunk_rows", [1_000, 50_000, 10**9])
def test_chunks_give_the_one_pass_pool(small_sample, chunk_rows: int) -> None:
    from policies.telemetry.ingest import load_telemetry

    hc = load_telemetry(str(small_sample)).tables["health_checks"]
    # a later chunk brings services in a new order, and one service only appears late
    hc = pa.concat_tables([hc.slice(hc.num_rows // 2), hc.slice(0, hc.num_rows // 2)])
    late = hc.filter(pc.not_equal(hc.column("service_id"), "svc-cart"))
    hc = pa.concat_tables([late, hc.filter(pc.equal(hc.column("service_id"), "svc-cart"))])
    chunked = pa.Table.from_batches(hc.to_batches(max_chunksize=chunk_rows))
    got, want = latency_pool(chunked), _one_pass(hc)
    assert list(got) == list(want) and list(got)[-1] == "svc-cart"
    for sid, (lat, share) in want.items():
        assert np.array_equal(got[sid][0], lat) and got[sid][1] == share, sid
    assert any(share > 0 for _, share in got.values())
