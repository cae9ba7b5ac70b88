"""Publish: write a verified bundle atomically into the store."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.retry import retry_on_io_error
from policies.bundle import PublishedBundle, publish_bundle, set_latest, verify_bundle

__all__ = ["publish_policy_bundle"]


@task(name="publish", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5],
      retry_condition_fn=retry_on_io_error)
def publish_policy_bundle(store: Path, policy: str, files: dict[str, bytes], manifest_fields: dict) -> PublishedBundle:
    """Publish the next version, then read it back and verify it before LATEST moves.

    Retrying is safe: a failed attempt leaves no version behind, and the version
    number is taken under the store's lock.
    """
    published = publish_bundle(store, policy, files, manifest_fields, set_latest=False)
    verify_bundle(published.path)
    set_latest(store, policy, published.version)
    get_run_logger().info("published %s %s at %s", policy, published.version, published.path)
    return published
