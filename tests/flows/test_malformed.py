"""Malformed telemetry: one case per kind of damage, each named precisely, none ever published.

A real nightly run first publishes a good bundle. Every case then damages a *copy* of the
sample and runs the same ingest and validate functions the flow calls: each must raise a
DataValidationError whose message names the file, the table, the column (where the damage has
one), the rule and an example value. A few cases go through the whole flow to prove the publish
guard: no new version is written and the good bundle stays LATEST. A property test damages
tables at random and accepts only two outcomes: valid output, or such a named error.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.errors import DataValidationError
from qres_client.bundle import read_latest
from tasks.ingest import read_telemetry
from tasks.validate import check_telemetry

SHARE = 0.001  # the default ingest.quarantine_max_share: damage must touch more rows than this to fail


def _day(data: Path, i: int = 0) -> Path:
    return sorted((data / "health_checks").iterdir())[i]


def _rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def _set(column: str, make: Callable[[pa.Table, list], list], type_: pa.DataType | None = None):
    """Replace ``column`` by ``make(table, values)`` (a list), keeping (or changing) its type."""

    def change(t: pa.Table) -> pa.Table:
        i = t.column_names.index(column)
        values = make(t, t[column].to_pylist())
        return t.set_column(
            i, pa.field(column, type_ or t.schema.field(i).type), pa.array(values, type_ or t.schema.field(i).type)
        )

    return change


def _first(n: int, value):
    return lambda t, v: [value] * n + v[n:]


def _to_csv(data: Path, table: str, text: str | bytes) -> None:
    (data / f"{table}.parquet").unlink()
    target = data / f"{table}.csv"
    target.write_bytes(text if isinstance(text, bytes) else text.encode())


def _services_csv(data: Path) -> str:
    t = pq.read_table(data / "services.parquet")
    out = pa.BufferOutputStream()
    pacsv.write_csv(t, out)
    return out.getvalue().to_pybytes().decode()


HC = "health_checks"
DAY0 = "health_checks/2026-10-01.parquet"
# (id, damage, table, column or None, rule fragment, example fragment, file fragment)
CASES = [
    (
        "truncated-parquet",
        lambda d: _day(d).write_bytes(_day(d).read_bytes()[:2000]),
        HC,
        None,
        "readable Parquet file",
        "",
        DAY0,
    ),
    (
        "csv-semicolon",
        lambda d: _to_csv(d, "services", _services_csv(d).replace(",", ";")),
        "services",
        None,
        "CSV delimiter ','",
        'service_id";"kind',
        "services.csv",
    ),
    (
        "csv-latin1",
        lambda d: _to_csv(d, "services", _services_csv(d).replace("region-eu-west", "région-eu").encode("latin-1")),
        "services",
        None,
        "CSV encoded as UTF-8",
        "xe9gion-eu",
        "services.csv",
    ),
    (
        "missing-column",
        lambda d: _rewrite(_day(d), lambda t: t.drop_columns(["probe"])),
        HC,
        "probe",
        "schema: missing column",
        "ts",
        DAY0,
    ),
    (
        "extra-column",
        lambda d: _rewrite(d / "sites.parquet", lambda t: t.append_column("owner", pa.array(["ops"] * t.num_rows))),
        "sites",
        "owner",
        "schema: unexpected column",
        "'ops'",
        "sites.parquet",
    ),
    (
        "wrong-type",
        lambda d: _rewrite(_day(d), _set("latency_ms", lambda t, v: ["fast"] + [str(x) for x in v[1:]], pa.string())),
        HC,
        "latency_ms",
        "schema: type string not castable to double",
        "'fast'",
        DAY0,
    ),
    (
        "nan",
        lambda d: _rewrite(_day(d), _set("latency_ms", _first(500, float("nan")))),
        HC,
        "latency_ms",
        "finite number",
        "nan",
        DAY0,
    ),
    (
        "infinity",
        lambda d: _rewrite(_day(d, 1), _set("error_rate", _first(500, float("inf")))),
        HC,
        "error_rate",
        "finite number",
        "inf",
        "health_checks/2026-10-02.parquet",
    ),
    (
        "negative-latency",
        lambda d: _rewrite(_day(d), _set("latency_ms", _first(500, -12.5))),
        HC,
        "latency_ms",
        "latency_ms >= 0",
        "-12.5",
        DAY0,
    ),
    (
        "status-outside-set",
        lambda d: _rewrite(_day(d), _set("status", _first(500, "sideways"))),
        HC,
        "status",
        "status in ['up', 'degraded', 'down']",
        "'sideways'",
        DAY0,
    ),
    (
        "naive-timestamps",
        lambda d: _rewrite(_day(d), lambda t: t.set_column(0, "ts", t["ts"].cast(pa.timestamp("ms")))),
        HC,
        "ts",
        "timezone-aware",
        "2026-10-01",
        DAY0,
    ),
    (
        "empty-file",
        lambda d: (d / "incidents.parquet").write_bytes(b""),
        "incidents",
        None,
        "non-empty file",
        "0 bytes",
        "incidents.parquet",
    ),
    (
        "unknown-service",
        lambda d: _rewrite(_day(d), _set("service_id", _first(500, "svc-ghost"))),
        HC,
        "service_id",
        "service_id in $service_ids",
        "'svc-ghost'",
        DAY0,
    ),
    (
        "duplicated-key",
        lambda d: _rewrite(d / "services.parquet", _set("service_id", lambda t, v: [v[1]] + v[1:])),
        "services",
        "service_id",
        "service_id unique",
        "",
        "services.parquet",
    ),
    (
        "duplicated-checks-across-days",
        lambda d: _rewrite(_day(d, 1), lambda t: pa.concat_tables([t, pq.read_table(_day(d, 0)).slice(0, 3)])),
        HC,
        "service_id, probe, ts",
        "strictly increasing",
        "2026-10-01T00:00",
        "health_checks/2026-10-02.parquet",
    ),
    (
        "incident-ends-before-start",
        lambda d: _rewrite(
            d / "incidents.parquet",
            lambda t: t.set_column(
                t.column_names.index("resolved_at"),
                t.schema.field("resolved_at"),
                pc.subtract(
                    t["started_at"],
                    pa.scalar(3_600_000_000, pa.duration("us")).cast(pa.duration(t["started_at"].type.unit)),
                ),
            ),
        ),
        "incidents",
        "resolved_at, started_at",
        "resolved_at >= started_at",
        "",
        "incidents.parquet",
    ),
]


def _config(tmp: Path, data: Path) -> Path:
    from qres_client.signing import init_keys

    init_keys(tmp / "state" / "keys")
    cfg = tmp / "qres.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        "[scenarios]\nsample_max = 0\n"
    )
    return cfg


@pytest.fixture(scope="module")
def published(prefect_harness, small_sample: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real nightly run that publishes a good bundle: (tmp, config, summary)."""
    from flows.nightly import nightly

    tmp = tmp_path_factory.mktemp("malformed")
    data = tmp / "good"
    shutil.copytree(small_sample, data)
    cfg = _config(tmp, data)
    summary = nightly(config=str(cfg))
    assert summary["published"]
    return tmp, cfg, summary


@pytest.fixture(scope="module")
def small_copy(small_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample with each day cut to its first 2,000 checks, so that one example takes ~1 s."""
    out = tmp_path_factory.mktemp("prop") / "base"
    shutil.copytree(small_sample, out)
    for day in (out / "health_checks").iterdir():
        _rewrite(day, lambda t: t.slice(0, 2000))
    return out


def _damaged(small_sample: Path, tmp_path: Path, damage) -> Path:
    data = tmp_path / "data"
    shutil.copytree(small_sample, data)
    damage(data)
    return data


def ingest_and_validate(data: Path, state: Path | None = None):
    """What the nightly flow runs before anything is modelled or published."""
    telemetry = read_telemetry(str(data), state_dir=state)
    return check_telemetry(telemetry, state_dir=state, quarantine_max_share=SHARE)


def _bundles(tmp: Path) -> list[str]:
    return sorted(p.name for p in (tmp / "bundles" / "shedding").iterdir())


def _assert_named(err: DataValidationError, data: Path, table, column, rule, example, file) -> None:
    text = str(err)
    hits = [v for v in err.violations if v.table == table and rule in v.rule and v.column == column]
    assert hits, f"no violation of {rule!r} on {table}.{column} in:\n{text}"
    line = next(line for line in text.splitlines() if rule in line and f"table {table!r}" in line)
    if column:
        assert f"column {column!r}" in line, line
    assert str(data) in line and file in line, line  # the file, as a full path
    assert hits[0].examples and example in line, line  # an example value
    assert "Traceback" not in text


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("case", "damage", "table", "column", "rule", "example", "file"), CASES, ids=[c[0] for c in CASES]
)
def test_malformed_input_is_named_and_never_published(
    published, small_copy: Path, tmp_path: Path, case, damage, table, column, rule, example, file
) -> None:
    tmp, _, summary = published
    before = _bundles(tmp)
    data = _damaged(small_copy, tmp_path, damage)
    with pytest.raises(DataValidationError) as err:
        ingest_and_validate(data, tmp_path / "state")
    _assert_named(err.value, data, table, column, rule, example, file)
    assert _bundles(tmp) == before and read_latest(tmp / "bundles", "shedding") == summary["bundle_version"]


FLOW_CASES = ["truncated-parquet", "naive-timestamps", "incident-ends-before-start"]


@pytest.mark.e2e
@pytest.mark.parametrize("case", FLOW_CASES)
def test_the_flow_fails_closed_on_malformed_input(published, small_copy: Path, tmp_path: Path, case) -> None:
    from flows.nightly import nightly

    tmp, cfg, summary = published
    _, damage, table, column, rule, example, file = next(c for c in CASES if c[0] == case)
    data = _damaged(small_copy, tmp_path, damage)
    before = _bundles(tmp)
    with pytest.raises(DataValidationError) as err:
        nightly(config=str(cfg), data=str(data))
    _assert_named(err.value, data, table, column, rule, example, file)
    assert _bundles(tmp) == before, "a bundle was written from bad data"
    assert read_latest(tmp / "bundles", "shedding") == summary["bundle_version"]


# --- property: random damage never escapes as anything but a named DataValidationError -------

_TABLE_FILES = [
    "services.parquet",
    "dependencies.parquet",
    "incidents.parquet",
    "workloads.parquet",
    "sites.parquet",
    "standby_candidates.parquet",
    DAY0,
    "health_checks/2026-10-02.parquet",
]
_ODD = [None, float("nan"), float("inf"), -1.0, -1e9, 1e12, "svc-ghost", "sideways", ""]


def _flip(t: pa.Table, column: str, rows: list[int], value) -> pa.Table:
    """Put ``value`` into ``rows`` of ``column``; a value of another type turns the column into strings."""
    i = t.column_names.index(column)
    values = t[column].to_pylist()
    for r in rows:
        values[r % len(values)] = value
    try:
        array = pa.array(values, t.schema.field(i).type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        array = pa.array([None if v is None else str(v) for v in values], pa.string())
    return t.set_column(i, pa.field(column, array.type), array)


damage = st.tuples(
    st.sampled_from(_TABLE_FILES),
    st.sampled_from(["flip", "flip", "flip", "drop", "truncate", "add"]),
    st.integers(0, 10),
    st.lists(st.integers(0, 10_000), min_size=1, max_size=40),
    st.sampled_from(_ODD),
)


@pytest.mark.e2e
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(damages=st.lists(damage, min_size=1, max_size=3))
def test_random_damage_is_valid_or_named(small_copy: Path, tmp_path_factory, damages) -> None:
    data = tmp_path_factory.mktemp("prop") / "data"
    shutil.copytree(small_copy, data)
    for file, kind, col, rows, value in damages:
        path = data / file
        if not path.exists() or path.stat().st_size == 0:
            continue
        if kind == "truncate":
            path.write_bytes(path.read_bytes()[: 1 + rows[0] % max(1, path.stat().st_size - 1)])
            continue
        t = pq.read_table(path)
        name = t.column_names[col % t.num_columns]
        if kind == "drop":
            t = t.drop_columns([name])
        elif kind == "add":
            t = t.append_column(
                f"extra_{col}",
                pa.array([value] * t.num_rows, pa.string())
                if isinstance(value, str)
                else pa.array([value] * t.num_rows),
            )
        elif t.num_rows:
            t = _flip(t, name, rows, value)
        pq.write_table(t, path)
    try:
        report, _ = ingest_and_validate(data)
    except DataValidationError as exc:
        assert exc.violations
        for v in exc.violations:  # every broken rule says where (table, file) and what
            assert v.table and v.rule and str(data) in (v.file or ""), str(v)
            assert f"table {v.table!r}" in str(exc) and v.rule in str(exc)
        return
    assert report.success and not report.violations
    from policies.schema import TABLES
    from policies.telemetry.ingest import conform_tables

    for name, table in conform_tables(report.clean).items():  # valid output: the contract, finite, in range
        assert table.schema.remove_metadata().equals(TABLES[name].remove_metadata())
    hc = report.clean["health_checks"]
    assert set(hc["status"].to_pylist()) <= {"up", "degraded", "down"}
    assert pc.min(hc["latency_ms"]).as_py() is None or pc.min(hc["latency_ms"]).as_py() >= 0
