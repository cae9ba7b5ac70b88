"""Global locks on a real (temporary) Prefect API, and step timeouts that interrupt."""

from __future__ import annotations

import threading

import pytest

from tests.waits import WAIT_S


@pytest.fixture()
def limit(prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    name = "qres-test-lock"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        yield name, client
        client.delete_global_concurrency_limit_by_name(name)


@pytest.fixture()
def no_production_limits(prefect_harness):
    """The shared harness without qres-run/qres-publish before and after (other tests run unlocked)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from tasks.support.locks import LIMITS

    def drop(client) -> None:
        for name in LIMITS:
            try:
                client.delete_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                pass

    with get_client(sync_client=True) as client:
        drop(client)
        yield client
        drop(client)


def test_ensure_limits_creates_them_once_and_repairs_an_edited_one(no_production_limits) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from tasks.support.locks import ensure_limits, limit_exists

    client = no_production_limits
    assert not limit_exists("qres-run") and not limit_exists("qres-publish")
    assert ensure_limits() == {"qres-run": "created", "qres-publish": "created"}
    assert ensure_limits() == {"qres-run": "unchanged", "qres-publish": "unchanged"}
    client.update_global_concurrency_limit("qres-publish", GlobalConcurrencyLimitUpdate(limit=3, active=False))
    assert ensure_limits() == {"qres-run": "unchanged", "qres-publish": "updated"}
    for name in ("qres-run", "qres-publish"):
        limit = client.read_global_concurrency_limit_by_name(name)
        assert (limit.limit, limit.active, limit.active_slots) == (1, True, 0)


def test_a_limit_nobody_created_is_not_held(prefect_harness) -> None:
    from tasks.support.locks import hold_limit, limit_exists

    assert not limit_exists("qres-never-created")
    with hold_limit("qres-never-created", timeout_s=1) as held:
        assert held is False


def test_an_existing_limit_is_held_and_a_second_holder_waits(limit) -> None:
    from tasks.support.locks import hold_limit, limit_exists

    name, client = limit
    assert limit_exists(name)
    with hold_limit(name, timeout_s=5) as held:
        assert held is True
        assert client.read_global_concurrency_limit_by_name(name).active_slots == 1
        with pytest.raises(TimeoutError), hold_limit(name, timeout_s=1):
            pass  # never reached: the only slot is taken
    assert client.read_global_concurrency_limit_by_name(name).active_slots == 0
    with hold_limit(name, timeout_s=5) as held:  # released: the next holder gets it at once
        assert held is True


def test_a_step_timeout_interrupts_a_hung_step(prefect_harness) -> None:
    from prefect import flow, task

    from tasks.support.timeouts import with_timeout

    release, finished = threading.Event(), threading.Event()

    @task
    def hang() -> str:
        release.wait(WAIT_S)  # hung until the test lets it go
        finished.set()
        return "finished"

    @flow
    def run() -> str:
        return with_timeout(hang, 1.0)()

    try:
        state = run(return_state=True)
        assert state.is_failed()
        assert "timeout" in str(state.message).lower() or "timed out" in str(state.message).lower()
        assert not finished.is_set()  # the flow gave up on the step; it did not wait it out
    finally:
        release.set()


def test_the_nightly_and_the_resolve_flows_take_qres_run(no_production_limits, small_sample, tmp_path) -> None:
    """With the limits created, a run waits for qres-run (here: 1 s, then fails) before any work."""
    from flows.nightly import nightly
    from flows.resolve import resolve
    from tasks.support.locks import ensure_limits, hold_limit

    ensure_limits()
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'data_dir = "{small_sample}"\nstore_dir = "{tmp_path / "bundles"}"\nstate_dir = "{tmp_path / "state"}"\n'
        "[orchestration]\nrun_lock_wait_s = 1\n"
    )
    with hold_limit("qres-run", timeout_s=5) as held:  # another run holds it
        assert held
        with pytest.raises(TimeoutError):
            nightly(config=str(cfg))
        with pytest.raises(TimeoutError):
            resolve(incident="INC-0001", config=str(cfg))
    assert not (tmp_path / "bundles").exists()  # neither got as far as the preflight
    assert no_production_limits.read_global_concurrency_limit_by_name("qres-run").active_slots == 0


def test_a_flow_run_reads_its_limits_once_and_keeps_the_answer(limit, monkeypatch) -> None:
    """One read answers every limit a run asks about (the run's and each publish's); a limit
    created during the run is first held by the next run."""
    from prefect import flow, task
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from tasks.support.locks import limit_exists

    name, client = limit
    later = "qres-test-created-during-a-run"
    reads: list[str] = []
    for method in ("read_global_concurrency_limits", "read_global_concurrency_limit_by_name"):
        real = getattr(SyncPrefectClient, method)
        monkeypatch.setattr(
            SyncPrefectClient,
            method,
            lambda self, *a, _real=real, _m=method, **k: reads.append(_m) or _real(self, *a, **k),
        )

    @task
    def in_a_task() -> tuple[bool, bool]:
        return limit_exists(name), limit_exists(later)

    @flow
    def a_run(create: bool) -> tuple:
        first = (limit_exists(name), limit_exists(later))
        if create:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=later, limit=1))
        return first, in_a_task(), limit_exists(later)

    try:
        assert a_run(create=True) == ((True, False), (True, False), False)
        assert reads == ["read_global_concurrency_limits"]
        assert a_run(create=False)[0] == (True, True)  # the next run sees it
    finally:
        client.delete_global_concurrency_limit_by_name(later)
