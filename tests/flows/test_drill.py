"""`qres drill` end to end on a short what-if: real processes, a signed bundle, MLflow, replay with the same seed.

The bundle is published in-process (no nightly: the suite's budget) with the drill's four
workloads, so every rule the drill compares has what it reads: decisions, tiers, fallback, health.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.app import app
from policies.bundle.store import publish_bundle
from policies.drill.system import DEFAULT_SYSTEM
from qres_client.bundle import encode_json, encode_parquet
from qres_client.health import build_health_document
from tests.policies.test_client import KEY
from tests.waits import WAIT_S

WORKLOADS = DEFAULT_SYSTEM.workloads  # P1..P4: checkout, billing, invoice-processing, its stream
PAYMENTS = "saas-payments"


def _bundle_files() -> dict[str, bytes]:
    import pyarrow as pa

    from qres_client.schema import DECISIONS_SHEDDING

    # While payments are down the published plan keeps P1 and P3 and sheds the two others.
    plans = {"normal": ([], (1.0, 1.0, 1.0, 1.0)), f"down={PAYMENTS}": ([PAYMENTS], (1.0, 0.0, 1.0, 0.0))}
    deps = [*DEFAULT_SYSTEM.roles.values()]
    plans["fallback:all-down"] = (deps, (0.0, 0.0, 0.0, 0.0))
    rows = [
        {"scenario_key": key, "down": down, "degraded": [], "effective_down": down, "probability": 0.1,
         "workload_id": w, "admit": a, "rank": i + 1}
        for key, (down, admits) in plans.items()
        for i, (w, a) in enumerate(zip(WORKLOADS, admits))
    ]  # fmt: skip
    fallback = {
        "schema_version": 1, "levels": 4, "degraded_capacity_share": 0.5, "degraded_risk_share": 0.5,
        "hard_dependents": {}, "regions": {"region-eu-west": 100.0, "region-us-east": 100.0},
        "workloads": [
            {"workload_id": w, "value_per_hour": v, "demand": 10.0, "min_share": 0.0, "needs": n, "risks": []}
            for w, v, n in sorted(zip(WORKLOADS, (100.0, 50.0, 10.0, 5.0), ([PAYMENTS], [PAYMENTS], [], [])))
        ],
    }  # fmt: skip
    tiers = {"workloads": [{"workload_id": w, "tier": t} for w, t in zip(WORKLOADS, (0, 1, 2, 3))]}
    health = build_health_document(
        [{"service_id": s, "failure_rate_per_min": 0.001, "recovery_rate_per_min": 0.05, "p_down": 0.01} for s in deps],
        horizon_min=15.0,
        window_min=1,
    )
    return {
        "decisions.parquet": encode_parquet(pa.Table.from_pylist(rows, schema=DECISIONS_SHEDDING)),
        "policy.json": encode_json({"scenarios": sorted(plans)}),
        "fallback.json": encode_json(fallback),
        "tiers.json": encode_json(tiers),
        "health.json": encode_json(health),
    }


@pytest.fixture(scope="module")
def drilled(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("drill")
    publish_bundle(tmp / "bundles", "shedding", _bundle_files(), {"mlflow_run_id": "r1"}, signer=KEY.sign)
    (tmp / "keys").mkdir()
    (tmp / "keys" / "qres-signing.pub").write_text(KEY.public.to_json(), encoding="ascii")
    cfg = tmp / "qres.toml"
    cfg.write_text('store_dir = "bundles"\nstate_dir = "state"\n[bundle]\nkey_dir = "keys"\n')
    args = ["drill", "--config", str(cfg), "--down", PAYMENTS, "--for", "2s", "--duration", "5", "--seeds", "4"]
    args += ["--policies", "keep-all,published", "--rate", "6", "--work", str(tmp / "work")]
    (tmp / "work").mkdir()
    (tmp / "work" / "notes.txt").write_text("a drill never deletes what it did not write")
    res = CliRunner().invoke(app, [*args, "--json"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    first = json.loads(res.stdout)
    first_results = json.loads((tmp / "work" / "seed-4" / "results.json").read_text())
    again = [*args, "--no-record", "--policies", "published", "--work", str(tmp / "again")]
    res = CliRunner().invoke(app, again, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return tmp, first, first_results, res.stdout


def test_drill_measures_both_policies_and_records_them(drilled) -> None:
    tmp, doc, _, table = drilled
    assert doc["source"] == "what-if" and doc["policies"] == ["keep-all", "published"] and doc["seeds"] == [4]
    keep, pub = doc["summary"]["keep-all"], doc["summary"]["published"]
    assert keep["invoices"]["mean"] == pub["invoices"]["mean"] > 10  # the same load on both
    assert pub["mttd_s"] is not None and 0 < pub["mttd_s"]["mean"] < 2.0  # detected while payments were down
    assert pub["mttsf_s"]["mean"] >= pub["mttd_s"]["mean"] and keep["mttsf_s"] is None  # keep-all never switches
    assert pub["decisions_changed"]["mean"] > 0 and keep["decisions_changed"]["mean"] == 0
    assert pub["kl_normal_fallback"]["mean"] > 0 and keep["kl_normal_fallback"]["mean"] == 0
    assert pub["value_shed"]["mean"] > 0 and keep["value_shed"]["mean"] == 0
    assert doc["decisions"]["4"]["published"][:2] == ["normal", f"down={PAYMENTS}"]
    for figure in ("MTTD s", "value lost", "SLA missed P1", "KL normal/fallback", "published"):
        assert figure in table  # the second run printed the outcome table
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp / 'state' / 'mlflow.db'}")
    run = client.get_run(doc["mlflow_run_id"])
    assert run.data.params["bundle_version"] == doc["bundle_version"] == "v000001"
    assert run.data.params["seeds"] == "[4]" and run.data.tags["qres.flow"] == "drill"
    assert run.data.metrics["published.value_shed"] == pub["value_shed"]["mean"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "drill")} == {
        "drill/timeline.json",
        "drill/result.json",
    }
    assert Path(doc["record"]).is_file() and Path(doc["record"]).parent == tmp / "state" / "drills"
    assert (tmp / "work" / "notes.txt").is_file()


def test_same_seed_same_faults_load_and_decisions(drilled) -> None:
    """A replay (published only) plays the same plan and invoices, and decides each invoice alike under a plan.

    Detection times are measured, not replayed (tens of ms apart), so only invoices that met the same plan
    in both runs are compared: all those before the fault, and those during the outage in both.
    """
    tmp, _, first, _ = drilled
    a, b = tmp / "work" / "seed-4", tmp / "again" / "seed-4"
    assert (a / "plan.json").read_bytes() == (b / "plan.json").read_bytes()
    assert (a / "invoices.json").read_bytes() == (b / "invoices.json").read_bytes()
    onset = min(s["start_s"] for s in json.loads((a / "plan.json").read_text())["segments"])
    before = {i["invoice_id"] for i in json.loads((a / "invoices.json").read_text()) if i["at_s"] < onset}
    x, y = first["published"], json.loads((b / "results.json").read_text())["published"]
    same_plan = [i for i in x if i in y and x[i].get("plan") == y[i].get("plan") and "admitted" in x[i]]
    assert before and before <= set(same_plan)
    assert any(x[i]["plan"] == f"down={PAYMENTS}" for i in same_plan)
    assert all(x[i]["admitted"] == y[i]["admitted"] for i in same_plan)
    events = [json.loads(line) for line in (b / "events-published.jsonl").read_text().splitlines()]
    assert [e["key"] for e in events if e["kind"] == "decision"][:2] == ["normal", f"down={PAYMENTS}"]


def test_no_drill_process_outlives_the_drill(drilled) -> None:
    tmp, *_ = drilled
    for log in (tmp / "work" / "seed-4" / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(), log.read_text()[-2000:]
    pids = json.loads((tmp / "work" / "seed-4" / "pids.json").read_text())
    assert set(pids) == {"dep-validation", "dep-payment", "dep-compute", "dep-standby", "proxy", "loadgen"} | {
        "service-keep-all",
        "service-published",
    }
    for pid in pids.values():  # each was stopped (and reaped) by its pid
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_report_shows_the_recorded_drill(drilled) -> None:
    from tasks.drill.record import latest_records
    from tasks.drill.report import drill_section

    tmp, doc, _, _ = drilled
    records = latest_records(tmp / "state")
    assert list(records) == ["what-if"] and records["what-if"]["record"] == doc["record"]
    page = drill_section(records)
    assert page.startswith("<h2>Drills</h2>") and page.count("data:image/png;base64,") == 1
    assert "<th>keep-all</th><th>published</th>" in page and "SLA missed P1" in page
    shed = doc["summary"]["published"]["value_shed"]["mean"]
    assert f"<td class=n>{shed:,.0f}</td>" in page
    assert drill_section({}) == ""


def test_runbook_from_the_bundle_cites_the_drill(drilled) -> None:
    tmp, doc, _, _ = drilled
    out = tmp / "runbook.md"
    res = CliRunner().invoke(app, ["runbook", "--config", str(tmp / "qres.toml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert page.startswith("# On-call runbook: shedding v000001")
    section = page.split(f"`down={PAYMENTS}`")[1].split("###")[0]
    assert "sheds 2: wl-billing, wl-invoice-processing-stream" in section
    assert f"`qres rollback`, then `qres decide --down {PAYMENTS}`" in section
    assert f"drill `what-if` on v000001, seeds [4] (record {doc['record']})" in section


def test_sigterm_mid_load_stops_every_process(drilled) -> None:
    """Interrupted mid-load, the drill stops each process it started by pid before it exits.

    SIGTERM is turned into the KeyboardInterrupt a Ctrl-C raises (tasks/drill/procs.py), so this covers both.
    """
    sig = signal.SIGTERM
    tmp, *_ = drilled
    work = tmp / f"interrupted-{sig.name}"
    argv = [sys.executable, "-m", "flows.cli.app", "drill", "--config", str(tmp / "qres.toml"), "--down", PAYMENTS]
    argv += ["--duration", "120", "--seeds", "1", "--policies", "published", "--no-record", "--work", str(work)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pids_file = work / "seed-1" / "pids.json"
    deadline = time.monotonic() + WAIT_S
    while not pids_file.exists():  # the load has started
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the drill never started its load"
        time.sleep(0.1)
    pids = json.loads(pids_file.read_text())
    proc.send_signal(sig)
    assert proc.wait(timeout=WAIT_S) != 0
    proc.stderr.close()
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
