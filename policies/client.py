"""The runtime client: load verified bundles, answer ``decide(down=...)`` in microseconds.

A downstream service installs only pyarrow for this module (no numpy/pandas imports
here, no Prefect/MLflow), builds one :class:`PolicyClient` and calls :meth:`decide` on
every request; :meth:`refresh` (on a timer, say) swaps in a newer bundle once every
sha256 in its manifest checks out, and keeps serving the previous one otherwise.

How ``decide(down, degraded)`` picks a scenario (``degraded`` minus ``down`` is used):

1. **Exact**: a scenario whose root ``down`` set, or failing that whose ``effective_down``
   set (root causes plus everything they take down through hard dependencies), equals the
   observed down set, with an equal degraded set. Empty observation -> ``normal``.
2. **Cover**: otherwise the most conservative scenario that covers the observation:
   its ``effective_down`` contains every observed down service and its
   ``effective_down | degraded`` contains every observed degraded one (a service the
   plan already treats as down covers one observed degraded). Among those, the closest
   cover wins: fewest ``effective_down`` members, then the smallest sum of ``admit``
   (the most cautious plan), then the scenario key.
3. **Fallback**: ``fallback:all-down`` covers everything (unknown service names too) and
   is the last resort, so a loaded client always answers. (An observation equal to the
   fallback's own non-empty sets is reported as an exact match of it.)

Where a second scenario has the same effective set as another, ties in step 1 are broken
the same way as in step 2.
"""

from __future__ import annotations

import array
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from policies.bundle import LATEST_NAME, read_bundle, read_latest
from policies.errors import BundleVerificationError, ConfigError, QresError
from policies.schema import DECISIONS_SHEDDING

__all__ = ["Action", "Decision", "PolicyClient", "BundleNotLoadedError", "FALLBACK_KEY"]

# Same string as policies.scenarios.FALLBACK_KEY (stdlib-only, but kept independent so
# the client never grows a dependency on the pipeline side).
FALLBACK_KEY = "fallback:all-down"
DECISIONS_FILE = "decisions.parquet"


class BundleNotLoadedError(QresError, LookupError):
    """decide() was asked about a policy for which no verified bundle is loaded."""


@dataclass(frozen=True)
class Action:
    workload_id: str
    admit: float  # share admitted, 0..1
    rank: int  # 1 = admit first, shed last


@dataclass(frozen=True)
class Decision:
    policy: str
    version: str
    scenario: str  # key of the scenario whose plan this is
    exact: bool  # False when a covering scenario (or the fallback) answered
    actions: tuple[Action, ...]  # ordered by rank


@dataclass(frozen=True)
class _Scenario:
    key: str
    down: frozenset[str]
    degraded: frozenset[str]
    effective_down: frozenset[str]
    covers_degraded: frozenset[str]  # effective_down | degraded
    admit_sum: float
    exact: Decision
    cover: Decision

    @property
    def order(self) -> tuple[int, float, str]:
        return (len(self.effective_down), self.admit_sum, self.key)


class _Index:
    """One loaded version of one policy, built once so that decide() only does lookups."""

    def __init__(self, policy: str, version: str, manifest: dict, scenarios: list[_Scenario]) -> None:
        self.policy, self.version, self.manifest = policy, version, manifest
        self.fallback = next(s for s in scenarios if s.key == FALLBACK_KEY)
        self.covers = tuple(sorted((s for s in scenarios if s.key != FALLBACK_KEY), key=lambda s: s.order))
        # Priority of exact keys: root sets, then effective sets (closest cover first on a
        # tie), then the fallback's own sets (only if it names any: an empty fallback must
        # never shadow ``normal``).
        exact: dict[tuple[frozenset, frozenset], _Scenario] = {}
        for s in self.covers:
            exact.setdefault((s.down, s.degraded - s.down), s)
        for s in self.covers:
            exact.setdefault((s.effective_down, s.degraded - s.effective_down), s)
        fb = self.fallback
        if fb.effective_down:
            exact.setdefault((fb.down, fb.degraded - fb.down), fb)
            exact.setdefault((fb.effective_down, fb.degraded - fb.effective_down), fb)
        self.exact = exact
        # Posting lists (closest cover first): the covers that contain a given service in
        # effective_down, resp. in effective_down | degraded. A cover must contain every
        # observed service, so scanning the shortest list of an observed one is enough.
        self.by_down: dict[str, list[_Scenario]] = {}
        self.by_degraded: dict[str, list[_Scenario]] = {}
        for s in self.covers:
            for m in s.effective_down:
                self.by_down.setdefault(m, []).append(s)
            for m in s.covers_degraded:
                self.by_degraded.setdefault(m, []).append(s)

    def _candidates(self, down: frozenset[str], degraded: frozenset[str]) -> Sequence[_Scenario]:
        postings, observed = (self.by_down, down) if down else (self.by_degraded, degraded)
        if not observed:
            return self.covers
        best: Sequence[_Scenario] | None = None
        for m in observed:
            p = postings.get(m)
            if p is None:
                return ()  # a service no scenario has down: only the fallback covers it
            if best is None or len(p) < len(best):
                best = p
        return best

    def decide(self, down: frozenset[str], degraded: frozenset[str]) -> Decision:
        hit = self.exact.get((down, degraded))
        if hit is not None:
            return hit.exact
        for s in self._candidates(down, degraded):  # closest first: the first cover is the answer
            if down <= s.effective_down and degraded <= s.covers_degraded:
                return s.cover
        return self.fallback.cover


def _bad(where: str, what: str) -> BundleVerificationError:
    return BundleVerificationError(f"{where}: {what}; republish the bundle")


_SET_COLUMNS = ("down", "degraded", "effective_down")


def _read_decisions(data: bytes, where: str) -> pa.Table:
    try:
        # ParquetFile, not read_table: read_table goes through pyarrow.dataset, which
        # imports pandas when it is installed; a runtime service should not pay for that.
        table = pq.ParquetFile(io.BytesIO(data)).read()
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise _bad(where, f"not readable as Parquet ({exc})") from exc
    got = [(f.name, f.type) for f in table.schema]
    want = [(f.name, f.type) for f in DECISIONS_SHEDDING]
    if got != want:
        raise _bad(where, f"columns {got} do not match the shedding schema {want}")
    nulls = [c for c in DECISIONS_SHEDDING.names if table.column(c).null_count]
    nulls += [c for c in _SET_COLUMNS if pc.list_flatten(table.column(c)).null_count]
    if nulls:
        raise _bad(where, f"null values in column(s) {nulls}")
    return table


def _group_rows(keys: list[str], where: str) -> dict[str, list[int]]:
    """Row numbers per scenario key, in file order; each scenario's rows must be contiguous."""
    groups: dict[str, list[int]] = {}
    last = None
    for i, key in enumerate(keys):
        if key != last:
            if key in groups:
                raise _bad(where, f"rows of scenario {key!r} are not contiguous")
            groups[key] = []
            last = key
        groups[key].append(i)
    return groups


def _int_array(values: list[int]) -> pa.Array:
    # pa.array(list) asks pyarrow's pandas shim whether the list is a Series, which
    # imports pandas when installed; building from a buffer does not.
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(array.array("q", values))])


def _scenario_sets(table: pa.Table, groups: dict[str, list[int]], where: str) -> dict[str, list]:
    """The down/degraded/effective_down lists of each scenario, checked to repeat on every row.

    The check runs in pyarrow (row i against its scenario's first row, one ``equals``)
    so that large effective sets do not cost a Python conversion per row.
    """
    firsts = [rows[0] for rows in groups.values()]
    first_of_row = _int_array([rows[0] for rows in groups.values() for _ in rows])
    out = {}
    for c in _SET_COLUMNS:
        column = table.column(c).combine_chunks()
        if not column.take(first_of_row).equals(column):  # rare: find the culprit in Python
            cells = column.to_pylist()
            for key, rows in groups.items():
                if any(set(cells[i]) != set(cells[rows[0]]) for i in rows):
                    raise _bad(where, f"scenario {key!r} has different {c} lists across its rows")
        out[c] = column.take(_int_array(firsts)).to_pylist()
    return out


def _build_index(policy: str, version: str, manifest: dict, files: dict[str, bytes]) -> _Index:
    """Parse a verified shedding bundle into the lookup structures decide() uses."""
    where = f"{policy}/{version}/{DECISIONS_FILE}"
    if DECISIONS_FILE not in files:
        raise _bad(f"{policy}/{version}", f"no {DECISIONS_FILE} in the bundle")
    table = _read_decisions(files[DECISIONS_FILE], where)
    cols = {c: table.column(c).to_pylist() for c in ("scenario_key", "workload_id", "admit", "rank")}
    groups = _group_rows(cols["scenario_key"], where)
    if FALLBACK_KEY not in groups:
        raise _bad(where, f"no {FALLBACK_KEY!r} scenario, so some observations would have no answer")
    sets = _scenario_sets(table, groups, where)

    scenarios = []
    for n, (key, rows) in enumerate(groups.items()):
        workloads = [cols["workload_id"][i] for i in rows]
        if len(set(workloads)) != len(workloads):
            raise _bad(where, f"scenario {key!r} lists a workload twice")
        ranked = sorted(rows, key=lambda i: (cols["rank"][i], cols["workload_id"][i]))
        actions = tuple(Action(cols["workload_id"][i], cols["admit"][i], cols["rank"][i]) for i in ranked)
        down, degraded, effective = (frozenset(sets[c][n]) for c in _SET_COLUMNS)
        scenarios.append(
            _Scenario(
                key=key,
                down=down,
                degraded=degraded,
                effective_down=effective | down,
                covers_degraded=effective | down | degraded,
                admit_sum=math.fsum(a.admit for a in actions),
                exact=Decision(policy, version, key, True, actions),
                cover=Decision(policy, version, key, False, actions),
            )
        )
    return _Index(policy, version, manifest, scenarios)


class _FolderSource:
    """Bundles in a local store folder.

    A fetcher for another transport (http(s) with a disk cache) provides the same three
    methods and returns verified bytes from ``fetch``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def list_policies(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / LATEST_NAME).is_file())

    def latest(self, policy: str) -> str | None:
        return read_latest(self.root, policy)

    def fetch(self, policy: str, version: str) -> tuple[dict, dict[str, bytes]]:
        path = self.root / policy / version
        if not path.is_dir():
            raise BundleVerificationError(
                f"{self.root / policy / LATEST_NAME} points at {version}, but {path} does not exist"
            )
        return read_bundle(path)


def _make_source(source: str | Path) -> _FolderSource:
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        raise ConfigError(f"bundle source {source!r}: http(s) sources are not supported yet; use a folder")
    return _FolderSource(Path(source))


class PolicyClient:
    """Serve precomputed decisions from the newest verified bundle of each policy.

    ``policies`` limits which policies are loaded (default: every policy in the store
    that has a ``LATEST``). The constructor calls :meth:`refresh` once: an empty store is
    fine (decide() then explains), a tampered bundle raises BundleVerificationError.
    """

    def __init__(self, source: str | Path, *, policies: Sequence[str] | None = None) -> None:
        if isinstance(policies, str):
            raise TypeError("policies must be a sequence of names, not a single string")
        self._source = _make_source(source)
        self._policies = tuple(policies) if policies is not None else None
        self._indexes: dict[str, _Index] = {}
        self.refresh()

    def refresh(self) -> bool:
        """Load the ``LATEST`` version of each policy if it changed; True when one did.

        Every file is verified against the manifest before it is parsed. A policy whose
        new bundle fails keeps its previous version, the others still move forward, and
        the failure is raised as BundleVerificationError after the swap.
        """
        names = self._policies if self._policies is not None else self._source.list_policies()
        indexes = dict(self._indexes)
        errors: list[BundleVerificationError] = []
        for name in names:
            try:
                version = self._source.latest(name)
                current = indexes.get(name)
                if version is None or (current is not None and current.version == version):
                    continue
                manifest, files = self._source.fetch(name, version)
                indexes[name] = _build_index(name, version, manifest, files)
            except BundleVerificationError as exc:
                errors.append(exc)
        changed = indexes != self._indexes
        if changed:
            self._indexes = indexes  # one reference swap: concurrent decide() calls see old or new
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise BundleVerificationError("\n".join(str(e) for e in errors))
        return changed

    @property
    def versions(self) -> dict[str, str]:
        """Loaded version per policy, e.g. ``{"shedding": "v000003"}``."""
        return {name: index.version for name, index in self._indexes.items()}

    def decide(
        self, policy: str = "shedding", down: Iterable[str] = (), degraded: Iterable[str] = ()
    ) -> Decision:
        """The precomputed plan for the observed state (see the module docstring for the rule)."""
        index = self._indexes.get(policy)
        if index is None:
            loaded = ", ".join(sorted(self._indexes)) or "none"
            raise BundleNotLoadedError(
                f"no verified bundle of policy {policy!r} is loaded (loaded: {loaded}); "
                "either the store has no LATEST for it yet or its bundle failed verification "
                "(refresh() raised why): publish a good bundle, then call refresh()"
            )
        if isinstance(down, str) or isinstance(degraded, str):
            raise TypeError("down and degraded take collections of service ids, not a single string")
        d = down if type(down) is frozenset else frozenset(down)
        g = frozenset(degraded)
        if g & d:
            g = g - d
        return index.decide(d, g)
