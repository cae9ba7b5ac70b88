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
