"""Imported by ``qres serve-flows``' forkserver (``flows.served.PRELOAD``): what each run's MLflow calls load
lazily, loaded once so that forked runs inherit it.

Measured on served re-solves (py-spy, 4 runs): every run built MLflow's module-to-package map
(``importlib.metadata.packages_distributions``, read by ``mlflow.pyfunc.save_model``'s requirement
check: 1.6 s a run) and imported the SQLAlchemy stores and ``mlflow.pyfunc`` (1.0 s a run), because
the forkserver had not. Nothing here opens a store or a connection: those must not cross a fork.
"""

from __future__ import annotations

import logging

# Loaded here for the forked runs: save_policy_model's pyfunc, the tracking and registry store classes.
import mlflow.pyfunc
import mlflow.store.model_registry.sqlalchemy_store
import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 - the tracking client's store class

import tasks.support.pyfunc_model  # noqa: F401 - the model code save_policy_model validates

__all__ = ["warm_requirement_map"]


def warm_requirement_map() -> bool:
    """Build MLflow's module-to-package map now; False (and a log line) when MLflow no longer has it."""
    from mlflow.utils import requirements_utils

    init = getattr(requirements_utils, "_init_packages_to_modules_map", None)
    if init is None:  # a private helper of MLflow 3 (pinned by uv.lock); without it runs are only slower
        logging.getLogger("qres.served").info("MLflow has no _init_packages_to_modules_map: not warmed")
        return False
    init()
    return requirements_utils._MODULES_TO_PACKAGES is not None


warm_requirement_map()
