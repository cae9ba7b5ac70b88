"""`qres keys tuf-init | tuf-sign | rotate`: the TUF channel's keys and metadata (policies.bundle.tuf_repo).

Key folders: the **root** pair lives in ``--root-dir`` (keep it offline: it is needed only to
start the channel and to rotate); the **online** pair in ``<bundle.key_dir>/tuf-online``. A
rotated pair is kept beside it as ``<name>.revoked-<UTC time>`` for the record, never used again.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOpt, StoreOpt, abs_path, console, fail, load_settings
from policies.errors import QresError

__all__ = ["register"]

ONLINE_DIR = "tuf-online"  # = policies.bundle.tuf_repo.ONLINE_KEY_DIR (not imported: python-tuf loads on use)
RootDirOpt = Annotated[Path, typer.Option("--root-dir", help="Folder of the offline TUF root key pair.")]


def _load(folder: Path):
    from qres_client.signing import PRIVATE_KEY_NAME, load_signing_key

    key = load_signing_key(folder / PRIVATE_KEY_NAME)
    if key is None:
        raise QresError(f"no key pair in {folder}; run `qres keys tuf-init` first")
    return key


def _new_pair(folder: Path):
    """Retire the pair in ``folder`` (renamed *.revoked-<time>) and create a new one there."""
    from qres_client.signing import init_keys

    if folder.exists():
        shutil.move(folder, folder.with_name(f"{folder.name}.revoked-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"))
    init_keys(folder)
    return _load(folder)


def tuf_init(config: ConfigOpt = None, store: StoreOpt = None, root_dir: RootDirOpt = Path("tuf-root")) -> None:
    """Start the TUF channel: root and online key pairs, root v1, signed targets/snapshot/timestamp."""
    from policies.bundle.tuf_repo import init_repository
    from qres_client.signing import init_keys

    settings = load_settings(config, store_dir=abs_path(store))
    try:
        init_keys(abs_path(root_dir))
        init_keys(settings.bundle.key_dir / ONLINE_DIR)
        root = init_repository(
            settings.store_dir, _load(abs_path(root_dir)), _load(settings.bundle.key_dir / ONLINE_DIR)
        )
    except QresError as exc:
        fail(exc)
    console.print(f"TUF channel started; give clients {root} (tuf_root=) and keep {root_dir} offline")


def tuf_sign(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Sign what the store holds now (run after every publish, and more often than the 1-day timestamp expiry)."""
    from policies.bundle.tuf_repo import publish_targets

    settings = load_settings(config, store_dir=abs_path(store))
    try:
        version = publish_targets(settings.store_dir, _load(settings.bundle.key_dir / ONLINE_DIR))
    except QresError as exc:
        fail(exc)
    console.print(f"signed targets version {version} with a fresh timestamp")


def rotate(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    root_dir: RootDirOpt = Path("tuf-root"),
    root: Annotated[bool, typer.Option("--root", help="Rotate the root pair too (e.g. after its compromise).")] = False,
) -> None:
    """Revoke the online key pair (and with --root the root pair): next root version, everything re-signed."""
    from policies.bundle.tuf_repo import rotate as rotate_keys

    settings = load_settings(config, store_dir=abs_path(store))
    folder = abs_path(root_dir)
    try:
        old_root = _load(folder)
        new_root = _new_pair(folder) if root else None
        new_online = _new_pair(settings.bundle.key_dir / ONLINE_DIR)
        version = rotate_keys(settings.store_dir, old_root, new_online_key=new_online, new_root_key=new_root)
    except QresError as exc:
        fail(exc)
    console.print(f"root version {version}: online{' and root' if root else ''} keys rotated, old ones revoked")


def register(keys: typer.Typer) -> None:
    keys.command("tuf-init")(tuf_init)
    keys.command("tuf-sign")(tuf_sign)
    keys.command("rotate")(rotate)
