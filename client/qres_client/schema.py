"""The bundle's decision tables: what every family's decisions.parquet holds.

Here rather than in ``policies.schema`` because the client reads these tables and must
install without the pipeline: the pipeline writes them through the same definitions.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "DECISIONS_SHEDDING",
    "DECISIONS_SHEDDING_TIMED",
    "TIMING_COLUMNS",
    "DECISIONS_SHEDDING_ADMISSION",
    "ADMISSION_COLUMN",
    "DECISIONS_SHEDDING_LATE",
    "LATE_COLUMNS",
    "DECISIONS_STANDBY",
    "DECISIONS_ROUTING",
    "DECISIONS_TIERS",
    "DECISIONS_BY_POLICY",
]

# decisions.parquet of a shedding bundle: one row per (scenario, workload), ranked.
DECISIONS_SHEDDING = pa.schema(
    [
        pa.field("scenario_key", pa.string(), nullable=False),
        pa.field("down", pa.list_(pa.string()), nullable=False),  # root dependencies down
        pa.field("degraded", pa.list_(pa.string()), nullable=False),
        pa.field("effective_down", pa.list_(pa.string()), nullable=False),  # down after hard-dependency closure
        pa.field("probability", pa.float64(), nullable=False),
        pa.field("workload_id", pa.string(), nullable=False),
        pa.field("admit", pa.float64(), nullable=False),  # share admitted, 0..1
        pa.field("rank", pa.int32(), nullable=False),  # 1 = admit first, shed last
    ]
)

# A shedding table with the time rule of each action (policies/shedding/anticipation.py): optional
# columns after the shedding ones, so a client that does not know them carries them in
# ``Action.extras`` and applies ``admit`` at once; ``qres_client.controller`` applies them.
TIMING_COLUMNS = ("act_after_s", "hold_s")
DECISIONS_SHEDDING_TIMED = pa.schema(
    list(DECISIONS_SHEDDING)
    + [
        pa.field("act_after_s", pa.float64(), nullable=False),  # seconds in the state before switching to admit
        pa.field("hold_s", pa.float64(), nullable=False),  # after a switch, no re-admission before this
    ],
    metadata={"qres.policy": "shedding", "qres.subject": "workload_id", "qres.timing": "act_after_s,hold_s"},
)

# The timed table with each action's admission cap (policies/shedding/admission.py): ``admit_max`` is the
# share a service with admission control may run when capacity is there, serving in rank order (>= admit).
# A client that does not know it applies ``admit``, the plan's cut of the observed state.
ADMISSION_COLUMN = "admit_max"
DECISIONS_SHEDDING_ADMISSION = pa.schema(
    list(DECISIONS_SHEDDING_TIMED) + [pa.field(ADMISSION_COLUMN, pa.float64(), nullable=False)],
    metadata={
        "qres.policy": "shedding",
        "qres.subject": "workload_id",
        "qres.timing": "act_after_s,hold_s",
        "qres.admission": ADMISSION_COLUMN,
    },
)

# The admission table with each action's long-run step (policies/shedding/long_state.py): once the state has
# lasted ``then_after_s``, the share (and the cap) fall to ``then_admit``, the state's long-run risk shed. A row
# without one repeats its ``act_after_s`` and ``admit``. A client that does not know the columns never takes it.
LATE_COLUMNS = ("then_after_s", "then_admit")
DECISIONS_SHEDDING_LATE = pa.schema(
    list(DECISIONS_SHEDDING_ADMISSION)
    + [
        pa.field("then_after_s", pa.float64(), nullable=False),  # seconds in the state before the long-run step
        pa.field("then_admit", pa.float64(), nullable=False),  # share (and cap) from then on, <= admit
    ],
    metadata={
        "qres.policy": "shedding",
        "qres.subject": "workload_id",
        "qres.timing": "act_after_s,hold_s,then_after_s",
        "qres.admission": ADMISSION_COLUMN,
    },
)

# The other families' decisions.parquet start with exactly the shedding columns (so one client
# reads all of them: ``workload_id`` is the *subject* of the action, named in the schema
# metadata ``qres.subject``, and ``admit`` its share) and add columns of their own after them.
_ACTION_FIELDS = list(DECISIONS_SHEDDING)

# standby: per scenario, every chosen standby; admit 1.0 = activate it now, 0.0 = keep warm only.
DECISIONS_STANDBY = pa.schema(
    _ACTION_FIELDS
    + [
        pa.field("service_id", pa.string(), nullable=False),  # the service the standby replaces
        pa.field("site_id", pa.string(), nullable=False),
        pa.field("value_per_hour", pa.float64(), nullable=False),  # value it restores in this scenario
    ],
    metadata={
        "qres.policy": "standby",
        "qres.subject": "candidate_id",
        "qres.admit": "1.0 = activate this standby in the scenario, 0.0 = keep warm, not needed",
    },
)

# routing: per scenario, one row per endpoint (service@region); admit = share of the service's traffic.
DECISIONS_ROUTING = pa.schema(
    _ACTION_FIELDS
    + [
        pa.field("service_id", pa.string(), nullable=False),
        pa.field("locality", pa.string(), nullable=False),  # the endpoint's region
        pa.field("envoy_weight", pa.int32(), nullable=False),  # load_balancing_weight; 0 = mark unhealthy
        pa.field("healthy", pa.bool_(), nullable=False),
    ],
    metadata={
        "qres.policy": "routing",
        "qres.subject": "endpoint_id (service@region)",
        "qres.admit": "share of the service's traffic sent to the endpoint, 0..1",
    },
)

# tiers (shipped in the shedding bundle as tiers.parquet): one row per workload, no scenarios.
DECISIONS_TIERS = pa.schema(
    [
        pa.field("workload_id", pa.string(), nullable=False),
        pa.field("tier", pa.int8(), nullable=False),  # 0 = shed last .. T-1 = shed first
        pa.field("criticality", pa.string(), nullable=False),  # CRITICAL_PLUS, CRITICAL, SHEDDABLE_PLUS, SHEDDABLE
        pa.field("bucket", pa.string(), nullable=False),  # Netflix-style: CRITICAL, DEGRADED, BEST_EFFORT, BULK
        pa.field("priority", pa.int16(), nullable=False),  # 0..100, higher = shed later
    ],
    metadata={"qres.policy": "tiers", "qres.subject": "workload_id"},
)

DECISIONS_BY_POLICY: dict[str, pa.Schema] = {
    "shedding": DECISIONS_SHEDDING,
    "standby": DECISIONS_STANDBY,
    "routing": DECISIONS_ROUTING,
}
