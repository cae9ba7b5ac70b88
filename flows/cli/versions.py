"""`qres keys init`, `qres promote`, `qres rollback`, `qres replay`, `qres versions`.

Promotion and rollback move the registry's ``champion`` alias and the store's LATEST
together. LATEST only ever moves *forward*: promoting a version older than LATEST
republishes its exact files as a new version (signed anew, ``republished_from`` in the
manifest), so clients with rollback protection follow a deliberate rollback while
still refusing a replayed old LATEST.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import ConfigOpt, StoreOpt, abs_path, console, fail, out
from flows.environment import configure_environment
from flows.settings import Settings, load_settings
from policies.errors import QresError

__all__ = ["register", "promote_version", "rollback_champion", "replay_run", "public_key_source"]

POLICY = "shedding"
_RESERVED = ("schema_version", "policy", "version", "created_at", "files", "signatures")


def _mlflow(settings: Settings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _model_name(settings: Settings, policy: str) -> str:
    return f"{settings.mlflow.registered_model_prefix}-{policy}"


def _bundle_of(client, settings: Settings, model_name: str, model_version: str, tmp: Path) -> Path:
    """The bundle folder of a registered version: in the store, or else from its MLflow model."""
    mv = client.get_model_version(model_name, model_version)
    bundle_version = (mv.tags or {}).get("qres.bundle_version")
    if not bundle_version:
        raise QresError(f"model version {model_version} of {model_name} names no bundle (tag qres.bundle_version)")
    path = settings.store_dir / POLICY / bundle_version
    if path.is_dir():
        return path
    local = Path(client.download_artifacts(mv.run_id, f"model/artifacts/store/{POLICY}/{bundle_version}", str(tmp)))
    return local


def promote_version(settings: Settings, model_version: str, policy: str = POLICY) -> str:
    """Make ``model_version`` champion and its bundle LATEST; returns the store version now LATEST."""
    from qres_client.bundle import read_bundle, read_latest, set_latest, version_number
    from qres_client.signing import PUBLIC_KEY_NAME, load_public_keys, verify_manifest_signatures
    from tasks.publish import publish_signed
    from tasks.track import set_champion

    client = _mlflow(settings)
    name = _model_name(settings, policy)
    with tempfile.TemporaryDirectory(prefix="qres-promote-") as tmp:
        path = _bundle_of(client, settings, name, str(model_version), Path(tmp))
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
    from tasks.track import champion_history, set_champion

    client = _mlflow(settings)
    name = _model_name(settings, policy)
    history = champion_history(client, name)
    if len(history) < 2:
        raise QresError(f"{name} has had at most one champion: there is no earlier one to roll back to")
    earlier = history[:-1]
    target = earlier[-1]
    latest = promote_version(settings, target, policy)
    set_champion(client, name, target, history=earlier)
    return target, latest


def _settings_from_params(params: dict[str, str]) -> str:
    """A qres.toml with the run's logged settings (paths and derived values left out)."""
    sections: dict[str, dict[str, object]] = {}
    top: dict[str, object] = {}
    for key, raw in sorted(params.items()):
        if key.startswith("version.") or key in ("config_hash", "snapshot") or key.endswith("_dir"):
            continue
        if raw == "None":  # params are str(value): None, True and False come back as Python names
            continue
        try:
            value = {"True": True, "False": False}.get(raw, None)
            value = json.loads(raw) if value is None else value
        except ValueError:
            value = raw
        if value is None:
            continue
        section, _, leaf = key.rpartition(".")
        (sections.setdefault(section, {}) if section else top)[leaf] = value
    lines = [f"{k} = {json.dumps(v)}" for k, v in top.items()]
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def replay_run(settings: Settings, run_id: str, out_dir: Path) -> dict:
    """Rebuild a run's bundle from its logged inputs and settings; the files must match byte for byte.

    The rebuild runs the real nightly flow into ``out_dir`` (its own store and MLflow
    state), so it exercises exactly the code a nightly run does.
    """
    from qres_client.bundle import read_bundle

    client = _mlflow(settings)
    run = client.get_run(run_id)
    params = run.data.params
    bundle_version = run.data.tags.get("qres.bundle_version")
    if not bundle_version:
        raise QresError(f"run {run_id} stored no bundle (tag qres.bundle_version); only nightly runs can be replayed")
    original_dir = settings.store_dir / POLICY / bundle_version
    with tempfile.TemporaryDirectory(prefix="qres-replay-orig-") as tmp:
        if not original_dir.is_dir():  # pruned from the store: the MLflow model keeps a copy
            original_dir = Path(
                client.download_artifacts(run_id, f"model/artifacts/store/{POLICY}/{bundle_version}", tmp)
            )
        manifest, original = read_bundle(original_dir)
        data_dir = Path(manifest.get("data_dir") or params.get("data_dir", ""))
        logged_sha = manifest["inputs"]["sha256"]
        if not data_dir.is_dir():
            raise QresError(f"replay of run {run_id}: its input folder {data_dir} no longer exists")
        if out_dir.exists() and any(out_dir.iterdir()):
            raise QresError(f"replay output folder {out_dir} is not empty; choose a new one")
        out_dir.mkdir(parents=True, exist_ok=True)
        config = out_dir / "qres.toml"
        config.write_text(_settings_from_params(params))
        from flows.nightly import nightly

        summary = nightly(data=str(data_dir), store=str(out_dir / "store"), config=str(config))
        rebuilt_dir = out_dir / "store" / POLICY / "v000001"
        rebuilt_manifest, rebuilt = read_bundle(rebuilt_dir)
    changed_inputs = sorted(
        t
        for t in set(logged_sha) | set(rebuilt_manifest["inputs"]["sha256"])
        if logged_sha.get(t) != rebuilt_manifest["inputs"]["sha256"].get(t)
    )
    if changed_inputs:
        raise QresError(
            f"replay of run {run_id}: input table(s) {changed_inputs} in {data_dir} no longer match the "
            "sha256 the run logged; restore the original files to replay it"
        )
    differing = sorted(n for n in set(original) | set(rebuilt) if original.get(n) != rebuilt.get(n))
    if differing:
        raise QresError(
            f"replay of run {run_id}: rebuilt file(s) {differing} differ from bundle {bundle_version} "
            f"(rebuilt in {rebuilt_dir}); the run is not reproducible with this code and environment"
        )
    return {
        "run_id": run_id,
        "bundle_version": bundle_version,
        "rebuilt": str(rebuilt_dir),
        "files": sorted(original),
        "replay_run_id": summary["mlflow_run_id"],
    }


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="Signing keys for bundles (Ed25519 + ML-DSA-65).", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("init")
    def keys_init(
        config: ConfigOpt = None,
        key_dir: Annotated[Path | None, typer.Option("--dir", help="Key folder (default bundle.key_dir).")] = None,
        overwrite: Annotated[bool, typer.Option(help="Replace an existing key pair.")] = False,
        exist_ok: Annotated[bool, typer.Option("--exist-ok", help="Succeed quietly if keys exist.")] = False,
    ) -> None:
        """Create a signing key pair: qres-signing.key (mode 0600) and qres-signing.pub for clients."""
        from qres_client.signing import PRIVATE_KEY_NAME, init_keys

        settings = load_settings(config)
        folder = abs_path(key_dir) or settings.bundle.key_dir
        if exist_ok and (folder / PRIVATE_KEY_NAME).is_file():
            console.print(f"signing keys already in {folder}")
            return
        try:
            private, public = init_keys(folder, overwrite=overwrite)
        except QresError as exc:
            fail(exc)
        console.print(f"created {private} (owner-only) and {public}; give clients the .pub file")

    @app.command()
    def promote(
        model_version: Annotated[str, typer.Argument(help="Registered model version to make champion.")],
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

    @app.command()
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

    @app.command()
    def replay(
        run_id: Annotated[str, typer.Argument(help="MLflow run id of a nightly run.")],
        out_dir: Annotated[Path, typer.Option("--out", "-o", help="Empty folder for the rebuilt bundle.")],
        config: ConfigOpt = None,
        store: StoreOpt = None,
    ) -> None:
        """Rebuild a run's bundle from its logged inputs and settings and check the bytes are identical."""
        settings = load_settings(config, store_dir=abs_path(store))
        configure_environment(settings.state_dir)
        try:
            result = replay_run(settings, run_id, out_dir.resolve())
        except QresError as exc:
            fail(exc)
        out.print(
            f"[green]identical[/]: {', '.join(result['files'])} of bundle {result['bundle_version']} "
            f"rebuilt byte for byte in {result['rebuilt']}"
        )

    @app.command()
    def versions(
        config: ConfigOpt = None,
        store: StoreOpt = None,
        policy: Annotated[str, typer.Option(help="Policy family.")] = POLICY,
    ) -> None:
        """List the stored versions of a policy: which is LATEST, signed, gates, source run."""
        from qres_client.bundle import list_versions, read_latest, verify_bundle

        settings = load_settings(config, store_dir=abs_path(store))
        latest = read_latest(settings.store_dir, policy)
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


def public_key_source(settings: Settings) -> Path | None:
    """The public key file readers use: ``<bundle.key_dir>/qres-signing.pub`` if present, else
    None (then ``$QRES_PUBLIC_KEY`` is read)."""
    from qres_client.signing import PUBLIC_KEY_NAME

    path = settings.bundle.key_dir / PUBLIC_KEY_NAME
    return path if path.is_file() else None
