"""Every policy family by name: the one registry the CLI, the solve task and the backtest read.

Each family is defined by its own front door (``policies/<family>/policy.py``); this module
only names them, since the families may not import each other.
"""

from __future__ import annotations

from policies.errors import ConfigError
from policies.routing.policy import ROUTING
from policies.shedding.horizon_solvers import HORIZON
from policies.shedding.policy import SHEDDING
from policies.solve.family import Family
from policies.standby.policy import STANDBY
from policies.tiers.policy import TIERS

__all__ = ["FAMILIES", "family"]

FAMILIES: dict[str, Family] = {f.name: f for f in (SHEDDING, TIERS, STANDBY, ROUTING, HORIZON)}


def family(name: str) -> Family:
    """The family called ``name``; ConfigError naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown family {name!r}; choose from {', '.join(FAMILIES)}") from None
