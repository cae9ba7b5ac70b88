"""The client installs alone: its wheel, in a fresh venv with nothing else, verifies and serves a published bundle.

The wheel is built from client/ with the uv that `make` installs, installed with the locked
versions of its two dependencies (the uv cache makes this take about a second), and driven in
a separate interpreter (``python -I``: no working directory or PYTHONPATH on its path), so
nothing from this repository can leak in. Its answers are compared with the in-tree client's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from qres_client.bundle import read_latest
from qres_client.client import PolicyClient
from qres_client.signing import PUBLIC_KEY_NAME, init_keys

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "client"
TIMEOUT_S = 600  # a cold uv cache downloads pyarrow and cryptography
# What the pipeline needs and the client must not: none of it may be importable in the venv.
PIPELINE_ONLY = ("policies", "tasks", "flows", "prefect", "mlflow", "great_expectations", "pandas", "numpy", "ortools")
# The client, its two requirements and cryptography's own (cffi, pycparser).
ALLOWED_DISTRIBUTIONS = {"qresilience-client", "pyarrow", "cryptography", "cffi", "pycparser"}

# Runs inside the venv: argv = store, public key, queries JSON; prints what it saw as JSON.
VENV_SCRIPT = r"""
import importlib, importlib.metadata, json, sys
from qres_client.client import PolicyClient
from qres_client.errors import BundleVerificationError

store, key, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
missing = []
for name in json.loads(sys.argv[4]):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        missing.append(name)
out = {
    "prefix": sys.prefix,
    "client_file": importlib.import_module("qres_client").__file__,
    "distributions": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
    "missing": missing,
}
try:
    client = PolicyClient(store, public_keys=key)
except BundleVerificationError as exc:
    out["refused"] = str(exc)
else:
    out["versions"] = client.versions
    out["decisions"] = [
        [d.policy, d.version, d.scenario, d.exact, [[a.workload_id, a.admit, a.rank, dict(a.extras)] for a in d.actions]]
        for d in (client.decide(policy, down=down) for policy, down in queries)
    ]
print(json.dumps(out, default=str))
"""


def _env() -> dict[str, str]:
    """This process's environment minus what would point Python or uv at this repository's venv.

    Other UV_* variables (an index URL, a cache folder) are kept: they say where packages come from.
    """
    drop = ("PYTHON", "VIRTUAL_ENV", "QRES_", "UV_PROJECT", "UV_SYSTEM_PYTHON")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(UV_LINK_MODE="copy", UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    return env


def _run(cmd: list, cwd: Path) -> str:
    res = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res.stdout


def _uv() -> str:
    local = ROOT / ".qres" / "tools" / "bin" / "uv"
    found = str(local) if local.is_file() else shutil.which("uv")
    assert found, "uv not found: run `make install-test` (it installs uv into .qres/tools)"
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([_uv(), "build", "--wheel", "--out-dir", out, CLIENT], cwd=ROOT)
    (built,) = out.glob("qresilience_client-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the client wheel and the locked pyarrow + cryptography, nothing else."""
    tmp = tmp_path_factory.mktemp("client-venv")
    pins = tmp / "pins.txt"
    _run(
        [_uv(), "export", "--frozen", "--package", "qresilience-client", "--no-emit-workspace", "--no-hashes"]
        + ["--no-header", "--no-annotate", "--output-file", pins],
        cwd=ROOT,
    )
    _run([_uv(), "venv", "--python", sys.executable, tmp / "venv"], cwd=tmp)
    python = tmp / "venv" / "bin" / "python"
    _run([_uv(), "pip", "install", "--python", python, "--constraint", pins, wheel], cwd=tmp)
    return python


@pytest.fixture(scope="module")
def published(prefect_harness, small_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store the pipeline published: one real nightly run (every family) on the small sample."""
    from flows.nightly import nightly

    tmp = tmp_path_factory.mktemp("published")
    _, public = init_keys(tmp / "state" / "keys")
    cfg = tmp / "qres.toml"
    cfg.write_text(
        f'data_dir = "{small_sample}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
    )
    summary = nightly(config=str(cfg))
    assert summary["published"], summary
    return tmp / "bundles", public


def _queries(store: Path) -> list[tuple[str, list[str]]]:
    """Per policy: the first few down-only scenarios' down sets (exact matches) and an unknown service."""
    import pyarrow.parquet as pq

    queries = []
    for policy in sorted(p.name for p in store.iterdir() if (p / "LATEST").is_file()):  # not .publish.lock
        path = store / policy / read_latest(store, policy) / "decisions.parquet"
        table = pq.read_table(path, columns=["down", "degraded"])
        rows = zip(table.column("down").to_pylist(), table.column("degraded").to_pylist())
        downs = list(dict.fromkeys(tuple(d) for d, g in rows if d and not g))[:3]  # a query names no degraded
        assert downs, f"{policy}: no scenario with only services down"
        queries += [(policy, list(d)) for d in downs] + [(policy, ["no-such-service"])]
    return queries


def _in_venv(python: Path, store: Path, key: Path, queries: list, cwd: Path) -> dict:
    script = cwd / "probe.py"
    script.write_text(VENV_SCRIPT)
    args = [python, "-I", script, store, key, json.dumps(queries), json.dumps(PIPELINE_ONLY)]
    return json.loads(_run(args, cwd=cwd))


def test_wheel_requires_only_pyarrow_and_cryptography(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(zf.read(meta).decode())
    assert metadata["Name"] == "qresilience-client"
    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    assert {r.name for r in requirements if r.marker is None} == {"pyarrow", "cryptography"}
    # Everything else is behind an extra: [serve] (qres-serve) and [tuf] (the TUF channel).
    extras = {str(r.marker).split("==")[-1].strip(" '\"") for r in requirements if r.marker is not None}
    assert extras == {"serve", "tuf"} and set(metadata.get_all("Provides-Extra")) == {"serve", "tuf"}
    shipped = {n for n in names if not n.split("/")[0].endswith(".dist-info")}
    source = {p.relative_to(CLIENT).as_posix() for p in (CLIENT / "qres_client").rglob("*.py")}
    assert shipped == source, "the wheel holds exactly the client's modules"


def test_installed_client_verifies_and_serves_a_published_bundle(
    venv_python: Path, published: tuple[Path, Path], tmp_path: Path
) -> None:
    store, key = published
    queries = _queries(store)
    seen = _in_venv(venv_python, store, key, queries, tmp_path)

    assert Path(seen["client_file"]).is_relative_to(seen["prefix"]), "qres_client came from the venv"
    assert seen["missing"] == list(PIPELINE_ONLY), "nothing of the pipeline is importable in the venv"
    assert {"qresilience-client", "pyarrow", "cryptography"} <= set(seen["distributions"]) <= ALLOWED_DISTRIBUTIONS
    assert seen["versions"] == {p: read_latest(store, p) for p in ("routing", "shedding", "standby")}

    local = PolicyClient(store, public_keys=key)
    expected = [
        [
            d.policy,
            d.version,
            d.scenario,
            d.exact,
            [[a.workload_id, a.admit, a.rank, dict(a.extras)] for a in d.actions],
        ]
        for d in (local.decide(policy, down=down) for policy, down in queries)
    ]
    assert seen["decisions"] == json.loads(json.dumps(expected, default=str)), "the wheel answers as the source does"
    for (_, down), (_, _, scenario, exact, actions) in zip(queries, seen["decisions"]):
        assert actions, f"{down}: no actions"
        assert exact == (down != ["no-such-service"]), f"{down} answered by {scenario}"


def test_installed_client_refuses_tampered_or_foreign_bundles(
    venv_python: Path, published: tuple[Path, Path], tmp_path: Path
) -> None:
    store, key = published
    tampered = tmp_path / "tampered"
    shutil.copytree(store, tampered)
    decisions = tampered / "shedding" / read_latest(tampered, "shedding") / "decisions.parquet"
    data = bytearray(decisions.read_bytes())
    data[len(data) // 2] ^= 0x01
    decisions.write_bytes(bytes(data))
    seen = _in_venv(venv_python, tampered, key, [], tmp_path)
    assert "decisions.parquet" in seen["refused"] and "sha256" in seen["refused"]

    _, foreign = init_keys(tmp_path / "other-keys")
    seen = _in_venv(venv_python, store, foreign, [], tmp_path)
    assert "signature" in seen["refused"]


def test_client_readme_example_runs_against_a_published_store(
    venv_python: Path, published: tuple[Path, Path], tmp_path: Path
) -> None:
    """The README's snippet, verbatim but for the store and key it points at, run with only the wheel."""
    store, key = published
    readme = (CLIENT / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    for placeholder, real in (("https://bundles.internal.example/", store), (f"keys/{PUBLIC_KEY_NAME}", key)):
        assert code.count(f'"{placeholder}"') == 1, f"README example no longer names {placeholder!r}"
        code = code.replace(f'"{placeholder}"', repr(str(real)))
    (tmp_path / "example.py").write_text(code)
    printed = _run([venv_python, "-I", tmp_path / "example.py"], cwd=tmp_path)

    decision = PolicyClient(store, public_keys=key).decide(down={"saas-payments"})
    assert decision.actions
    assert printed.splitlines() == [f"{a.workload_id} {a.admit}" for a in decision.actions]
