"""A deterministic, realistic sample of outage telemetry: the bundled demo data and fleets of any size.

Why: the pipeline, its tests and the quickstart need telemetry with known truths planted in
it (region outages, SaaS outages with their hard dependents down and soft dependents
degraded, single-service outages and degradations, flapping probes, quiet services), so that
what the pipeline estimates can be checked against what was planted; the scale benchmarks need
the same at hundreds or thousands of services. Everything comes from
``np.random.default_rng(seed)``; the start date is fixed, never "now", and the same arguments give
the same tables and the same Parquet bytes.
"""

from __future__ import annotations

from policies.telemetry.sample.build import generate_sample, write_sample

__all__ = ["generate_sample", "write_sample"]
