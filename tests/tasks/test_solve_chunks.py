"""On threads, only a bounded number of solve chunks run at once (each holds its solver's model)."""

from __future__ import annotations

import threading

import tasks.solve_chunks as chunks_mod
from policies.solve.portfolio import PortfolioResult


class _Watch:
    """A family whose solve records how many chunks run at once; the first chunk stays until one more
    than the window is running (which a bound forbids: it then gives up after a few seconds)."""

    def __init__(self, window: int) -> None:
        self.window, self.active, self.most, self.calls = window, 0, 0, 0
        self.cond = threading.Condition()

    def solve_each(self, problems, **_) -> list:
        with self.cond:
            self.active += 1
            self.calls += 1
            first = self.calls == 1
            self.most = max(self.most, self.active)
            self.cond.notify_all()
            if first:
                self.cond.wait_for(lambda: self.active > self.window, timeout=3)
            self.active -= 1
            self.cond.notify_all()
        return [PortfolioResult(str(p), None, (), None, "x", ()) for p in problems]


def test_threads_run_at_most_the_window_of_chunks(prefect_harness, monkeypatch) -> None:
    from prefect import flow

    watch = _Watch(chunks_mod.THREADS_IN_FLIGHT)
    monkeypatch.setattr(chunks_mod, "family", lambda name: watch)

    @flow
    def run() -> list:
        return chunks_mod.solve_in_chunks(
            "shedding", list(range(40)), chunk_size=2, timeout_s=None, advance=lambda n: None
        )

    out = run()
    assert [r.problem_key for r in out] == [str(i) for i in range(40)]  # in problem order
    assert watch.most == chunks_mod.THREADS_IN_FLIGHT
