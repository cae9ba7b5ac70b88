"""Policy quality on real outages: every real history × every overlay topology, every policy side by side.

Run: .venv/bin/python benchmarks/policy_quality.py [--histories manticore ...] [--overlays dsb-hotel ...]
     [--json out.json]

For each pair the real history (../shared/realdata, read in place: Upptime ``commits.jsonl`` and
the GitHub Statuspage export) is imported as ``qres import`` does, the overlay is laid over it
(``qres backtest --overlay NAME``), and ``run_backtest`` replays the held-out incidents with the
settings of ``qres.toml`` (the same for every pair: nothing is tuned per history). "published" is
what the nightly publishes for that overlay and history: fitted and solved on the first
``backtest.train_fraction`` of the history, then replayed on the later incidents.

Prints per pair the avoidable loss (loss minus the hindsight oracle's, which pays the same
switching costs) in total and at CVaR95 over incidents for keep-all (``fcfs``), static tiers,
live greedy, greedy with a dwell, the live admission rule (``greedy_admission``: live greedy
that leaves capacity sheds to admission control, the rule a bundle's caps follow, computed on the
spot) and published, the ratios published / greedy, and counts the pairs where published is at
most half of greedy on both (issue 14's goal), the same count for the live admission rule, and
the pairs where published beats it (what precomputation adds). The headline replays no standby
for anyone (the shedding alone). A refused pair
(nothing to replay, or capacity never binds) is listed with the reason, never scored. A second
table, from a second replay where the overlay has standby candidates, shows live greedy and
published with and without the standby placement the nightly would publish, and what it served and cost.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.params import backtest_config
from flows.settings import load_settings
from policies.backtest.overlay import OVERLAY_NAMES, load_overlay, overlay_timeline
from policies.backtest.run import run_backtest
from policies.backtest.standby import has_standby_tables
from policies.errors import NothingToLearnError
from policies.telemetry.importers.statuspage import import_statuspage
from policies.telemetry.importers.upptime import import_upptime
from policies.telemetry.ingest import conform_tables, load_telemetry

__all__ = ["main", "HISTORIES"]

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
HISTORIES = {
    "manticore": "upptime/manticore/commits.jsonl",
    "honch": "upptime/honch/commits.jsonl",
    "4hse": "upptime/4hse/commits.jsonl",
    "3deling": "upptime/3deling/commits.jsonl",
    "github": "statuspage/github/incidents.jsonl.gz",
}
SHOWN = ("fcfs", "tiers", "greedy", "greedy_dwell", "greedy_admission", "published")


def _import(name: str, out: Path) -> dict:
    source = REALDATA / HISTORIES[name]
    (import_statuspage if source.parent.parent.name == "statuspage" else import_upptime)(source, out)
    return conform_tables(load_telemetry(str(out)).tables)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 1e-6 else None


def run_pair(real: dict, overlay: str, cfg) -> dict:
    """One history × overlay: the figures of every policy, or the refusal.

    The headline replays the shedding alone (no standby placement for anyone), so that published
    and the live rules differ only in how they shed; where the overlay has standby candidates a
    second replay gives the standby table (published and greedy_standby hold the trained placement).
    """
    tables, _ = overlay_timeline(real, *load_overlay(overlay))
    t0 = time.perf_counter()
    try:
        res = run_backtest(tables, cfg, standby=())
    except NothingToLearnError as exc:
        reason = re.split(r" \(|: ", str(exc).removeprefix("refused: "))[0]  # its first clause
        return {"refused": reason, "seconds": time.perf_counter() - t0}
    ov = res["overall"]
    row = {
        "incidents": res["n_incidents"],
        "impacting": res["n_impacting"],
        "policies": {n: {k: ov[n][k] for k in ("avoidable_loss", "avoidable_cvar", "loss", "share")} for n in ov},
    }
    pub, greedy, live = ov["published"], ov["greedy"], ov["greedy_admission"]
    row["ratio_total"] = _ratio(pub["avoidable_loss"], greedy["avoidable_loss"])
    row["ratio_cvar"] = _ratio(pub["avoidable_cvar"], greedy["avoidable_cvar"])
    row["goal_met"] = bool(res["goal"].get("half_of_greedy_met"))
    row["live_admission_met"] = _half(live, greedy)
    row["beats_live_admission"] = (
        pub["avoidable_loss"] < live["avoidable_loss"] - 1e-6 and pub["avoidable_cvar"] <= live["avoidable_cvar"] + 1e-6
    )
    row["standby"] = standby_figures(run_backtest(tables, cfg)) if has_standby_tables(tables) else None
    row["seconds"] = time.perf_counter() - t0
    return row


def _half(a: dict, b: dict) -> bool:
    """Issue 14's test of ``a`` against ``b``: at most half of its avoidable loss, in total and at CVaR95."""
    return bool(
        b["avoidable_loss"] > 1e-6
        and a["avoidable_loss"] <= 0.5 * b["avoidable_loss"] + 1e-6
        and a["avoidable_cvar"] <= 0.5 * b["avoidable_cvar"] + 1e-6
    )


def _fmt(x, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def print_table(results: dict) -> None:
    head = ["history", "overlay", "incidents"] + [f"{n} total / CVaR95" for n in SHOWN]
    print("| " + " | ".join(head + ["published/greedy total", "CVaR95", "≤ 0.5 both"]) + " |")
    print("|" + " --- |" * (len(head) + 3))
    met = scored = live_met = beats_live = 0
    for (hist, ov), row in results.items():
        if "refused" in row:
            print(f"| {hist} | {ov} | refused: {row['refused']} |" + " |" * len(head))
            continue
        scored += 1
        met += row["goal_met"]
        live_met += row["live_admission_met"]
        beats_live += row["beats_live_admission"]
        cells = [
            f"{_fmt(row['policies'][n]['avoidable_loss'])} / {_fmt(row['policies'][n]['avoidable_cvar'])}"
            for n in SHOWN
        ]
        print(
            f"| {hist} | {ov} | {row['incidents']} | "
            + " | ".join(cells)
            + f" | {_fmt(row['ratio_total'], '.2f')} | {_fmt(row['ratio_cvar'], '.2f')} | {'yes' if row['goal_met'] else 'no'} |"
        )
    print(
        f"\npublished's avoidable loss ≤ 0.5 × live greedy's, in total and at CVaR95: {met} of {scored} scored pairs "
        f"({len(results) - scored} refused); goal: a majority of the pairs.\n"
        f"the same test for the live admission rule (greedy_admission, no precomputation): {live_met} of {scored}; "
        f"published below greedy_admission in total (and not above it at CVaR95): {beats_live} of {scored}."
    )


STANDBY_SHOWN = ("greedy", "greedy_standby", "published_no_standby", "published")


def standby_figures(res: dict) -> dict | None:
    """The placement published holds and every policy's standby figures (None: no placement)."""
    if not res.get("standby"):
        return None
    ov = res["overall"]
    return {
        **res["standby"],
        "policies": {
            n: {k: ov[n][k] for k in ("avoidable_loss", "avoidable_cvar", "standby_value", "standby_cost")}
            for n in STANDBY_SHOWN
            if n in ov
        },
    }


def print_standby_table(results: dict) -> None:
    """Published and live greedy with and without the same standby placement (docs/backtest.md, "Standby")."""
    rows = {k: r["standby"] for k, r in results.items() if r.get("standby")}
    if not rows:
        return
    head = [f"{n} total / CVaR95" for n in STANDBY_SHOWN]
    print(
        "\nWith standby (a second replay; avoidable loss against an oracle that may hold the placement too;"
        " published and greedy_standby hold the placement the nightly publishes):\n"
    )
    print(
        "| "
        + " | ".join(
            ["history", "overlay", *head, "copies", "cost/h", "served / cost in incidents", "test-period cost"]
        )
        + " |"
    )
    print("|" + " --- |" * (len(head) + 6))
    for (hist, ov), sb in rows.items():
        pol = sb["policies"]
        cells = [f"{_fmt(pol[n]['avoidable_loss'])} / {_fmt(pol[n]['avoidable_cvar'])}" for n in STANDBY_SHOWN]
        pub = pol["published"]
        print(
            f"| {hist} | {ov} | " + " | ".join(cells) + f" | {len(sb['placed'])} | {_fmt(sb['cost_per_h'], ',.1f')} | "
            f"{_fmt(pub['standby_value'])} / {_fmt(pub['standby_cost'])} | {_fmt(sb['test_period_cost'])} |"
        )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--histories", nargs="*", default=sorted(HISTORIES), choices=sorted(HISTORIES))
    ap.add_argument("--overlays", nargs="*", default=list(OVERLAY_NAMES), choices=list(OVERLAY_NAMES))
    ap.add_argument("--config", default=None, help="a qres.toml (default: the repository's)")
    ap.add_argument("--json", dest="json_out", default=None, help="also write every figure to this file")
    args = ap.parse_args(argv)
    if not REALDATA.is_dir():
        raise SystemExit(f"no real data at {REALDATA} (see ../shared/realdata/README.md)")
    settings = load_settings(args.config)
    cfg = backtest_config(settings)
    print(
        f"settings: train_fraction {cfg.train_fraction}, delay from hysteresis {cfg.hysteresis_windows} windows of "
        f"{cfg.window_min} min, dwell {cfg.dwell_min} min, solvers {', '.join(cfg.solvers)}, seed {cfg.seed}; "
        "switching costs from the workload tables (defaults: 30 s drain, warm-up 60 s × (4 − tier))\n"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="qres-policy-quality-") as tmp:
        for hist in args.histories:
            real = _import(hist, Path(tmp) / hist)
            for ov in args.overlays:
                results[(hist, ov)] = run_pair(real, ov, cfg)
                print(
                    f"  {hist} × {ov}: {results[(hist, ov)].get('refused') or 'done'} "
                    f"({results[(hist, ov)]['seconds']:.0f} s)",
                    file=sys.stderr,
                )
    print_table(results)
    print_standby_table(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({f"{h} x {o}": r for (h, o), r in results.items()}, indent=1))
    return results


if __name__ == "__main__":
    main()
