"""Imports go one way: flows -> tasks -> policies -> qres_client.

The layer, family-independence and dependency rules are import-linter contracts in
pyproject.toml (run by `make test`); what is checked here is what import-linter cannot say.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str, base: Path) -> list[str]:
    return sorted(
        ".".join(p.relative_to(base).with_suffix("").parts)
        for p in (base / package).rglob("*.py")
        if p.name != "__init__.py"
    )


DOMAIN_MODULES = _modules("policies", ROOT) + _modules("qres_client", ROOT / "client")


def test_client_loads_without_heavy_libraries() -> None:
    code = (
        "import sys, qres_client.client\n"
        "heavy = {'pandas', 'prefect', 'mlflow', 'great_expectations', 'ortools', 'dimod'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert res.stdout.strip() == "[]", res.stdout


@pytest.mark.parametrize("module", DOMAIN_MODULES)
def test_public_api_is_declared(module: str) -> None:
    mod = importlib.import_module(module)
    assert hasattr(mod, "__all__"), f"{module} has no __all__"
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{module}.__all__ names missing objects: {missing}"


def test_every_module_is_found() -> None:
    """The walk reaches sub-packages (a flat glob once missed them)."""
    assert "policies.shedding.problem" in DOMAIN_MODULES and "qres_client.client" in DOMAIN_MODULES
