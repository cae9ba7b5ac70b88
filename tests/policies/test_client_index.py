"""The decision-table index behind decide(): lazy per-scenario decisions, extra columns, row groups."""

from __future__ import annotations

import io
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from policies.bundle.store import publish_bundle
from policies.errors import BundleVerificationError
from policies.scenarios.scenario_set import FALLBACK_KEY, NORMAL_KEY
from qres_client.bundle import encode_parquet
from qres_client.client import Action, PolicyClient
from qres_client.index import build_index
from qres_client.schema import DECISIONS_SHEDDING, DECISIONS_STANDBY
from tests.policies.test_client import KEY, SCENARIOS, decisions_table


def index_of(data: bytes):
    return build_index("shedding", "v000001", {}, {"decisions.parquet": data})


def parquet_bytes(table: pa.Table, row_group_size: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


def standby_table() -> pa.Table:
    """The shedding rows with DECISIONS_STANDBY's extra columns after them."""
    base = decisions_table()
    extras = {
        "service_id": [f"svc-{k}" for k in base.column("scenario_key").to_pylist()],
        "site_id": [f"site-{w}" for w in base.column("workload_id").to_pylist()],
        "value_per_hour": [float(i) for i in range(base.num_rows)],
    }
    return pa.Table.from_pydict({**base.to_pydict(), **extras}, schema=DECISIONS_STANDBY)


def test_extra_columns_after_the_shedding_ones_are_kept_on_each_action(tmp_path):
    publish_bundle(tmp_path, "standby", {"decisions.parquet": encode_parquet(standby_table())}, {}, signer=KEY.sign)
    client = PolicyClient(tmp_path, public_keys=KEY.public)
    d = client.decide("standby", down={"auth"})
    assert d.scenario == "down=auth" and [a.workload_id for a in d.actions] == ["w1", "w2", "w3"]
    assert [a.extras["site_id"] for a in d.actions] == ["site-w1", "site-w2", "site-w3"]
    assert {a.extras["service_id"] for a in d.actions} == {"svc-down=auth"}
    # rows are stored w3, w1, w2 per scenario: the extras follow their own row through the ranking
    assert [a.extras["value_per_hour"] for a in d.actions] == [4.0, 5.0, 3.0]
    with pytest.raises(TypeError):
        d.actions[0].extras["site_id"] = "elsewhere"  # read-only
    plain = index_of(encode_parquet(decisions_table())).decide(frozenset({"auth"}), frozenset())
    assert plain.actions[0].extras == {} and plain.actions[0] == Action("w1", 1.0, 1)
    assert hash(plain.actions[0]) == hash(Action("w1", 1.0, 1))


@pytest.mark.parametrize(
    "columns",
    [
        ["scenario_key", "down", "degraded", "probability", "effective_down", "workload_id", "admit", "rank"],
        ["site_id", *DECISIONS_SHEDDING.names],  # an extra column must come after the shedding ones
    ],
)
def test_tables_that_do_not_start_with_the_shedding_columns_are_refused(columns):
    table = standby_table().select(list(columns))
    with pytest.raises(BundleVerificationError, match="do not start with the shedding schema"):
        index_of(encode_parquet(table))


def test_repeated_column_names_are_refused():
    base = decisions_table()
    table = pa.Table.from_arrays([*base.columns, base.column("admit")], names=[*base.column_names, "admit"])
    with pytest.raises(BundleVerificationError, match="repeat"):
        index_of(encode_parquet(table))


def test_several_row_groups_answer_like_one():
    """Several row groups take the plain (not dictionary) read path for the set columns."""
    one, many = index_of(encode_parquet(decisions_table())), index_of(parquet_bytes(decisions_table(), 4))
    for down in ([], ["auth"], ["api"], ["q"], ["zzz"], ["auth", "pay"]):
        a, b = one.decide(frozenset(down), frozenset()), many.decide(frozenset(down), frozenset())
        assert (a.scenario, a.exact, a.actions) == (b.scenario, b.exact, b.actions)


@pytest.mark.parametrize("row_group_size", [1 << 20, 5])
@pytest.mark.parametrize(
    "column, value, message",
    [
        ("down", ["pay"], "different down lists"),
        ("effective_down", ["api"], "different effective_down lists"),
        ("workload_id", "w1", "lists workload 'w1' twice"),
        ("scenario_key", FALLBACK_KEY, "not contiguous"),
    ],
)
def test_inconsistent_rows_are_refused_with_the_scenario(column, value, message, row_group_size):
    rows = decisions_table().to_pylist()
    victim = next(i for i, r in enumerate(rows) if r["scenario_key"] == "down=auth" and i % 3 == 2)
    rows[victim][column] = value
    table = pa.Table.from_pylist(rows, schema=DECISIONS_SHEDDING)
    with pytest.raises(BundleVerificationError, match=message):
        index_of(parquet_bytes(table, row_group_size))


def test_empty_table_has_no_fallback():
    with pytest.raises(BundleVerificationError, match="fallback"):
        index_of(encode_parquet(DECISIONS_SHEDDING.empty_table()))


def test_decisions_are_built_once_on_first_use():
    index = index_of(encode_parquet(decisions_table()))
    scenario = index.exact[frozenset()][frozenset({"auth"})]
    assert scenario.exact is None and scenario.cover is None  # nothing built at load
    exact = index.decide(frozenset({"auth"}), frozenset())
    cover = index.decide(frozenset({"api"}), frozenset())  # covered by down=auth
    assert (exact.exact, cover.exact, cover.scenario) == (True, False, "down=auth")
    assert exact.actions is cover.actions  # one tuple of actions per scenario
    assert index.decide(frozenset({"auth"}), frozenset()) is exact
    assert index.decide(frozenset(), frozenset()).scenario == NORMAL_KEY


def test_first_calls_from_many_threads_agree():
    index = index_of(encode_parquet(decisions_table()))
    downs = [frozenset(d) for _, d, g, _, _ in SCENARIOS if not g] * 20
    results: list = [None] * 8
    barrier = threading.Barrier(len(results))

    def ask(n: int) -> None:
        barrier.wait()
        results[n] = [index.decide(d, frozenset()) for d in downs]

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == results[0] for r in results)
    assert [d.scenario for d in results[0][: len(downs) // 20]] == [k for k, _, g, _, _ in SCENARIOS if not g]
