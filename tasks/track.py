"""Track: one MLflow run per flow run, and the registry model per policy family.

Uses ``MlflowClient`` with an explicit run id rather than ``mlflow.start_run``'s
global active run, so that concurrent flows in one process cannot mix their runs. MLflow is
imported on first use, not with this module: the nightly loads it on a background thread while
it ingests (tasks/support/tracking_warmup.py), and the first client waits for that.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

import qres_client
from policies.solve.portfolio import package_versions
from tasks.support.preflight import tracking_outage
from tasks.support.tracking_warmup import wait_warm

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "tracking_outage",
    "TrackingTarget",
    "library_versions",
    "start_run",
    "log_run_results",
    "register_candidate",
    "save_policy_model",
    "champion_metric",
    "set_champion",
    "champion_history",
    "finish_run",
]

CANDIDATE, CHAMPION = "candidate", "champion"
_MODEL_CODE = Path(__file__).parent / "support" / "pyfunc_model.py"
_LIBRARIES = (
    "qresilience",
    "prefect",
    "mlflow",
    "great-expectations",
    "ortools",
    "dimod",
    "dwave-samplers",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "cryptography",
)


@dataclass(frozen=True)
class TrackingTarget:
    """Where runs go: a tracking URI, an experiment name and its artifact root."""

    tracking_uri: str
    experiment: str
    artifact_root: Path

    def client(self) -> MlflowClient:
        wait_warm()  # MLflow loading on the warm-up thread: not twice at once
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, client: MlflowClient) -> str:
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        return client.create_experiment(self.experiment, artifact_location=self.artifact_root.resolve().as_uri())


def library_versions() -> dict[str, str]:
    """Versions of everything that shapes a bundle, for params and the manifest."""
    return dict(package_versions(*_LIBRARIES))


def _local_source(uri: str):
    # MLflow registers its local-file dataset source twice and warns when resolving by
    # URI; pick the class by name instead of silencing the warning.
    from mlflow.data.dataset_source_registry import get_registered_sources

    source_cls = next(s for s in get_registered_sources() if s.__name__ == "LocalArtifactDatasetSource")
    return source_cls(uri)


@task(name="track-start", cache_policy=NO_CACHE)
def start_run(
    target: TrackingTarget,
    *,
    run_name: str,
    params: dict[str, Any],
    inputs: dict[str, tuple[str, str]],
    tags: dict[str, str],
) -> str:
    """Open the MLflow run: params (settings, seed, versions) and the input snapshot.

    ``inputs`` maps table name to ``(source uri, sha256)``; each becomes an MLflow
    dataset input whose digest is the table's sha256.
    """
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag, Param

    client = target.client()
    run = client.create_run(target.experiment_id(client), run_name=run_name, tags=tags)
    run_id = run.info.run_id
    flat = {
        **{k: json.dumps(v) if isinstance(v, (list, dict)) else str(v) for k, v in params.items()},
        **{f"version.{k}": v for k, v in library_versions().items()},
    }
    params_list = [Param(k, v[:6000]) for k, v in sorted(flat.items())]
    for i in range(0, len(params_list), 100):
        client.log_batch(run_id, params=params_list[i : i + 100])
    datasets = [
        DatasetInput(
            MetaDataset(source=_local_source(uri), name=name, digest=sha[:16])._to_mlflow_entity(),
            tags=[InputTag("mlflow.data.context", "telemetry"), InputTag("sha256", sha)],
        )
        for name, (uri, sha) in sorted(inputs.items())
    ]
    client.log_inputs(run_id, datasets=datasets)
    get_run_logger().info("MLflow run %s opened in experiment %r", run_id, target.experiment)
    return run_id


@task(name="track-results", cache_policy=NO_CACHE)
def log_run_results(
    target: TrackingTarget,
    run_id: str,
    *,
    metrics: dict[str, float],
    files: dict[str, bytes],
    json_artifacts: dict[str, Any],
    artifact_dir: str = "bundle",
) -> None:
    """Metrics, the bundle files and JSON reports as artifacts of the run."""
    from mlflow.entities import Metric

    client = target.client()
    ms = [Metric(k, float(v), 0, 0) for k, v in sorted(metrics.items()) if v is not None]
    for i in range(0, len(ms), 500):
        client.log_batch(run_id, metrics=ms[i : i + 500])
    with tempfile.TemporaryDirectory(prefix="qres-artifacts-") as tmp:
        bundle = Path(tmp, artifact_dir)
        bundle.mkdir()
        for name, data in files.items():  # a name may hold subfolders ("quarantine/health_checks.parquet")
            path = (bundle / name).resolve()
            if not path.is_relative_to(bundle.resolve()):
                raise ValueError(f"artifact name {name!r} leaves the artifact folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if files:
            client.log_artifacts(run_id, str(bundle), artifact_dir)
        reports = Path(tmp, "reports")
        reports.mkdir()
        for name, obj in json_artifacts.items():
            (reports / name).write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
        if json_artifacts:
            client.log_artifacts(run_id, str(reports), "reports")


def save_policy_model(bundle_path: Path, out_dir: Path) -> Path:
    """Save the bundle as an MLflow pyfunc model from code (tasks/pyfunc_model.py), no pickle.

    The model's ``store`` artifact is a one-version store holding the bundle's bytes as
    published (same version, same signatures), and ``policies/`` goes along as code, so
    ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` answer exactly like the
    runtime client, with the same verification.
    """
    import mlflow.pyfunc

    from tasks.support.pyfunc_model import model_input_example, model_signature

    bundle_path = Path(bundle_path)
    store = out_dir / "store"
    shutil.copytree(bundle_path, store / bundle_path.parent.name / bundle_path.name)
    (store / bundle_path.parent.name / "LATEST").write_text(bundle_path.name + "\n", encoding="ascii")
    artifacts = {"store": str(store)}  # no public key: the model trusts the deployment's, never its own
    model_dir = out_dir / "model"
    versions = package_versions("mlflow", "pandas", "pyarrow", "cryptography")
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=str(_MODEL_CODE),
        artifacts=artifacts,
        code_paths=[str(Path(qres_client.__file__).parent)],  # the model needs only the client
        pip_requirements=[f"{name}=={v}" for name, v in versions.items() if v != "unknown"],
        metadata={"qres.policy": bundle_path.parent.name, "qres.bundle_version": bundle_path.name},
        signature=model_signature(),
        input_example=model_input_example(),
    )
    return model_dir


@task(name="track-register", cache_policy=NO_CACHE)
def register_candidate(
    target: TrackingTarget,
    run_id: str,
    model_name: str,
    *,
    bundle_path: Path,
    artifact_dir: str = "model",
    results: dict | None = None,
    run_tags: dict[str, str] | None = None,
) -> str:
    """Log the bundle as a pyfunc model and register it as a new version with alias candidate.

    ``results`` (the keyword arguments of :func:`log_run_results`) and ``run_tags`` are logged
    first, in the same step: one task per published bundle rather than one per MLflow call
    (each Prefect task run costs ~25 ms of CPU on the embedded API, measured).
    """
    from mlflow.entities import RunTag
    from mlflow.exceptions import MlflowException

    client = target.client()
    if results is not None:
        log_run_results.fn(target, run_id, **results)
    if run_tags:
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in sorted(run_tags.items())])
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name, description="qresilience policy bundles; aliases candidate/champion")
    with tempfile.TemporaryDirectory(prefix="qres-model-") as tmp:
        model_dir = save_policy_model(Path(bundle_path), Path(tmp))
        client.log_artifacts(run_id, str(model_dir), artifact_dir)
    run = client.get_run(run_id)
    mv = client.create_model_version(
        model_name,
        source=f"{run.info.artifact_uri}/{artifact_dir}",
        run_id=run_id,
        tags={"qres.bundle_version": Path(bundle_path).name},
    )
    client.set_registered_model_alias(model_name, CANDIDATE, mv.version)
    return str(mv.version)


def champion_metric(target: TrackingTarget, model_name: str, metric: str) -> tuple[str | None, float | None]:
    """The champion's model version and its value of ``metric``, if there is a champion."""
    from mlflow.exceptions import MlflowException

    client = target.client()
    try:
        mv = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None, None
    if not mv.run_id:
        return str(mv.version), None
    return str(mv.version), client.get_run(mv.run_id).data.metrics.get(metric)


CHAMPION_HISTORY = "qres.champion_history"


def champion_history(client: MlflowClient, model_name: str) -> list[str]:
    """Model versions that were champion, oldest first (a registered-model tag)."""
    tags = client.get_registered_model(model_name).tags or {}
    return json.loads(tags.get(CHAMPION_HISTORY, "[]"))


def set_champion(client: MlflowClient, model_name: str, model_version: str, history: list[str] | None = None) -> None:
    """Move the champion alias and record it, so `qres rollback` can go back step by step."""
    if history is None:
        history = champion_history(client, model_name) + [str(model_version)]
    client.set_registered_model_tag(model_name, CHAMPION_HISTORY, json.dumps(history[-200:]))
    client.set_model_version_tag(model_name, model_version, "qres.was_champion", "true")
    client.set_registered_model_alias(model_name, CHAMPION, model_version)


@task(name="track-finish", cache_policy=NO_CACHE)
def finish_run(
    target: TrackingTarget,
    run_id: str,
    *,
    tags: dict[str, str],
    json_artifacts: dict[str, Any],
    failed: bool = False,
) -> None:
    """Record the run's outcome and close it (champions moved with each family's publish)."""
    from mlflow.entities import RunStatus, RunTag

    client = target.client()
    if tags:  # one round trip for every tag
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in sorted(tags.items())])
    if json_artifacts:
        with tempfile.TemporaryDirectory(prefix="qres-artifacts-") as tmp:
            for name, obj in json_artifacts.items():
                Path(tmp, name).write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
            client.log_artifacts(run_id, tmp, "reports")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED))
