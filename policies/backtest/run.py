"""A whole backtest: split history in time, fit and solve on the past, replay later incidents.

:func:`run_backtest` fits and solves the shedding policy on the checks before the split as the nightly
does (or takes a bundle's decisions), finds the incidents after the split and replays each with
:mod:`policies.backtest.replay`; figures in :func:`summarize`, all JSON-able except ``train``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa

from policies.backtest.config import BacktestConfig
from policies.backtest.costs import switch_costs
from policies.backtest.guards import guard_replay
from policies.backtest.history import ChunkGrids, before, chunk_grids, fit_history
from policies.backtest.metrics import incident_figures, summarize
from policies.backtest.oracle import hindsight_oracle
from policies.backtest.policies import (
    AdmissionGreedyPolicy,
    Decision,
    DwellPolicy,
    GreedyPolicy,
    ReplayPolicy,
    StandbyPolicy,
    fcfs_policy,
    state_optimum,
    tiers_policy,
)
from policies.backtest.replay import Realizer, StateCatalog, find_incidents, replay_incident
from policies.backtest.reuse import IncidentReuse, ReplayStore, Solve, solve_with
from policies.backtest.standby import StandbyWorld, has_standby_tables, standby_summary, train_placement
from policies.backtest.timed import published_policy, trained_files
from policies.errors import NothingToLearnError, QresError
from policies.model.failure_model import FailureModel
from policies.model.states import UP, hysteresis_length
from policies.scenarios.scenario_set import ScenarioSet, build_scenarios
from policies.shedding.fallback import FALLBACK_FILE
from policies.shedding.policy import SHEDDING, build_shedding_problems
from policies.solve.result import solve_record
from qres_client.index import build_index

__all__ = ["BacktestConfig", "TrainedPolicy", "train_policy", "replay_policies", "run_backtest"]


@dataclass
class TrainedPolicy:
    """The policy fitted on the past, with what the report shows about it."""

    model: FailureModel
    scenarios: ScenarioSet
    files: dict[str, bytes]  # the bundle's decision files, as the nightly writes them
    solvers: list[dict]  # the provenance record of each scenario's solve
    standby: tuple[str, ...] = ()  # the standby placement the nightly would publish (empty: no candidates)

    @property
    def decisions(self) -> bytes:
        return self.files["decisions.parquet"]

    @property
    def fallback(self) -> bytes:
        return self.files[FALLBACK_FILE]


def train_policy(
    tables: Mapping[str, pa.Table],
    cfg: BacktestConfig,
    checks: pa.Table,
    progress: Callable[[int, int], None] | None = None,
    solve: Solve | None = None,
    *,
    standby: bool = True,
    known: ChunkGrids | None = None,
) -> TrainedPolicy:
    """Fit, build scenarios and solve on ``checks`` exactly as the nightly flow does (with ``standby`` and
    the standby tables, the placement too); ``solve``: the nightly's solve cache (backtest/reuse.py);
    ``known``: chunk grids already read (backtest/history.py)."""
    model = fit_history(tables, cfg, checks, chunk_grids(checks, cfg.window_min, known))
    scen = build_scenarios(
        model,
        tables["dependencies"],
        target_mass=cfg.target_mass,
        services=tables["services"],
        seed=cfg.seed,
        **cfg.scenario_kwargs(),
    )
    problems = build_shedding_problems(
        tables["services"], tables["dependencies"], tables["workloads"], scen.scenarios, levels=cfg.levels
    )
    params = {"seed": cfg.seed, "time_limit_s": cfg.time_limit_s, "solvers": cfg.solvers, "anneal": cfg.anneal}
    results = solve_with(solve, SHEDDING, problems, params, progress)
    records = [solve_record(r, probability=s.probability) for s, r in zip(scen.scenarios, results)]
    files = trained_files(tables, cfg, model, scen.scenarios, problems, results, solve=solve)
    placement = ()
    if standby and has_standby_tables(tables):
        placement = train_placement(tables, scen.scenarios, seed=cfg.seed, time_limit_s=cfg.time_limit_s)
    return TrainedPolicy(model, scen, files, records, placement)


def replay_policies(
    index, tables: Mapping[str, pa.Table], cfg: BacktestConfig, *, window_min: int, standby: tuple[str, ...] = ()
) -> list[ReplayPolicy]:
    """The policies a backtest replays, in report order (the oracle is added after them).

    With a ``standby`` placement, published holds it, and two more show whose merit a result is:
    ``published_no_standby`` (the same shedding without it) and ``greedy_standby`` (live greedy with it).
    """
    published = published_policy(index, cfg.unmatched, window_min=window_min)
    out = [
        StandbyPolicy(published, standby, name="published") if standby else published,
        fcfs_policy(),
        tiers_policy(tables["workloads"]),
        GreedyPolicy(),
        DwellPolicy(GreedyPolicy(), int(round(cfg.dwell_min / window_min)), name="greedy_dwell"),
        AdmissionGreedyPolicy(),
    ]
    if standby:
        bare = published_policy(index, cfg.unmatched, window_min=window_min)
        bare.name = "published_no_standby"
        out += [bare, StandbyPolicy(GreedyPolicy(), standby, name="greedy_standby")]
    return out


def run_backtest(
    tables: Mapping[str, pa.Table],
    cfg: BacktestConfig,
    *,
    decisions: bytes | None = None,
    version: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    fallback: bytes | None = None,
    standby: tuple[str, ...] | None = None,
    reuse: ReplayStore | None = None,
    solve: Solve | None = None,
) -> dict:
    """Backtest the policy trained before the split (or the given bundle ``decisions``).

    The published policy answers as the client does with ``cfg.unmatched``; a given bundle
    without ``fallback`` (fallback.json; older bundles have none) answers with the old rule.
    ``standby``: the placement published holds (candidate ids); None: the trained one (none
    with given ``decisions``), ``()``: none.
    ``reuse``/``solve``: the previous run's figures and solves (policies/backtest/reuse.py).

    Returns the figures (see :func:`summarize`) plus ``train`` (a :class:`TrainedPolicy`, or None
    when ``decisions`` were given). Raises QresError when the history is too short to split.
    """
    report = progress or (lambda step, done, total: None)
    if not 0.0 < cfg.train_fraction < 1.0:
        raise QresError(f"backtest.train_fraction must be within (0, 1), e.g. 0.7; got {cfg.train_fraction!r}")
    checks = tables["health_checks"]
    if checks.num_rows == 0:
        raise QresError("table 'health_checks' is empty: nothing to backtest")
    grids = chunk_grids(checks, cfg.window_min)
    full = fit_history(tables, cfg, checks, grids)
    n_w = full.states.shape[0]
    split_w = int(round(cfg.train_fraction * n_w))
    if split_w < 1 or split_w >= n_w:
        raise QresError(f"history of {n_w} windows is too short to split at {cfg.train_fraction:.0%}")
    split_at = full.start + pd.Timedelta(minutes=split_w * full.window_min)
    train = None
    if decisions is None:
        train = train_policy(
            tables,
            cfg,
            before(checks, split_at),
            progress=partial(report, "solve policy on the past"),
            solve=solve,
            standby=standby != (),
            known=grids,
        )
        del grids  # the chunks' grids: the replay reads the fitted states only
        decisions, version, fallback = train.decisions, "trained", train.fallback
        standby = train.standby if standby is None else standby
    standby = tuple(sorted(standby or ()))
    files = {"decisions.parquet": decisions, **({FALLBACK_FILE: fallback} if fallback else {})}
    index = build_index("shedding", version or "bundle", {}, files)
    k = hysteresis_length(cfg.hysteresis_windows, cfg.hysteresis_min, cfg.window_min)
    delay = k - 1
    incidents = find_incidents(
        full.states,
        full.services,
        first_window=split_w,
        merge_gap_windows=int(cfg.merge_gap_min // full.window_min),
        pad_windows=delay + 1,
    )
    catalog = StateCatalog(tables, full.services, levels=cfg.levels)
    refused = None
    try:
        guard_replay(full, incidents, split_at, catalog)
    except NothingToLearnError as exc:
        if cfg.refuse_empty:
            raise
        refused, incidents = str(exc), []  # the nightly records why and goes on without figures
    policies = replay_policies(index, tables, cfg, window_min=full.window_min, standby=standby)
    costs = switch_costs(tables["workloads"], levels=cfg.levels)
    world = StandbyWorld(tables) if standby else None
    hours, realize, optima = full.window_min / 60.0, Realizer(world), {}

    def optimum(view):
        if view.key not in optima:
            optima[view.key] = state_optimum(view, seed=cfg.seed, time_limit_s=cfg.time_limit_s)
        return optima[view.key]

    normal = catalog.views_of(np.full((1, len(full.services)), UP, dtype=np.int8))[0]
    normal_value = realize(normal, optimum(normal))[1]
    memo = IncidentReuse.begin(reuse, tables, full, costs, normal_value, cfg)
    per_incident = []
    for i, inc in enumerate(incidents):
        w = np.arange(inc.start_window, inc.end_window)
        truth = catalog.views_of(full.states[w])
        observed = catalog.views_of(seen := full.states[np.maximum(w - delay, 0)])
        runs = {p.name: replay_incident(p, truth, observed, normal, costs, realize) for p in policies}
        if (stored := memo.lookup(full, full.states[w], seen, inc, runs)) is not None:
            per_incident.append(stored)
            report("replay incidents", i + 1, len(incidents))
            continue
        made = [d for r in runs.values() for d in r.decisions]
        best = [optimum(v) for v in {v.key: v for v in truth}.values()]
        runs["oracle"] = hindsight_oracle(
            truth,
            normal,
            made + best + ([Decision(d.levels, d.priority, standby) for d in best] if standby else []),
            [optimum(normal)] + [r.normal for r in runs.values()],
            costs,
            hours,
            realize,
        )
        per_incident.append(incident_figures(inc, full, truth, runs, normal_value))
        memo.add(per_incident[-1])
        report("replay incidents", i + 1, len(incidents))
    memo.finish()
    out = summarize(per_incident, alpha=cfg.alpha, goal_share=cfg.goal_share, goal_cvar_ratio=cfg.goal_cvar_ratio)
    matched = policies[0].matched
    out.update(
        {
            "window_min": full.window_min,
            "delay_min": delay * full.window_min,
            "dwell_min": int(round(cfg.dwell_min / full.window_min)) * full.window_min,
            "split_at": split_at.isoformat(),
            "start": full.start.isoformat(),
            "end": full.end.isoformat(),
            "train_fraction": cfg.train_fraction,
            "normal_value_per_h": normal_value,
            "version": version,
            "published_exact_share": (sum(1 for k_, v in matched.items() if k_ == v) / len(matched))
            if matched
            else None,
            "train": train,
            "refused": refused,
            "standby": standby_summary(world, standby, (full.end - split_at).total_seconds() / 3600.0),
            "replayed": len(incidents) - memo.reused,
            "reused": memo.reused,
        }
    )
    return out
