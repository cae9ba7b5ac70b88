"""`qres replay`: rebuild a run's bundle from its logged inputs and settings, byte for byte."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import ConfigOpt, StoreOpt, abs_path, fail, load_settings, out
from flows.cli.versions import POLICY, bundle_of_version, mlflow_client
from flows.environment import configure_environment

if TYPE_CHECKING:
    from flows.settings import Settings
from policies.errors import QresError

__all__ = ["register", "replay_run"]


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

    client = mlflow_client(settings)
    run = client.get_run(run_id)
    params = run.data.params
    bundle_version = run.data.tags.get("qres.bundle_version")
    if not bundle_version:
        raise QresError(f"run {run_id} stored no bundle (tag qres.bundle_version); only nightly runs can be replayed")
    with tempfile.TemporaryDirectory(prefix="qres-replay-orig-") as tmp:
        original_dir = bundle_of_version(client, settings, POLICY, bundle_version, run_id, Path(tmp))
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


def replay(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="MLflow run id of a nightly run.")],
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


def register(app: typer.Typer) -> None:
    app.command()(replay)
