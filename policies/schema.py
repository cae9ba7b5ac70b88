"""Data contracts: the input telemetry tables and the bundle's decision table.

Every table that enters the pipeline is cast to one of these schemas first (pyarrow
does the type checking); the semantic rules (ranges, allowed values, references
between tables) live in the Great Expectations suites under ``data/expectations``.
Timestamps are UTC with millisecond precision.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "SERVICE_KINDS",
    "STATUSES",
    "SEVERITIES",
    "TABLES",
    "REQUIRED_TABLES",
    "OPTIONAL_COLUMNS",
    "with_optional_columns",
    "PARTITIONED_TABLES",
    "SERVICES",
    "DEPENDENCIES",
    "HEALTH_CHECKS",
    "INCIDENTS",
    "WORKLOADS",
    "SITES",
    "STANDBY_CANDIDATES",
    "schema_for",
]

SERVICE_KINDS = ("internal", "saas", "edge", "region")
STATUSES = ("up", "degraded", "down")
SEVERITIES = (1, 2, 3, 4)  # 1 = most severe

TS = pa.timestamp("ms", tz="UTC")

SERVICES = pa.schema(
    [
        pa.field("service_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # one of SERVICE_KINDS
        pa.field("tier", pa.int8(), nullable=False),  # 0 = most critical .. 3
        pa.field("capacity", pa.float64(), nullable=False),  # capacity units (regions carry the compute pool)
        pa.field("region", pa.string()),  # home region; null for global SaaS and for regions themselves
    ]
)

DEPENDENCIES = pa.schema(
    [
        pa.field("service_id", pa.string(), nullable=False),
        pa.field("depends_on", pa.string(), nullable=False),
        pa.field("hard", pa.bool_(), nullable=False),  # hard: unusable without it; soft: usable with risk
    ]
)

HEALTH_CHECKS = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("service_id", pa.string(), nullable=False),
        pa.field("probe", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # one of STATUSES
        pa.field("latency_ms", pa.float64()),  # null when the check timed out
        pa.field("error_rate", pa.float64()),  # share of failed requests in the check, 0..1
        pa.field("http_code", pa.int16()),  # null when no response
    ]
)

INCIDENTS = pa.schema(
    [
        pa.field("incident_id", pa.string(), nullable=False),
        pa.field("started_at", TS, nullable=False),
        pa.field("resolved_at", TS),  # null while open
        pa.field("severity", pa.int8(), nullable=False),  # one of SEVERITIES
        pa.field("affected", pa.list_(pa.string()), nullable=False),  # service ids
        pa.field("summary", pa.string()),
    ]
)

RISK = pa.struct(
    [
        pa.field("depends_on", pa.string(), nullable=False),
        pa.field("cost_per_hour", pa.float64(), nullable=False),
    ]
)

WORKLOADS = pa.schema(
    [
        pa.field("workload_id", pa.string(), nullable=False),
        pa.field("service_id", pa.string(), nullable=False),  # the service that runs it
        pa.field("value_per_hour", pa.float64(), nullable=False),
        pa.field("demand", pa.float64(), nullable=False),  # capacity units at full admission
        pa.field("requires", pa.list_(pa.string()), nullable=False),  # hard dependencies
        pa.field("risks", pa.list_(RISK), nullable=False),  # cost per hour of running while a soft dependency is down
        pa.field("min_share", pa.float64(), nullable=False),  # share that must stay admitted, 0..1
        pa.field("tier", pa.int8(), nullable=False),
        # Optional (OPTIONAL_COLUMNS): seconds of lost work per full drain and of warm-up per full
        # restart of the workload's admitted share; null = the backtest's default (policies/backtest/costs.py).
        pa.field("switch_cost_s", pa.float64()),
        pa.field("warmup_s", pa.float64()),
    ]
)

SITES = pa.schema(
    [
        pa.field("site_id", pa.string(), nullable=False),
        pa.field("region", pa.string()),  # the region whose outage takes the site down; null for on-prem
        pa.field("budget", pa.float64(), nullable=False),
    ]
)

STANDBY_CANDIDATES = pa.schema(
    [
        pa.field("candidate_id", pa.string(), nullable=False),
        pa.field("service_id", pa.string(), nullable=False),  # what the standby replaces
        pa.field("site_id", pa.string(), nullable=False),
        pa.field("cost", pa.float64(), nullable=False),
        pa.field("coverage", pa.float64(), nullable=False),  # share of the service's value it keeps, 0..1
    ]
)

TABLES: dict[str, pa.Schema] = {
    "services": SERVICES,
    "dependencies": DEPENDENCIES,
    "health_checks": HEALTH_CHECKS,
    "incidents": INCIDENTS,
    "workloads": WORKLOADS,
    "sites": SITES,
    "standby_candidates": STANDBY_CANDIDATES,
}

# Columns a file may leave out: a missing one reads as nulls (its consumer's documented default).
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"workloads": ("switch_cost_s", "warmup_s")}


def with_optional_columns(name: str, table: pa.Table) -> pa.Table:
    """``table`` with every optional column of ``name`` it lacks added as nulls of the contract type."""
    schema = TABLES.get(name)
    for col in OPTIONAL_COLUMNS.get(name, ()):
        if col not in table.column_names:
            table = table.append_column(schema.field(col), pa.nulls(table.num_rows, schema.field(col).type))
    return table


# Tables the nightly shedding pipeline cannot run without; the others are optional.
REQUIRED_TABLES = ("services", "dependencies", "health_checks", "incidents", "workloads")

# Stored as a folder of day files (``health_checks/2026-10-01.parquet``) rather than one file.
PARTITIONED_TABLES = ("health_checks",)


def schema_for(table: str) -> pa.Schema:
    """The schema of a telemetry table, with a helpful error for unknown names."""
    try:
        return TABLES[table]
    except KeyError:
        raise KeyError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}") from None
