"""Imports go one way: flows -> tasks -> policies; policies stays pure domain code."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
# cryptography: manifest signatures (policies/signing.py), which the client checks too.
POLICIES_ALLOWED = STDLIB | {"numpy", "pandas", "pyarrow", "scipy", "ortools", "dimod", "dwave", "policies",
                             "cryptography",
                             "fsspec", "yaml"}  # readers: telemetry sources by URL (sources.py), Upptime history files
CLIENT_ALLOWED = STDLIB | {"pyarrow", "cryptography", "policies"}
CLIENT_MODULES = {"policies.errors", "policies.schema", "policies.bundle", "policies.signing", "policies.fetch",
                  "policies.client_cache", "policies.client_index", "policies.client_greedy"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.py")), ids=lambda p: p.name)
def test_policies_import_only_domain_libraries(path: Path) -> None:
    bad = _top(_imports(path)) - POLICIES_ALLOWED
    assert not bad, f"{path.name} imports {sorted(bad)}; policies/ must stay free of orchestration and tracking"


@pytest.mark.parametrize("name", ["client.py"] + sorted(m.split(".")[1] + ".py" for m in CLIENT_MODULES))
def test_client_side_modules_need_only_pyarrow(name: str) -> None:
    names = _imports(ROOT / "policies" / name)
    bad = _top(names) - CLIENT_ALLOWED
    inner = {n for n in names if n.startswith("policies.")} - CLIENT_MODULES
    assert not bad and not inner, f"{name} pulls in {sorted(bad | inner)}"


@pytest.mark.parametrize("path", sorted((ROOT / "tasks").glob("*.py")), ids=lambda p: p.name)
def test_tasks_never_import_flows(path: Path) -> None:
    assert "flows" not in _top(_imports(path)), f"{path.name} imports flows/: imports go flows -> tasks -> policies"


def test_client_loads_without_heavy_libraries() -> None:
    code = (
        "import sys, policies.client\n"
        "heavy = {'pandas', 'prefect', 'mlflow', 'great_expectations', 'ortools', 'dimod'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert res.stdout.strip() == "[]", res.stdout


@pytest.mark.parametrize("module", sorted(f"policies.{p.stem}" for p in (ROOT / "policies").glob("*.py") if p.stem != "__init__"))
def test_public_api_is_declared(module: str) -> None:
    mod = importlib.import_module(module)
    assert hasattr(mod, "__all__"), f"{module} has no __all__"
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{module}.__all__ names missing objects: {missing}"
