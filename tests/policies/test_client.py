"""Runtime client: verified loading, exact/cover/fallback matching, keeping the last good bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from policies.bundle.store import publish_bundle
from policies.errors import BundleVerificationError, QresError
from policies.scenarios.scenario_set import FALLBACK_KEY, NORMAL_KEY
from qres_client import client as client_module
from qres_client.bundle import encode_json, encode_parquet, read_latest
from qres_client.client import Action, BundleNotLoadedError, Decision, RollbackRefusedError
from qres_client.client import PolicyClient as _PolicyClient
from qres_client.schema import DECISIONS_SHEDDING
from qres_client.signing import SigningKey

KEY = SigningKey.generate()  # one key pair for the module: every test bundle is signed


def PolicyClient(source, **kwargs):
    return _PolicyClient(source, public_keys=kwargs.pop("public_keys", KEY.public), **kwargs)


# Several cases observe names no bundle knows on purpose (they must fall back); the warning
# the client gives for them is tested in test_client_hardened.py.
pytestmark = pytest.mark.filterwarnings("ignore::qres_client.names.UnknownDependencyWarning")

REPO = Path(__file__).resolve().parents[2]
ALL = ["api", "auth", "db", "pay", "q", "r", "s"]

# key, down, degraded, effective_down, admit per workload (w1, w2, w3). api needs auth (hard).
SCENARIOS = [
    (NORMAL_KEY, [], [], [], (1.0, 1.0, 1.0)),
    ("down=auth", ["auth"], [], ["api", "auth"], (1.0, 0.5, 0.0)),
    ("down=pay", ["pay"], [], ["pay"], (1.0, 0.0, 1.0)),
    ("down=auth,pay", ["auth", "pay"], [], ["api", "auth", "pay"], (0.5, 0.0, 0.0)),
    ("degraded=db", [], ["db"], [], (1.0, 0.8, 0.6)),
    ("down=q,r", ["q", "r"], [], ["q", "r"], (1.0, 1.0, 0.0)),  # admits 2.0 in total
    ("down=q,s", ["q", "s"], [], ["q", "s"], (1.0, 0.0, 0.0)),  # admits 1.0 in total
    (FALLBACK_KEY, ALL, [], ALL, (0.2, 0.0, 0.0)),
]


def decisions_table(scenarios=SCENARIOS, version_tag: float = 0.0) -> pa.Table:
    rows = []
    for key, down, degraded, effective, admits in scenarios:
        # Rows in workload order w3, w1, w2 while ranks say w1 < w2 < w3: the client must sort.
        for w in (2, 0, 1):
            rows.append(
                {
                    "scenario_key": key,
                    "down": down,
                    "degraded": degraded,
                    "effective_down": effective,
                    "probability": 0.01,
                    "workload_id": f"w{w + 1}",
                    "admit": min(1.0, admits[w] + version_tag),
                    "rank": w + 1,
                }
            )
    return pa.Table.from_pylist(rows, schema=DECISIONS_SHEDDING)


def publish_policy(store: Path, table: pa.Table | None = None, policy: str = "shedding"):
    table = decisions_table() if table is None else table
    files = {
        "decisions.parquet": encode_parquet(table),
        "policy.json": encode_json({"scenarios": sorted(set(table.column("scenario_key").to_pylist()))}),
    }
    return publish_bundle(store, policy, files, {"mlflow_run_id": "r1"}, signer=KEY.sign)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    publish_policy(tmp_path)
    return tmp_path


@pytest.fixture
def client(store: Path) -> PolicyClient:
    return PolicyClient(store)


def test_roundtrip_loads_and_orders_actions(client):
    assert client.versions == {"shedding": "v000001"}
    d = client.decide()
    assert d == Decision("shedding", "v000001", NORMAL_KEY, True, d.actions)
    assert [a.workload_id for a in d.actions] == ["w1", "w2", "w3"]
    assert [a.rank for a in d.actions] == [1, 2, 3]
    assert client.decide(down={"auth"}).actions == (Action("w1", 1.0, 1), Action("w2", 0.5, 2), Action("w3", 0.0, 3))


@pytest.mark.parametrize(
    "down, degraded, scenario, exact",
    [
        ((), (), NORMAL_KEY, True),
        ({"auth"}, (), "down=auth", True),  # root set
        (["api", "auth"], (), "down=auth", True),  # effective set
        ({"auth", "pay"}, (), "down=auth,pay", True),
        ({"api", "auth", "pay"}, (), "down=auth,pay", True),
        ((), {"db"}, "degraded=db", True),
        ({"pay"}, {"pay"}, "down=pay", True),  # degraded and down at once counts as down
        (ALL, (), FALLBACK_KEY, True),
        # covers: api down alone is inside down=auth (2 members) and down=auth,pay (3): closest wins
        ({"api"}, (), "down=auth", False),
        ({"api", "pay"}, (), "down=auth,pay", False),
        # q down: down=q,r and down=q,s both have 2 members; down=q,s admits less (1.0 < 2.0)
        ({"q"}, (), "down=q,s", False),
        # pay degraded: normal does not cover it, down=pay (pay treated as down) does
        ((), {"pay"}, "down=pay", False),
        # auth down + db degraded: only the fallback has both
        ({"auth"}, {"db"}, FALLBACK_KEY, False),
        ({"zzz-unknown"}, (), FALLBACK_KEY, False),
        ((), {"zzz-unknown"}, FALLBACK_KEY, False),
        ({"q", "r", "s"}, (), FALLBACK_KEY, False),
    ],
)
def test_decide_matching_rule(client, down, degraded, scenario, exact):
    d = client.decide("shedding", down=down, degraded=degraded)
    assert (d.scenario, d.exact) == (scenario, exact)
    assert d.policy == "shedding" and d.version == "v000001"
    assert client.decide("shedding", down=down, degraded=degraded) is d  # cached / precomputed


def _reference_decide(down: set, degraded: set) -> tuple[str, bool]:
    """The documented rule, written the slow and obvious way."""
    degraded = degraded - down
    by_key = {key: (set(d), set(g), set(e) | set(d), admits) for key, d, g, e, admits in SCENARIOS}
    for field in (0, 2):  # root sets first, then effective sets
        hits = [k for k, v in by_key.items() if v[field] == down and v[1] - v[field] == degraded]
        if hits:
            return min(hits, key=lambda k: (len(by_key[k][2]), sum(by_key[k][3]), k)), True
    covers = [k for k, (d, g, e, a) in by_key.items() if k != FALLBACK_KEY and down <= e and degraded <= e | g]
    if not covers:
        return FALLBACK_KEY, False
    return min(covers, key=lambda k: (len(by_key[k][2]), sum(by_key[k][3]), k)), False


def test_decide_agrees_with_the_reference_rule(client):
    import random

    rng = random.Random(3)
    names = ALL + ["zzz"]
    for _ in range(2000):
        down = set(rng.sample(names, rng.choice([0, 0, 1, 1, 2, 3])))
        degraded = set(rng.sample(names, rng.choice([0, 0, 0, 1, 2])))
        d = client.decide(down=down, degraded=degraded)
        assert (d.scenario, d.exact) == _reference_decide(down, degraded), (down, degraded)


def test_fallback_key_matches_scenarios_module():
    assert client_module.FALLBACK_KEY == FALLBACK_KEY


def test_root_set_beats_effective_set_and_empty_fallback_never_shadows_normal(tmp_path):
    scenarios = [
        (NORMAL_KEY, [], [], [], (1.0, 1.0, 1.0)),
        ("down=auth", ["auth"], [], ["api", "auth"], (1.0, 0.5, 0.0)),
        ("down=api,auth", ["api", "auth"], [], ["api", "auth"], (0.9, 0.5, 0.0)),
        (FALLBACK_KEY, [], [], [], (0.0, 0.0, 0.0)),  # sets left empty by its producer
    ]
    publish_policy(tmp_path, decisions_table(scenarios))
    c = PolicyClient(tmp_path)
    assert c.decide(down={"api", "auth"}).scenario == "down=api,auth"
    assert c.decide(down={"auth"}).scenario == "down=auth"
    assert (c.decide().scenario, c.decide().exact) == (NORMAL_KEY, True)
    assert c.decide(down={"db"}).scenario == FALLBACK_KEY


def test_empty_store_explains_what_to_do(tmp_path):
    c = PolicyClient(tmp_path / "nothing-here")
    assert c.versions == {} and c.refresh() is False
    with pytest.raises(BundleNotLoadedError, match="refresh") as info:
        c.decide(down={"auth"})
    assert isinstance(info.value, QresError)
    publish_policy(tmp_path / "nothing-here")
    assert c.refresh() is True
    assert c.decide(down={"auth"}).scenario == "down=auth"


def test_unknown_policy_and_bad_arguments(client):
    with pytest.raises(BundleNotLoadedError, match="standby"):
        client.decide("standby")
    with pytest.raises(TypeError):
        client.decide(down="auth")
    with pytest.raises(TypeError):
        PolicyClient(".", policies="shedding")
    with pytest.raises(ValueError, match="http"):
        PolicyClient("ftp://example.org/bundles")


def test_refresh_picks_up_new_versions_and_rollbacks(store, client):
    assert client.refresh() is False
    publish_policy(store, decisions_table(version_tag=0.1))
    assert client.refresh() is True
    assert client.versions == {"shedding": "v000002"}
    assert client.decide(down={"auth"}).actions[2].admit == pytest.approx(0.1)
    (store / "shedding" / "LATEST").write_text("v000001\n")  # a replayed older version
    with pytest.raises(RollbackRefusedError, match="v000001.*older than the loaded v000002"):
        client.refresh()
    assert client.versions == {"shedding": "v000002"}
    assert client.status()["shedding"].last_error.startswith("FolderSource")
    trusting = PolicyClient(store, allow_rollback=True)
    (store / "shedding" / "LATEST").write_text("v000002\n")
    assert trusting.refresh() is True
    (store / "shedding" / "LATEST").write_text("v000001\n")
    assert trusting.refresh() is True and trusting.decide(down={"auth"}).version == "v000001"


def test_policies_filter(store):
    publish_policy(store, policy="other")
    assert PolicyClient(store).versions == {"other": "v000001", "shedding": "v000001"}
    assert PolicyClient(store, policies=["other"]).versions == {"other": "v000001"}


@pytest.mark.parametrize("name", ["decisions.parquet", "policy.json", "manifest.json"])
def test_tampered_bundle_is_refused_and_last_good_kept(store, client, name):
    new = publish_policy(store, decisions_table(version_tag=0.1))
    path = new.path / name
    data = bytearray(path.read_bytes())
    data[0 if name == "manifest.json" else len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleVerificationError, match=name.replace(".", r"\.")):
        client.refresh()
    assert client.versions == {"shedding": "v000001"}
    assert client.decide(down={"auth"}).actions[2].admit == 0.0  # still the v000001 plan
    with pytest.raises(BundleVerificationError, match=name.replace(".", r"\.")):
        PolicyClient(store)  # nothing good to fall back on: fail loudly


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "policy.json").unlink(), "missing"),
        (lambda p: (p / "extra.bin").write_bytes(b"x"), "unexpected"),
        (lambda p: (p.parent / "LATEST").write_text("v000042\n"), "v000042.*does not exist"),
    ],
)
def test_incomplete_bundle_or_bad_latest_keeps_last_good(store, client, damage, message):
    new = publish_policy(store, decisions_table(version_tag=0.1))
    damage(new.path)
    with pytest.raises(BundleVerificationError, match=message):
        client.refresh()
    assert client.versions == {"shedding": "v000001"}
    assert client.decide().scenario == NORMAL_KEY


def test_one_bad_policy_does_not_block_another(store, client):
    publish_policy(store, policy="other")
    bad = publish_policy(store, decisions_table(version_tag=0.1))
    (bad.path / "policy.json").write_bytes(b"{}\n")
    with pytest.raises(BundleVerificationError, match="policy.json"):
        client.refresh()
    assert client.versions == {"shedding": "v000001", "other": "v000001"}


@pytest.mark.parametrize(
    "table, message",
    [
        (decisions_table(SCENARIOS[:-1]), "fallback"),
        (decisions_table().select(["scenario_key", "admit"]), "schema"),
        (
            pa.concat_tables([decisions_table(SCENARIOS[:2]), decisions_table(SCENARIOS[:1] + SCENARIOS[-1:])]),
            "not contiguous",
        ),
        (pa.concat_tables([decisions_table(SCENARIOS[-1:]), decisions_table(SCENARIOS[-1:])]), "twice"),
    ],
)
def test_malformed_decisions_are_refused(tmp_path, table, message):
    publish_policy(tmp_path, table)
    with pytest.raises(BundleVerificationError, match=message):
        PolicyClient(tmp_path)


def test_not_parquet_is_refused(tmp_path):
    publish_bundle(tmp_path, "shedding", {"decisions.parquet": b"not parquet"}, {}, signer=KEY.sign)
    with pytest.raises(BundleVerificationError, match="Parquet"):
        PolicyClient(tmp_path)


def test_client_ignores_tmp_leftovers(store, client):
    tmp = store / "shedding" / ".tmp-v000002-dead"
    tmp.mkdir()
    (tmp / "decisions.parquet").write_bytes(b"half")
    assert client.refresh() is False and read_latest(store, "shedding") == "v000001"


# Which modules the client may import is an import-linter contract (pyproject.toml), run by `make test`.


_IMPORT_CHILD = """
import json, sys
from qres_client.client import PolicyClient
c = PolicyClient(sys.argv[1])  # public keys from $QRES_PUBLIC_KEY
c.decide(down={"auth"})
heavy = {"pandas", "prefect", "mlflow", "great_expectations", "ortools", "dimod", "dwave", "scipy"}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_loading_a_bundle_pulls_in_no_pipeline_packages(store):
    import os

    env = {**os.environ, "QRES_PUBLIC_KEY": KEY.public.to_json()}
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHILD, str(store)],
        cwd=REPO,
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(out.stdout) == []


def test_public_api():
    assert set(client_module.__all__) >= {"Action", "Decision", "PolicyClient"}
    assert all(hasattr(client_module, n) for n in client_module.__all__)
