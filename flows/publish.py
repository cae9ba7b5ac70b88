"""The one publish path every family takes: gates -> signed bundle -> MLflow model -> LATEST.

Every solved version is stored (signed) and registered as a candidate, so it can be served and
promoted later; LATEST and the ``champion`` alias move only when that family's gates pass, and
only after registration. Shedding differs from the other families in data only: its bundle also
carries the tiers and the health scores, its gates also compare the backtest with the champion's,
and its MLflow artifacts keep their first names (``model``, ``bundle``) for existing readers.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from functools import partial

from prefect.logging import get_run_logger
from prefect.utilities.annotations import quote

from flows.settings import Settings
from policies.errors import BundleVerificationError
from policies.gates import GateReport, evaluate_gates
from qres_client.bundle import read_latest, verify_bundle
from tasks.publish import move_latest, publish_policy_bundle, sign_tuf_channel
from tasks.solve import SolvedPolicy
from tasks.support.timeouts import with_timeout
from tasks.track import TrackingTarget, champion_metric, register_candidate, set_champion

__all__ = [
    "FamilyOutcome",
    "BacktestGate",
    "publish_family",
    "promote_families",
    "model_name",
    "artifact_dirs",
    "FAMILY_METRICS",
    "BACKTEST_SHARE",
]

# The metric each family is compared with its champion on, and its sense (+1: higher is better).
FAMILY_METRICS = {
    "shedding": ("shedding.expected_value_per_h", 1.0),
    "standby": ("standby.expected_covered_per_h", 1.0),
    "routing": ("routing.expected_objective_ms", -1.0),
}
BACKTEST_SHARE = "backtest.share.published"  # shedding's backtest figure the gates compare


@dataclass(frozen=True)
class BacktestGate:
    """Shedding's extra gate: the backtest's share of the oracle, against the champion's."""

    share: float | None
    min_share: float
    tolerance: float


@dataclass(frozen=True)
class FamilyOutcome:
    """One family's published (or held) version, for the run summary and the run's tags."""

    policy: str
    expected_value: float
    worst_gap: float | None
    chosen: dict[str, int]
    stored_version: str
    published: bool
    bundle_path: str | None
    model_version: str
    promoted: bool
    gates: dict
    signed: bool = False
    unchanged: bool = False  # a re-solve found LATEST already holding exactly these files

    def as_dict(self) -> dict:
        return asdict(self)


def model_name(settings: Settings, policy: str) -> str:
    return f"{settings.mlflow.registered_model_prefix}-{policy}"


def artifact_dirs(policy: str) -> tuple[str, str]:
    """(model, bundle files) artifact folders; shedding's kept their first names."""
    return ("model", "bundle") if policy == "shedding" else (f"model-{policy}", f"bundle-{policy}")


def _gates(
    settings: Settings,
    target: TrackingTarget,
    sp: SolvedPolicy,
    *,
    validation_passed: bool,
    backtest: BacktestGate | None,
) -> GateReport:
    name = model_name(settings, sp.policy)
    metric, sense = FAMILY_METRICS[sp.policy]
    _, champion = champion_metric(target, name, metric)
    extra = {}
    if backtest is not None:
        _, champion_share = champion_metric(target, name, BACKTEST_SHARE)
        extra = {
            "backtest_share": backtest.share,
            "champion_backtest_share": champion_share,
            "backtest_min_share": backtest.min_share,
            "backtest_tolerance": backtest.tolerance,
        }
    return evaluate_gates(
        validation_passed=validation_passed,
        infeasible=sp.infeasible,
        worst_gap=sp.worst_gap,
        expected_value=sense * sp.metrics[metric],
        champion_expected_value=None if champion is None else sense * champion,
        max_gap=settings.gates.max_gap,
        tolerance=settings.gates.tolerance,
        **extra,
    )


def publish_family(
    settings: Settings,
    target: TrackingTarget,
    run_id: str,
    sp: SolvedPolicy,
    *,
    run_manifest: dict,
    validation_passed: bool,
    manifest_metrics: dict[str, float] | None = None,
    backtest: BacktestGate | None = None,
    skip_unchanged: bool = False,
) -> FamilyOutcome:
    """Gate, store (signed) and register one solved family; :func:`promote_families` promotes.

    ``run_manifest`` holds the fields that describe the run (inputs, config, seed, versions,
    scenarios), the same in every family's bundle; ``manifest_metrics`` defaults to the family's.
    With ``skip_unchanged`` (a re-solve), files identical to LATEST's publish nothing: a new
    version with the same decisions would only be churn in ``qres versions`` and for clients.
    """
    if skip_unchanged and (same := _unchanged_latest(settings, sp)) is not None:
        return same
    step = partial(with_timeout, seconds=settings.orchestration.step_timeout_s)
    name = model_name(settings, sp.policy)
    gates = _gates(settings, target, sp, validation_passed=validation_passed, backtest=backtest)
    fields = {"mlflow_run_id": run_id, "mlflow_model": {"name": name}, "solvers": sp.solvers}
    fields |= {"gates": gates.as_dict(), "metrics": dict(sp.metrics if manifest_metrics is None else manifest_metrics)}
    stored = step(publish_policy_bundle)(
        settings.store_dir,
        sp.policy,
        quote(sp.files),  # quoted: plain data, not walked by Prefect for futures (0.02-0.03 s a call)
        quote({**run_manifest, **fields}),
        key_dir=settings.bundle.key_dir,
        set_latest=False,
    )
    version = _register(settings, target, run_id, sp, stored, gates)
    if not gates.passed:
        get_run_logger().warning(
            "%s: gates held %s back (%s); it stays stored as a candidate, LATEST as it was",
            sp.policy,
            stored.version,
            "; ".join(f"{c.name}: {c.detail}" for c in gates.failed),
        )
    return FamilyOutcome(
        policy=sp.policy,
        expected_value=sp.expected_value,
        worst_gap=sp.worst_gap,
        chosen=_chosen(sp),
        stored_version=stored.version,
        published=False,  # until promote_families moves LATEST
        bundle_path=None,
        model_version=version,
        promoted=gates.passed,
        gates=gates.as_dict(),
        signed=bool(stored.manifest["signatures"]),
    )


def promote_families(settings: Settings, target: TrackingTarget, outcomes: list[FamilyOutcome]) -> list[FamilyOutcome]:
    """Promote a run's passed families together: every champion alias first, then every LATEST.

    Called once, after every family of the run is stored and registered, inside the run's
    publish lock (:func:`tasks.support.locks.publish_lock`): an MLflow failure before the
    LATEST moves leaves every LATEST as it was, and the moves themselves are local renames.
    """
    step = partial(with_timeout, seconds=settings.orchestration.step_timeout_s)
    passed = [o for o in outcomes if o.promoted]
    for o in passed:
        set_champion(target.client(), model_name(settings, o.policy), o.model_version)
    moved = {}
    for o in passed:
        moved[o.policy] = step(move_latest)(
            settings.store_dir, o.policy, o.stored_version, keep=settings.bundle.keep_versions
        )
    if moved:  # still inside the publish lock: the TUF metadata moves with LATEST
        sign_tuf_channel(settings.store_dir, settings.bundle.key_dir)
    return [
        replace(o, published=True, bundle_path=str(moved[o.policy].path)) if o.policy in moved else o for o in outcomes
    ]


def _register(
    settings: Settings, target: TrackingTarget, run_id: str, sp: SolvedPolicy, stored, gates: GateReport
) -> str:
    """The family's results, run tags and pyfunc model, registered as a candidate: one MLflow step."""
    model_dir, files_dir = artifact_dirs(sp.policy)
    return with_timeout(register_candidate, seconds=settings.orchestration.step_timeout_s)(
        target,
        run_id,
        model_name(settings, sp.policy),
        bundle_path=stored.path,
        artifact_dir=model_dir,
        results=quote(
            {
                "metrics": sp.metrics,
                "files": sp.files,
                "artifact_dir": files_dir,
                "json_artifacts": {f"solvers-{sp.policy}.json": sp.solvers},
            }
        ),
        run_tags={
            f"qres.{sp.policy}.bundle_version": stored.version,
            f"qres.{sp.policy}.gates": "passed" if gates.passed else "held",
        },
    )


def _unchanged_latest(settings: Settings, sp: SolvedPolicy) -> FamilyOutcome | None:
    """LATEST's outcome when LATEST verifies and holds exactly ``sp``'s files, else None."""
    latest = read_latest(settings.store_dir, sp.policy)
    if latest is None:
        return None
    path = settings.store_dir / sp.policy / latest
    try:
        manifest = verify_bundle(path)
    except BundleVerificationError:
        return None  # a damaged LATEST is replaced, never kept because it looks the same
    listed = {name: entry["sha256"] for name, entry in manifest["files"].items()}
    if listed != {name: hashlib.sha256(data).hexdigest() for name, data in sp.files.items()}:
        return None
    detail = f"the decisions equal LATEST {latest}'s: nothing published (qres resolve --force publishes anyway)"
    get_run_logger().info("%s: %s", sp.policy, detail)
    return FamilyOutcome(
        policy=sp.policy,
        expected_value=sp.expected_value,
        worst_gap=sp.worst_gap,
        chosen=_chosen(sp),
        stored_version=latest,
        published=False,
        bundle_path=str(path),
        model_version=str(manifest.get("mlflow_model", {}).get("version", "")),
        promoted=False,
        gates={"passed": True, "checks": [{"name": "unchanged", "passed": True, "detail": detail}]},
        signed=bool(manifest.get("signatures")),
        unchanged=True,
    )


def _chosen(sp: SolvedPolicy) -> dict[str, int]:
    wins: dict[str, int] = {}
    for record in sp.solvers:
        wins[record["chosen"]] = wins.get(record["chosen"], 0) + 1
    return wins
