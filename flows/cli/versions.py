"""`qres promote`, `qres rollback`, `qres versions`: champions and LATEST, moved together.

Promotion and rollback move the registry's ``champion`` alias and the store's LATEST
together. LATEST only ever moves *forward*: promoting a version older than LATEST
republishes its exact files as a new version (signed anew, ``republished_from`` in the
manifest), so clients with rollback protection follow a deliberate rollback while
still refusing a replayed old LATEST.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import ConfigOpt, StoreOpt, abs_path, console, fail, load_settings, load_store_settings, out
from flows.environment import configure_environment

if TYPE_CHECKING:
    from flows.settings import Settings
    from flows.store_settings import StoreSettings
from policies.errors import QresError

__all__ = [
    "register",
    "promote_version",
    "rollback_champion",
    "bundle_of_version",
    "mlflow_client",
    "public_key_source",
]

POLICY = "shedding"
_RESERVED = ("schema_version", "policy", "version", "created_at", "files", "signatures")


def mlflow_client(settings: Settings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def bundle_of_version(client, settings: Settings, policy: str, bundle_version: str, run_id: str, tmp: Path) -> Path:
    """A stored bundle folder, or its copy in the run's MLflow model when pruned from the store."""
    from flows.publish import artifact_dirs

    path = settings.store_dir / policy / bundle_version
    if path.is_dir():
        return path
    model_dir, _ = artifact_dirs(policy)
    return Path(client.download_artifacts(run_id, f"{model_dir}/artifacts/store/{policy}/{bundle_version}", str(tmp)))


def _bundle_of(client, settings: Settings, policy: str, model_version: str, tmp: Path) -> Path:
    """The bundle folder of a registered version: in the store, or else from its MLflow model."""
    from flows.publish import model_name

    name = model_name(settings, policy)
    mv = client.get_model_version(name, model_version)
    bundle_version = (mv.tags or {}).get("qres.bundle_version")
    if not bundle_version:
        raise QresError(f"model version {model_version} of {name} names no bundle (tag qres.bundle_version)")
    return bundle_of_version(client, settings, policy, bundle_version, mv.run_id, tmp)


def promote_version(settings: Settings, model_version: str, policy: str = POLICY) -> str:
    """Make ``model_version`` champion and its bundle LATEST; returns the store version now LATEST."""
    from flows.publish import model_name
    from policies.bundle.store import set_latest
    from qres_client.bundle import read_bundle, read_latest, version_number
    from qres_client.signing import PUBLIC_KEY_NAME, load_public_keys, verify_manifest_signatures
    from tasks.publish import publish_signed
    from tasks.track import set_champion

    client = mlflow_client(settings)
    name = model_name(settings, policy)
    with tempfile.TemporaryDirectory(prefix="qres-promote-") as tmp:
        path = _bundle_of(client, settings, policy, str(model_version), Path(tmp))
        manifest, files = read_bundle(path)
        pub = settings.bundle.key_dir / PUBLIC_KEY_NAME
        verify_manifest_signatures(
            manifest,
            load_public_keys(pub) if pub.is_file() else load_public_keys(None),
            str(path),
            allow_unsigned=settings.bundle.allow_unsigned,
        )
        latest = read_latest(settings.store_dir, policy)
        in_store = path.parent == settings.store_dir / policy
        if in_store and (latest is None or version_number(path.name) > version_number(latest)):
            set_latest(settings.store_dir, policy, path.name)
            now = path.name
        else:  # older than LATEST (or pruned): republish the same bytes as a new version
            fields = {k: v for k, v in manifest.items() if k not in _RESERVED}
            fields["republished_from"] = manifest["version"]
            now = publish_signed(
                settings.store_dir,
                policy,
                files,
                fields,
                key_dir=settings.bundle.key_dir,
                keep=settings.bundle.keep_versions,
            ).version
    set_champion(client, name, str(model_version))
    return now


def rollback_champion(settings: Settings, policy: str = POLICY) -> tuple[str, str]:
    """Undo the last champion change; returns (model version, store version now LATEST).

    Repeated rollbacks walk further back through the champion history.
    """
    from flows.publish import model_name
    from tasks.track import champion_history, set_champion

    client = mlflow_client(settings)
    name = model_name(settings, policy)
    history = champion_history(client, name)
    if len(history) < 2:
        raise QresError(f"{name} has had at most one champion: there is no earlier one to roll back to")
    earlier = history[:-1]
    target = earlier[-1]
    latest = promote_version(settings, target, policy)
    set_champion(client, name, target, history=earlier)
    return target, latest


def promote(
    model_version: Annotated[
        str, typer.Argument(metavar="MODEL_VERSION", help="Registered model version to make champion.")
    ],
    config: ConfigOpt = None,
    store: StoreOpt = None,
    policy: Annotated[str, typer.Option(help="Policy family.")] = POLICY,
) -> None:
    """Make a model version champion and publish its bundle as LATEST (republished if older)."""
    settings = load_settings(config, store_dir=abs_path(store))
    configure_environment(settings.state_dir)
    try:
        latest = promote_version(settings, model_version, policy)
    except QresError as exc:
        fail(exc)
    console.print(f"model version {model_version} is champion; LATEST is {latest}")


def rollback(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    policy: Annotated[str, typer.Option(help="Policy family.")] = POLICY,
) -> None:
    """Make the previous champion champion again and republish its bundle as LATEST."""
    settings = load_settings(config, store_dir=abs_path(store))
    configure_environment(settings.state_dir)
    try:
        version, latest = rollback_champion(settings, policy)
    except QresError as exc:
        fail(exc)
    console.print(f"rolled back: model version {version} is champion; LATEST is {latest}")


def versions(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    policy: Annotated[str, typer.Option(help="Policy family.")] = POLICY,
) -> None:
    """List the stored versions of a policy: which is LATEST, signed, gates, source run."""
    from qres_client.bundle import list_versions, read_latest, verify_bundle

    settings = load_store_settings(config, store_dir=abs_path(store))
    latest = read_latest(settings.store_dir, policy)
    from rich.table import Table

    table = Table(title=f"{policy} in {settings.store_dir}")
    for col in ("version", "LATEST", "signed", "gates", "MLflow run", "republished from"):
        table.add_column(col)
    for v in list_versions(settings.store_dir, policy):
        try:
            m = verify_bundle(settings.store_dir / policy / v)
        except QresError as exc:
            table.add_row(v, "", "", f"[red]{exc}[/]", "", "")
            continue
        table.add_row(
            v,
            "*" if v == latest else "",
            "yes" if m.get("signatures") else "[yellow]no[/]",
            "passed" if m.get("gates", {}).get("passed") else "held",
            str(m.get("mlflow_run_id", "")),
            str(m.get("republished_from", "")),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(promote)
    app.command()(rollback)
    app.command()(versions)


def public_key_source(settings: Settings | StoreSettings) -> Path | None:
    """The public key file readers use: ``<bundle.key_dir>/qres-signing.pub`` if present, else
    None (then ``$QRES_PUBLIC_KEY`` is read)."""
    from qres_client.signing import PUBLIC_KEY_NAME

    path = settings.bundle.key_dir / PUBLIC_KEY_NAME
    return path if path.is_file() else None
