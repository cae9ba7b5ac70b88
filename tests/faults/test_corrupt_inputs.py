"""Corrupt inputs across every table and every rule family: named, refused, nothing published, inputs untouched.

Each case damages a copy of the small sample and runs, in process, the ingest and validation the
nightly runs before anything is modelled (tests/flows/test_malformed.py's ``ingest_and_validate``;
its full-flow cases prove the same refusal stops the flow). Each asserts that the refusal names
the file, table, column, rule and an example value, that the store's LATEST and versions are
unchanged, and that every input file keeps its sha256.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from policies.bundle.store import publish_bundle
from policies.errors import DataValidationError
from qres_client.bundle import list_versions, read_latest
from tests.flows.test_malformed import _assert_named, _day, _first, _rewrite, _set, ingest_and_validate

FUTURE = datetime(2099, 1, 1, tzinfo=UTC)


def _cut(data: Path) -> None:
    """Each day to its first 2,000 checks (one case validates in about a second)."""
    for day in (data / "health_checks").iterdir():
        _rewrite(day, lambda t: t.slice(0, 2000))


def _last(n: int, value):
    return lambda t, v: v[:-n] + [value] * n


def _row0(column: str, value):
    return _set(column, lambda t, v: [value] + v[1:])


def _append_row0(t: pa.Table) -> pa.Table:
    return pa.concat_tables([t, t.slice(0, 1)])


def _as_csv(data: Path, table: str, encoding: str) -> None:
    source = data / f"{table}.parquet"
    out = pa.BufferOutputStream()
    pacsv.write_csv(pq.read_table(source), out)
    source.unlink()
    (data / f"{table}.csv").write_bytes(out.getvalue().to_pybytes().decode().encode(encoding))


def _resolved_before_start(t: pa.Table) -> pa.Table:
    """The last incident resolved one minute before it started."""
    ends = t["resolved_at"].to_pylist()
    ends[-1] = t["started_at"][-1].as_py() - timedelta(minutes=1)
    return t.set_column(t.column_names.index("resolved_at"), t.schema.field("resolved_at"),
                        pa.array(ends, t.schema.field("resolved_at").type))  # fmt: skip


def _future_incident(t: pa.Table) -> pa.Table:
    t = _row0("started_at", FUTURE)(t)
    return _row0("resolved_at", None)(t)


HC, DAY1 = "health_checks", "health_checks/2026-10-02.parquet"
# (id, damage, table, column or None, rule fragment, example fragment, file fragment)
CASES = [
    ("services-kind-not-in-set", lambda d: _rewrite(d / "services.parquet", _row0("kind", "mainframe")),
     "services", "kind", "kind in", "'mainframe'", "services.parquet"),
    ("workloads-empty-table", lambda d: _rewrite(d / "workloads.parquet", lambda t: t.slice(0, 0)),
     "workloads", None, "row_count", "observed 0", "workloads.parquet"),
    ("dependencies-unknown-target", lambda d: _rewrite(d / "dependencies.parquet", _row0("depends_on", "saas-ghost")),
     "dependencies", "depends_on", "depends_on in $service_ids", "'saas-ghost'", "dependencies.parquet"),
    ("dependencies-self-loop", lambda d: _rewrite(d / "dependencies.parquet", _row0("depends_on", "edge-cdn")),
     "dependencies", "service_id, depends_on", "service_id != depends_on", "'edge-cdn'", "dependencies.parquet"),
    ("dependencies-duplicate-pair", lambda d: _rewrite(d / "dependencies.parquet", _append_row0),
     "dependencies", "service_id, depends_on", "(service_id, depends_on) unique", "'region-eu-west'",
     "dependencies.parquet"),
    ("dependencies-utf16", lambda d: _as_csv(d, "dependencies", "utf-16"),
     "dependencies", None, "CSV encoded as UTF-8", "byte 0", "dependencies.csv"),
    ("health-checks-future", lambda d: _rewrite(_day(d, 1), _set("ts", _last(50, FUTURE))),
     HC, "ts", "ts <= $now_utc", "2099-01-01", DAY1),
    ("incidents-resolved-before-start", lambda d: _rewrite(d / "incidents.parquet", _resolved_before_start),
     "incidents", "resolved_at, started_at", "resolved_at >= started_at", "21:45:00", "incidents.parquet"),
    ("health-checks-http-code", lambda d: _rewrite(_day(d, 1), _set("http_code", _first(50, 999))),
     HC, "http_code", "100 <= http_code <= 599", "999", DAY1),
    ("incidents-id-grammar", lambda d: _rewrite(d / "incidents.parquet", _row0("incident_id", "../INC-1")),
     "incidents", "incident_id", "incident_id matches", "'../INC-1'", "incidents.parquet"),
    ("incidents-duplicate-id", lambda d: _rewrite(d / "incidents.parquet", _row0("incident_id", "INC-0002")),
     "incidents", "incident_id", "incident_id unique", "'INC-0002'", "incidents.parquet"),
    ("incidents-affected-unknown", lambda d: _rewrite(d / "incidents.parquet", _row0("affected", ["svc-ghost"])),
     "incidents", "affected", "affected in $service_ids", "'svc-ghost'", "incidents.parquet"),
    ("incidents-started-in-future", lambda d: _rewrite(d / "incidents.parquet", _future_incident),
     "incidents", "started_at", "started_at <= $now_utc", "2099-01-01", "incidents.parquet"),
    ("workloads-missing-column", lambda d: _rewrite(d / "workloads.parquet", lambda t: t.drop_columns(["demand"])),
     "workloads", "demand", "schema: missing column", "file has: workload_id", "workloads.parquet"),
    ("workloads-requires-unknown", lambda d: _rewrite(d / "workloads.parquet", _row0("requires", ["saas-ghost"])),
     "workloads", "requires", "requires in $service_ids", "'saas-ghost'", "workloads.parquet"),
    ("sites-budget-not-a-number", lambda d: _rewrite(
        d / "sites.parquet", _set("budget", lambda t, v: ["lots"] + [str(x) for x in v[1:]], pa.string())),
     "sites", "budget", "not castable to double", "'lots'", "sites.parquet"),
    ("standby-unknown-site", lambda d: _rewrite(d / "standby_candidates.parquet", _row0("site_id", "site-ghost")),
     "standby_candidates", "site_id", "site_id in $site_ids", "'site-ghost'", "standby_candidates.parquet"),
    ("standby-truncated", lambda d: (d / "standby_candidates.parquet").write_bytes(
        (d / "standby_candidates.parquet").read_bytes()[:300]),
     "standby_candidates", None, "readable Parquet file", "magic bytes", "standby_candidates.parquet"),
]  # fmt: skip


@pytest.fixture(scope="module")
def base(small_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corrupt") / "base"
    shutil.copytree(small_sample, out)
    _cut(out)
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a published version (a stand-in bundle: only LATEST and the versions are compared)."""
    out = tmp_path_factory.mktemp("corrupt-store") / "bundles"
    publish_bundle(out, "shedding", {"policy.json": b"{}"}, {"run_id": "before"})
    return out


def sha256_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


@pytest.mark.parametrize(
    ("case", "damage", "table", "column", "rule", "example", "file"), CASES, ids=[c[0] for c in CASES]
)
def test_a_corrupt_input_is_named_refused_and_left_as_it_was(
    base: Path, store: Path, tmp_path: Path, case, damage, table, column, rule, example, file
) -> None:
    data = tmp_path / "data"
    shutil.copytree(base, data)
    damage(data)
    inputs = sha256_tree(data)
    latest, versions = read_latest(store, "shedding"), list_versions(store, "shedding")
    with pytest.raises(DataValidationError) as err:
        ingest_and_validate(data, tmp_path / "state")
    _assert_named(err.value, data, table, column, rule, example, file)
    assert sha256_tree(data) == inputs  # read only: no file of the input was rewritten, added or removed
    assert (
        (read_latest(store, "shedding"), list_versions(store, "shedding"))
        == (latest, versions)
        == (
            "v000001",
            ["v000001"],
        )
    )
