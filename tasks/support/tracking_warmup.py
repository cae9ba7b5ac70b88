"""MLflow loaded, and a local tracking store opened, on a background thread while the run ingests.

Why: on the nightly's main thread MLflow cost about 2.5 s before its first call on a quiet
machine (importing it, opening the SQLite store: SQLAlchemy engine and schema check, the
pyfunc modules and the requirement map ``save_policy_model`` reads), all of it on the critical
path (docs/performance.md, "Framework overhead in the nightly"). Here it runs beside ingest and
validation, which spend much of their time in Arrow and file reads with the GIL released; the
first tracking call (``TrackingTarget.client``) waits for it with :func:`wait_warm`.

The thread calls no tracking *server*: for an HTTP store it only imports, so an outage is still
found by the preflight and by the main thread's own first call, in seconds, never behind this
thread's retries. A new local store is created under the same lock as the main thread's
(``.mlflow-init.lock``). Failures here are dropped: the main thread's call meets them again and
reports them as it always did.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

__all__ = ["start_warming", "wait_warm"]

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _warm(tracking_uri: str, experiment: str, init_lock: Path, timeout_s: float) -> None:
    try:
        import tasks.support.warm_tracking  # noqa: F401 - MLflow, its stores, pyfunc and the requirement map

        if tracking_uri.startswith("sqlite:"):
            from mlflow import MlflowClient

            from tasks.support.locks import file_lock

            with file_lock(init_lock, timeout_s=timeout_s):
                MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_experiment_by_name(experiment)
    except Exception as exc:  # noqa: BLE001 - the main thread's own call reports it
        logging.getLogger("qres.tracking").debug("warming MLflow failed: %s", exc)


def start_warming(tracking_uri: str, experiment: str, init_lock: Path, *, timeout_s: float) -> None:
    """Start the warm-up thread (once per process at a time)."""
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        _thread = threading.Thread(
            target=_warm, args=(tracking_uri, experiment, init_lock, timeout_s), name="qres-warm-mlflow", daemon=True
        )
        _thread.start()


def wait_warm() -> None:
    """Block until the warm-up (if one was started) is done; MLflow is then safe to use from here."""
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()
