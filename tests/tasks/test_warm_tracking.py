"""The served forkserver's MLflow warm-up: a run forked from it must not build MLflow's requirement map again."""

from __future__ import annotations

from flows.served import PRELOAD


def test_the_forkserver_preloads_the_warm_up_and_it_builds_the_map() -> None:
    from mlflow.utils import requirements_utils

    from tasks.support.warm_tracking import warm_requirement_map

    assert "tasks.support.warm_tracking" in PRELOAD
    requirements_utils._MODULES_TO_PACKAGES = None  # as in a fresh process
    assert warm_requirement_map()  # fails when MLflow renames its private helper: runs would be 1.6 s slower
    assert "mlflow" in requirements_utils._MODULES_TO_PACKAGES
