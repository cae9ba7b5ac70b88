"""The short, readable summary a run ends with."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from flows.settings import Settings


@dataclass
class RunSummary:
    """What a run did, for the terminal, the Prefect artifact and tests."""

    rows_validated: int
    tables: dict[str, int]
    dependencies: int
    dependencies_with_outages: int
    scenarios: int
    covered_mass: float
    target_mass: float
    objective_by_solver: dict[str, float]
    chosen: dict[str, int]
    worst_gap: float | None
    expected_value_per_h: float
    published: bool
    bundle_path: str | None
    bundle_version: str | None
    mlflow_run_id: str
    model_version: str
    promoted: bool
    gates: dict = field(default_factory=dict)
    snapshot: str = ""
    raw_transitions: int = 0
    transitions_removed: int = 0
    kind: str = "nightly"  # or "resolve" (flows/resolve.py)
    scenarios_solved: int = 0  # the rest were reused from the per-scenario cache
    tracking_uri: str = ""
    families: dict = field(default_factory=dict)
    unchanged: bool = False  # a re-solve whose shedding decisions equal LATEST's: nothing published
    report_path: str | None = None  # the HTML report written to <state_dir>/reports
    example_down: str = (
        ""  # a dependency of the likeliest outage, for the "next" hint  # standby/routing: flows.publish.FamilyOutcome
    )

    def as_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        solvers = "\n".join(
            f"| {k} | {v:,.2f} | {self.chosen.get(k, 0)} |" for k, v in self.objective_by_solver.items()
        )
        gates = "\n".join(
            f"- {'✅' if c['passed'] else '❌'} **{c['name']}**: {c['detail']}" for c in self.gates.get("checks", [])
        )
        return (
            f"# qresilience {self.kind}\n\n"
            f"- rows validated: {self.rows_validated:,}\n- dependencies: {self.dependencies} "
            f"({self.dependencies_with_outages} with outages)\n"
            f"- scenarios: {self.scenarios}, covering {self.covered_mass:.4%} (target {self.target_mass:.2%})\n"
            f"- expected value: {self.expected_value_per_h:,.2f}/h, worst gap "
            f"{'n/a' if self.worst_gap is None else f'{self.worst_gap:.4%}'}\n"
            f"- bundle: {_bundle_link(self.bundle_version, self.bundle_path)}\n"
            f"- scenarios solved: {self.scenarios_solved}, reused from the cache: {self.scenarios - self.scenarios_solved}\n"
            + "".join(f"- {name}: {family_line(o)}\n" for name, o in self.families.items())
            + f"- MLflow run: {_mlflow_link(self.tracking_uri, self.mlflow_run_id)} (model version {self.model_version}, "
            f"{'champion' if self.promoted else 'candidate'})\n\n"
            f"| solver | objective (sum over scenarios) | chosen |\n|---|---|---|\n{solvers}\n\n## Gates\n{gates}\n"
        )


def _bundle_link(version: str | None, path: str | None) -> str:
    return f"[{version}]({Path(path).resolve().as_uri()}) `{path}`" if version and path else "not published"


def _mlflow_link(tracking_uri: str, run_id: str) -> str:
    """A clickable link when the tracking server speaks HTTP; the run id (and how to open it) otherwise."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"[{run_id}]({tracking_uri.rstrip('/')}/#/experiments/0/runs/{run_id})"  # MLflow resolves the experiment
    return f"`{run_id}` (`mlflow ui --backend-store-uri {tracking_uri}`)" if tracking_uri else run_id


__all__ = ["RunSummary", "render_summary", "family_line", "next_commands", "shown_path"]


def render_summary(s: dict, settings: Settings) -> Panel:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("rows validated", f"{s['rows_validated']:,} in {len(s['tables'])} tables")
    facts.add_row("dependencies", f"{s['dependencies']} ({s['dependencies_with_outages']} with outages)")
    if "transitions_removed" in s:
        facts.add_row(
            "flap filter", f"removed {s['transitions_removed']:,} of {s['raw_transitions']:,} raw state changes"
        )
    facts.add_row(
        "scenarios",
        f"{s['scenarios']}, covering {s['covered_mass']:.4%} of the probability mass (target {s['target_mass']:.2%})",
    )
    gap = "n/a" if s["worst_gap"] is None else f"{s['worst_gap']:.4%}"
    facts.add_row("expected value", f"{s['expected_value_per_h']:,.2f}/h; worst gap to bound {gap}")
    if s["published"]:
        facts.add_row("bundle", f"{s['bundle_version']} at {shown_path(s['bundle_path'])}")
    elif s.get("unchanged"):
        facts.add_row("bundle", f"unchanged: the decisions equal LATEST {s['bundle_version']}'s, nothing published")
    else:
        failed = [c for c in s["gates"].get("checks", []) if not c["passed"]]
        facts.add_row("bundle", "[yellow]not published[/]: " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed))
    for name, outcome in s.get("families", {}).items():  # one line per family (flows/families.py)
        facts.add_row(name, family_line(outcome))
    role = "champion" if s["promoted"] else "candidate"
    facts.add_row(
        "MLflow",
        f"run {s['mlflow_run_id']}, model version {s['model_version']} ({role}); "
        f"mlflow ui --backend-store-uri {settings.tracking_uri}",
    )
    if s.get("report_path"):
        facts.add_row("report", shown_path(s["report_path"]))
    facts.add_row("next", "\n".join(next_commands(s, settings)))

    solvers = Table(title="objective by solver (sum over scenarios, value/h)", title_justify="left")
    solvers.add_column("solver")
    solvers.add_column("objective", justify="right")
    solvers.add_column("chosen in", justify="right")
    for name, value in s["objective_by_solver"].items():
        solvers.add_row(name, f"{value:,.2f}", str(s["chosen"].get(name, 0)))
    title = "[green]published[/]" if s["published"] else "unchanged" if s.get("unchanged") else "[yellow]held back[/]"
    return Panel(Group(facts, solvers), title=f"qresilience {s.get('kind', 'nightly')}: {title}", expand=False)


def family_line(o: dict) -> str:
    """One line per family for the run summary (``o`` is a FamilyOutcome as a dict)."""
    unit = "ms expected latency+penalty" if o["policy"] == "routing" else "/h expected covered value"
    gap = "n/a" if o["worst_gap"] is None else f"{o['worst_gap']:.4%}"
    if o["published"]:
        where = f"published {o['stored_version']}"
    elif o.get("unchanged"):
        return f"unchanged: the decisions equal LATEST {o['stored_version']}'s, nothing published"
    else:
        where = "held back: " + "; ".join(
            f"{c['name']}: {c['detail']}" for c in o["gates"]["checks"] if not c["passed"]
        )
    solvers = ", ".join(f"{k} {v}" for k, v in sorted(o["chosen"].items()))
    return (
        f"{o['expected_value']:,.2f}{unit}, worst gap {gap}, chosen {solvers}; {where} "
        f"(model version {o['model_version']}, {'champion' if o['promoted'] else 'candidate'})"
    )


def shown_path(path: str | Path) -> str:
    """A path relative to the working folder when it is inside it (shorter, and the same on every machine)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def next_commands(s: dict, settings: Settings) -> list[str]:
    """Three commands a person can paste right after a run, with this run's values filled in."""
    down = s.get("example_down") or "<dependency>"
    qres = _qres_as_invoked()
    return [f"{qres} decide --down {down}", f"{qres} versions", f"{qres} backtest"]


def _qres_as_invoked() -> str:
    """``qres`` as this process was started (``.venv/bin/qres`` after ``make run``), so it pastes."""
    argv0 = Path(sys.argv[0])
    return shown_path(argv0) if argv0.name == "qres" and argv0.parent != Path() else "qres"
