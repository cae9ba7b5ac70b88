"""Locks across workers and hosts: Prefect global concurrency limits that the deployment set-up creates.

Two limits matter (docs/operations.md, "Running in production"):

- ``qres-publish`` (limit 1): any two publishes, of any family, from any run, stay apart.
  The store's fcntl lock covers one filesystem only.
- ``qres-run`` (limit 1): a nightly and a re-solve, which publish the same families, never
  overlap; the later one waits (up to ``orchestration.run_lock_wait_s``) instead of racing.
  Each deployment's own ``concurrency_limit`` cancels a second run of itself (CANCEL_NEW).

``prefect deploy --prefect-file deployments/prefect.yaml`` creates both through its build step
(:func:`ensure_limits`). A limit nobody created (the embedded API of a plain ``qres run``) is not
held, as with Prefect's ``strict=False``; see :func:`hold_limit` for why we look it up first
rather than let Prefect skip it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_logger

__all__ = [
    "PUBLISH_LIMIT",
    "RUN_LIMIT",
    "LIMITS",
    "PUBLISH_LOCK_NAME",
    "ensure_limits",
    "hold_limit",
    "limit_exists",
    "publish_lock",
    "file_lock",
]

PUBLISH_LOCK_NAME = ".publish.lock"

PUBLISH_LIMIT = "qres-publish"
RUN_LIMIT = "qres-run"
LIMITS = {RUN_LIMIT: 1, PUBLISH_LIMIT: 1}

_log = get_logger("qres.locks")


def limit_exists(name: str) -> bool:
    """Whether the API knows the global concurrency limit ``name`` and it is active (reads only).

    Inside a flow run the answer is read once for every limit and kept for the run: its
    ``qres-run`` and each family's ``qres-publish`` would otherwise be one round trip each, and
    on a busy SQLite server one took 0.07-0.21 s of a 2 s re-solve (measured). A limit created
    while a run is under way is first held by the next run, as if it had been created then.
    """
    run = _flow_run_id()
    seen_run, seen = _SEEN.get("answer", (None, {}))
    if run is not None and seen_run == run:
        return seen.get(name, False)
    with get_client(sync_client=True) as client:
        if run is not None and (found := _all_limits(client)) is not None:
            if len(found) < _PAGE:  # all of them: remembered for this run
                seen = {limit.name: bool(limit.active) for limit in found}
                _SEEN["answer"] = (run, seen)  # one assignment: a task thread never sees half of it
                return seen.get(name, False)
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return bool(limit.active)


_PAGE = 200  # Prefect's default largest page (a server set lower refuses it: then by name)


def _all_limits(client) -> list | None:
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        return client.read_global_concurrency_limits(limit=_PAGE)
    except PrefectHTTPStatusError:
        return None


_SEEN: dict = {}  # "answer": (flow run id, {limit name: active}) of the last run that read them


def _flow_run_id() -> str | None:
    from prefect.context import FlowRunContext, TaskRunContext

    if (task_run := TaskRunContext.get()) is not None:
        return str(task_run.task_run.flow_run_id)
    flow_run = getattr(FlowRunContext.get(), "flow_run", None)
    return None if flow_run is None else str(flow_run.id)


def ensure_limits() -> dict[str, str]:
    """Create :data:`LIMITS` on the configured Prefect API, or set them back to limit 1 and active.

    Idempotent, so it runs as a build step of every ``prefect deploy``; returns what it did per
    limit (``created``, ``updated``, ``unchanged``), which Prefect keeps as the step's output.
    A limit above 1 would let two publishers in, so an edited one is put back, not trusted.
    """
    done = {}
    with get_client(sync_client=True) as client:
        for name, slots in LIMITS.items():
            done[name] = _ensure_limit(client, name, slots)
            _log.info("global concurrency limit %s (limit %d): %s", name, slots, done[name])
    return done


def _ensure_limit(client, name: str, slots: int) -> str:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate

    try:
        current = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
            return "created"
        except ObjectAlreadyExists:  # another deploy created it since our read
            current = client.read_global_concurrency_limit_by_name(name)
    if current.limit == slots and current.active:
        return "unchanged"
    client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=slots, active=True))
    return "updated"


@contextmanager
def hold_limit(name: str, *, timeout_s: float | None = None) -> Iterator[bool]:
    """Hold one slot of ``name`` while the block runs; yields whether a limit was held.

    Prefect's own ``concurrency(..., strict=False)`` (and task tags) skip a missing limit only
    after an increment request, which is a write transaction. On the embedded SQLite API that
    write collides with Prefect's task-run recorder about one run in two and the client then
    retries after 2 s (measured: the stall in ``benchmarks/resolve.py``), so a missing limit is
    looked up with a read first. A limit that exists is taken with ``strict=True``: waiting
    past ``timeout_s`` raises ``TimeoutError`` rather than running unguarded.
    """
    if not limit_exists(name):
        yield False
        return
    _log.debug("waiting for a slot of %s", name)
    with concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True):
        yield True


@contextmanager
def publish_lock(store: Path, *, timeout_s: float | None = None) -> Iterator[None]:
    """Hold ``<store>/.publish.lock`` (an exclusive flock) for a run's whole publish phase.

    Store -> register -> promote of every family of one run is one critical section against
    any other process on the same store (an flock works across hosts on NFSv4 and most
    cluster filesystems; Prefect's ``qres-publish`` limit covers hosts on other storage).
    Waiting past ``timeout_s`` raises ``TimeoutError``; the kernel releases it if we die.
    """
    with file_lock(Path(store) / PUBLISH_LOCK_NAME, timeout_s=timeout_s):
        yield


@contextmanager
def file_lock(path: Path, *, timeout_s: float | None = None) -> Iterator[None]:
    """An exclusive flock on ``path`` (created if missing), waiting up to ``timeout_s``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if deadline is not None else 0))
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another run held {path} for {timeout_s:g} s") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)
