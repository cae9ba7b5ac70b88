"""The MLflow warm-up thread (tasks/support/tracking_warmup.py): opens a local store, never calls a server."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

from tasks.support.tracking_warmup import start_warming, wait_warm


def test_it_opens_a_new_local_store_off_the_main_thread(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    start_warming(f"sqlite:///{db}", "qres-test", tmp_path / ".mlflow-init.lock", timeout_s=600)
    wait_warm()
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    assert f"sqlite:///{db}" in SqlAlchemyStore._engine_map  # the engine the main thread's client reuses
    with sqlite3.connect(db) as con:  # the store's tables were created (MLflow's migrations)
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
    assert {"experiments", "runs", "registered_models"} <= tables


def test_it_makes_no_call_to_a_tracking_server(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        start_warming(uri, "qres-test", tmp_path / ".mlflow-init.lock", timeout_s=600)
        wait_warm()
        try:
            server.accept()
            called = True
        except BlockingIOError:
            called = False
    assert not called
