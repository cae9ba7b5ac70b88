"""Refusals and warnings for histories a failure model cannot learn from.

A model fitted on a history without a single outage episode says every dependency is up
forever; reporting that as a result would be a perfect score for an empty question. So the
callers that present a model (``qres model``, the backtest) refuse with
:class:`~policies.errors.NothingToLearnError`, and histories with only a few episodes get a
warning that the estimates are mostly prior.
"""

from __future__ import annotations

from policies.errors import NothingToLearnError
from policies.model.failure_model import FailureModel

__all__ = ["require_outages", "outage_warnings", "MIN_EPISODES"]

MIN_EPISODES = 5  # fewer outage episodes than this over the whole history: too few to learn from


def _span(model: FailureModel) -> str:
    days = (model.end - model.start).total_seconds() / 86_400
    return f"{len(model.services)} service(s) over {days:.1f} days ({model.start:%Y-%m-%d} .. {model.end:%Y-%m-%d})"


def require_outages(model: FailureModel, what: str = "a failure model") -> None:
    """Refuse when no service was ever down (after hysteresis): nothing to learn ``what`` from."""
    if int(model.per_dependency["outages"].sum()) == 0:
        raise NothingToLearnError(
            f"refused: no outage episodes in {_span(model)}: nothing to learn {what} from. "
            "Every check was up (or outages were shorter than the hysteresis); import a longer history, "
            "lower model.hysteresis_windows, or check that the probes report 'down'."
        )


def outage_warnings(model: FailureModel, min_episodes: int = MIN_EPISODES) -> list[str]:
    """Warnings for a history with too few outages to learn from (empty when there are enough)."""
    per = model.per_dependency
    total = int(per["outages"].sum())
    if total >= min_episodes:
        return []
    down = sorted(per.loc[per["outages"] > 0, "service_id"].tolist()) if "service_id" in per else []
    return [
        f"only {total} outage episode(s) in {_span(model)} (fewer than {min_episodes}): too few outages to learn "
        "from; failure probabilities are mostly the prior"
        + (f" (down at some point: {', '.join(down)})" if down else "")
    ]
