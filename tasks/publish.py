"""Publish: write a signed, verified bundle atomically into the store, then prune old versions."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.bundle.store import PublishedBundle, prune_versions, publish_bundle, set_latest
from policies.errors import ConfigError
from qres_client.bundle import verify_bundle
from qres_client.signing import PRIVATE_KEY_NAME, SIGNING_KEY_ENV, load_signing_key, verify_manifest_signatures
from tasks.support.locks import PUBLISH_LIMIT, hold_limit
from tasks.support.retry import retry_on_io_error

__all__ = ["publish_policy_bundle", "publish_signed", "move_latest", "public_key_json", "sign_tuf_channel"]


def public_key_json(key_dir: Path | None) -> str | None:
    """The public half of the signing key publishers use (key file or $QRES_SIGNING_KEY), as JSON."""
    key = load_signing_key(key_dir / PRIVATE_KEY_NAME if key_dir else None)
    return key.public.to_json() if key else None


def publish_signed(
    store: Path,
    policy: str,
    files: dict[str, bytes],
    manifest_fields: dict,
    *,
    key_dir: Path | None,
    keep: int | None = None,
    log=None,
    set_latest_too: bool = True,
) -> PublishedBundle:
    """Publish the next version signed with the key in ``key_dir`` (or ``$QRES_SIGNING_KEY``).

    Reads the new version back and verifies its hashes and signatures before LATEST
    moves, then keeps the newest ``keep`` versions (never LATEST's). Without a key the
    bundle is published unsigned and that is logged loudly: clients refuse it unless
    they allow unsigned bundles. Shared by the nightly flow and `qres promote/rollback`.
    """
    key = load_signing_key(key_dir / PRIVATE_KEY_NAME if key_dir else None)
    published = publish_bundle(
        store, policy, files, manifest_fields, set_latest=False, signer=key.sign if key else None
    )
    manifest = verify_bundle(published.path)
    if key is not None:
        verify_manifest_signatures(manifest, key.public, str(published.path))
    elif log is not None:
        log.warning(
            "bundle %s %s is UNSIGNED: no signing key in %s and $%s is not set; clients refuse it "
            "unless allow_unsigned (create keys with `qres keys init`)",
            policy,
            published.version,
            key_dir,
            SIGNING_KEY_ENV,
        )
    if set_latest_too:
        set_latest(store, policy, published.version)
        _prune(store, policy, keep, log)
    return published


def _prune(store: Path, policy: str, keep: int | None, log) -> None:
    if keep is not None:
        pruned = prune_versions(store, policy, keep)
        if pruned and log is not None:
            log.info("retention: removed %s (keeping the newest %d)", ", ".join(pruned), keep)


@task(
    name="publish-latest",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=retry_on_io_error,
)
def move_latest(store: Path, policy: str, version: str, *, keep: int | None = None) -> PublishedBundle:
    """Point LATEST at a stored version (re-verified first), then apply retention."""
    with hold_limit(PUBLISH_LIMIT):  # created by `prefect deploy` (tasks/support/locks.py:ensure_limits)
        set_latest(store, policy, version)
        _prune(store, policy, keep, get_run_logger())
    path = Path(store) / policy / version
    return PublishedBundle(policy=policy, version=version, path=path, manifest=verify_bundle(path))


@task(
    name="publish", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_on_io_error
)
def publish_policy_bundle(
    store: Path,
    policy: str,
    files: dict[str, bytes],
    manifest_fields: dict,
    *,
    key_dir: Path | None = None,
    keep: int | None = None,
    set_latest: bool = True,
) -> PublishedBundle:
    """Publish the next version (signed when a key is configured), verify it, move LATEST.

    Retrying is safe: a failed attempt leaves no version behind, and the version
    number is taken under the store's lock.
    """
    log = get_run_logger()
    with hold_limit(PUBLISH_LIMIT):
        published = publish_signed(
            store, policy, files, manifest_fields, key_dir=key_dir, keep=keep, log=log, set_latest_too=set_latest
        )
    log.info(
        "published %s %s at %s (%s)",
        policy,
        published.version,
        published.path,
        "signed" if published.manifest["signatures"] else "UNSIGNED",
    )
    return published


def sign_tuf_channel(store: Path, key_dir: Path | None) -> int | None:
    """After LATEST moved: re-sign the store's TUF targets, snapshot and timestamp, when the store
    has a TUF repository (`qres keys tuf-init`), so TUF clients follow the new versions at once.
    Returns the new targets version, or None for a store without one."""
    from policies.bundle.tuf_repo import ONLINE_KEY_DIR, has_repository, publish_targets

    if not has_repository(store):
        return None
    key = load_signing_key(Path(key_dir) / ONLINE_KEY_DIR / PRIVATE_KEY_NAME) if key_dir else None
    if key is None:
        raise ConfigError(
            f"{store} has a TUF repository but there is no online key in {key_dir}/{ONLINE_KEY_DIR}; "
            "TUF clients would refuse the new LATEST: restore the key or run `qres keys rotate`"
        )
    version = publish_targets(store, key)
    get_run_logger().info("TUF: signed targets version %d for the new LATEST", version)
    return version
