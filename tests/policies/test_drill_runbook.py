"""policies.drill.runbook: the on-call page from a bundle's scenarios, health and recorded drills."""

from __future__ import annotations

from policies.drill.runbook import decide_command, matching_drill, render_runbook

HEALTH = {
    "horizon_min": 15.0,
    "default": {"failure_rate_per_min": 0.001, "recovery_rate_per_min": 0.1},
    "dependencies": {"saas-payments": {"failure_rate_per_min": 0.001, "recovery_rate_per_min": 0.025}},
}


def _scenario(key, down, degraded, p, admits):
    actions = [{"workload_id": f"w{i}", "admit": a, "rank": i + 1} for i, a in enumerate(admits)]
    return {"key": key, "down": down, "degraded": degraded, "probability": p, "actions": actions}


SCENARIOS = [
    _scenario("normal", [], [], 0.9, (1.0, 1.0, 1.0)),
    _scenario("down=saas-payments", ["saas-payments"], [], 0.01, (1.0, 0.5, 0.0)),
    _scenario("down=svc-x", ["svc-x"], [], 0.02, (1.0, 1.0, 0.0)),
    _scenario("degraded=region-ap-south", [], ["region-ap-south"], 0.001, (1.0, 1.0, 1.0)),
    _scenario("fallback:all-down", ["saas-payments", "svc-x"], [], 0.0, (0.0, 0.0, 0.0)),
]
DRILL = {
    "source": "what-if",
    "bundle_version": "v000007",
    "seeds": [1, 2],
    "policies": ["keep-all", "published"],
    "record": "/tmp/drill.json",
    "per_seed": [{"plan": {"down": ["saas-payments"], "degraded": []}}],
    "summary": {
        "keep-all": {"mttd_s": {"mean": 1.2}, "mttsf_s": None, "value_processed": {"mean": 900.0},
                     "value_lost": {"mean": 300.0}, "sla_miss": {"P1": 0.25}},
        "published": {"mttd_s": {"mean": 1.1}, "mttsf_s": {"mean": 1.3}, "value_processed": {"mean": 1000.0},
                      "value_lost": {"mean": 50.0}, "sla_miss": {"P1": 0.05}},
    },
}  # fmt: skip


def test_runbook_orders_outages_and_says_what_to_do() -> None:
    page = render_runbook({"version": "v000007"}, SCENARIOS, HEALTH, {"what-if": DRILL}, top=2)
    assert page.startswith("# On-call runbook: shedding v000007")
    heads = [line for line in page.splitlines() if line.startswith("### ")]
    # the two likeliest outages (never "normal"), then the all-down fallback; the rare degraded one is cut
    assert heads == ["### 1. `down=svc-x`", "### 2. `down=saas-payments`", "### 3. `fallback:all-down`"]
    section = page.split("### 2.")[1].split("### 3.")[0]
    assert "keeps 1 workloads in full; first in line: w0" in section
    assert "admits part of 1: w1 50%" in section and "sheds 1: w2" in section
    assert "`saas-payments` (down): mean outage 40 min" in section
    assert "`qres rollback`, then `qres decide --down saas-payments`" in section
    assert "| published | 1.10 | 1.30 | 1,000 | 50 | 5% |" in section  # the what-if drill took the same dependency down
    assert "| keep-all | 1.20 | - | 900 | 300 | 25% |" in section
    other = page.split("### 1.")[1].split("### 2.")[0]
    assert "not drilled yet: `qres drill --scenario 'down=svc-x' --roles validation=svc-x`" in other


def test_matching_and_commands() -> None:
    assert matching_drill({"what-if": DRILL}, "down=saas-payments", ["saas-payments"], []) is DRILL
    assert matching_drill({"what-if": DRILL}, "down=svc-x", ["svc-x"], []) is None
    by_key = {**DRILL, "source": "scenario:down=svc-x"}
    assert matching_drill({"scenario:down=svc-x": by_key}, "down=svc-x", ["svc-x"], []) is by_key
    assert decide_command(["a", "b"], ["c"]) == "qres decide --down a,b --degraded c"
    page = render_runbook({"version": "v1"}, SCENARIOS, HEALTH, {}, top=10)
    assert "### 3. `degraded=region-ap-south`" in page
    assert "--roles compute=region-ap-south" in page  # a region is played by the compute stand-in
    assert "qres drill --scenario 'down=saas-payments'`" in page  # payments has a stand-in already
