"""Annealing as every family runs it: the sampler named by import path, its parameters, the seed.

Any dimod sampler can stand in (a hosted QPU, a hybrid solver), so the sampler is named by
import path and given only the keyword arguments it takes. :class:`AnnealParams` is the one
typed set of annealer settings that crosses layers (settings -> task -> solver).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import asdict, dataclass

from policies.errors import ConfigError

__all__ = ["AnnealParams", "DEFAULT_SAMPLER", "load_sampler", "accepted_params", "sample_kwargs"]

DEFAULT_SAMPLER = "dwave.samplers.SimulatedAnnealingSampler"


@dataclass(frozen=True)
class AnnealParams:
    """The annealer settings the nightly gives every family's ``anneal`` solver."""

    sampler: str = DEFAULT_SAMPLER
    num_reads: int = 16
    num_sweeps: int = 400

    def __post_init__(self) -> None:
        if self.num_reads < 1 or self.num_sweeps < 1:
            raise ConfigError(f"num_reads and num_sweeps must be >= 1, got {self.num_reads}, {self.num_sweeps}")

    def as_dict(self) -> dict:
        """The solvers' keyword arguments (and the cache-key form: the same dict the flows used to pass)."""
        return asdict(self)


def load_sampler(path: str, kwargs: dict | None = None):
    """Instantiate a dimod sampler named by import path ('package.module.ClassName')."""
    module, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)(**(kwargs or {}))
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load sampler {path!r} ({exc}); give 'package.module.ClassName'") from exc


def accepted_params(sampler) -> set[str]:
    """Keyword arguments a dimod sampler takes: its ``parameters`` plus its named ``sample`` arguments."""
    names = set(getattr(sampler, "parameters", {}) or {})
    try:
        sig = inspect.signature(sampler.sample)
    except (TypeError, ValueError):
        return names
    return names | {n for n, a in sig.parameters.items() if a.kind in (a.KEYWORD_ONLY, a.POSITIONAL_OR_KEYWORD)}


def sample_kwargs(sampler, *, seed: int, given: dict | None = None, **defaults) -> dict:
    """Arguments for ``sampler.sample``: ``given`` as is, then ``defaults`` and the seed (below 2**31)
    where the sampler takes them and ``given`` does not set them. ``"seed" in result`` says it was seeded."""
    accepted = accepted_params(sampler)
    kwargs = dict(given or {})
    for name, value in (*defaults.items(), ("seed", int(seed) % 2**31)):
        if name in accepted:
            kwargs.setdefault(name, value)
    return kwargs
