"""The runtime client: load verified bundles, answer ``decide(down=...)`` in microseconds.

A service builds one :class:`PolicyClient` and calls :meth:`decide` on every request;
:meth:`refresh` (on a timer) swaps in a newer bundle once it verifies, else keeps the old one.

How ``decide(down, degraded)`` picks a scenario (exact, runtime greedy, closest cover,
fallback), other families' columns (``Action.extras``) and load cost: :mod:`qres_client.index`.
Trust and freshness (hashes + Ed25519 + ML-DSA-65 signatures, rollback protection, disk cache,
staleness, TUF): see :class:`PolicyClient`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from qres_client.bundle import version_number
from qres_client.cache import DiskCache
from qres_client.errors import BundleVerificationError
from qres_client.fetch import Limits, StoreUnavailableError, make_source
from qres_client.index import (
    DEFAULT_UNMATCHED,
    FALLBACK_KEY,
    GREEDY_KEY,
    UNMATCHED_RULES,
    Action,
    BundleNotLoadedError,
    Decision,
)
from qres_client.names import UNKNOWN_RULES, check_unknown
from qres_client.signing import PublicKeys, load_public_keys
from qres_client.status import PolicyStatus, State
from qres_client.verify import RollbackRefusedError, verify_bundle_bytes

__all__ = [
    "Action",
    "Decision",
    "Limits",
    "PolicyClient",
    "PolicyStatus",
    "BundleNotLoadedError",
    "RollbackRefusedError",
    "StoreUnavailableError",
    "FALLBACK_KEY",
    "GREEDY_KEY",
    "UNMATCHED_RULES",
    "verify_bundle_bytes",
]


class PolicyClient:
    """Serve precomputed decisions from the newest verified bundle of each policy.

    ``source`` is a store folder or an http(s) URL of one. A bundle is loaded only when
    every file matches its manifest's sha256 and both manifest signatures (Ed25519 and
    ML-DSA-65) verify against ``public_keys`` (a :class:`PublicKeys`, the path of a
    ``qres-signing.pub`` file, or None to read ``$QRES_PUBLIC_KEY``); unsigned bundles
    are refused unless ``allow_unsigned``. A LATEST older than the loaded version is
    refused unless ``allow_rollback``. With ``cache_dir``, verified bundles are kept on
    disk and used at start-up, so a service starts even while the store is down.
    ``unmatched`` picks how an observation no scenario names is answered (one of
    ``UNMATCHED_RULES``; see the module docstring). ``unknown`` says what decide() does with
    dependency names the bundle does not know (``qres_client.names``: warn, refuse, ignore).
    ``limits`` bounds every refresh (:class:`Limits`: file count, total bytes, deadline).
    ``tuf_root`` (a trusted TUF root.json) reads the store through TUF (qres_client.tuf_channel).

    The constructor loads the cache and refreshes once without raising for an
    unreachable store; it raises BundleVerificationError only when a policy's bundle is
    bad and there is nothing good to fall back on.
    """

    def __init__(
        self,
        source: str | Path,
        *,
        cache_dir: str | Path | None = None,
        public_keys: PublicKeys | str | Path | None = None,
        allow_unsigned: bool = False,
        allow_rollback: bool = False,
        policies: Sequence[str] | None = None,
        timeout_s: float = 5.0,
        unmatched: str = DEFAULT_UNMATCHED,
        unknown: str = "warn",
        limits: Limits | None = None,
        tuf_root: str | Path | bytes | None = None,
    ) -> None:
        if unmatched not in UNMATCHED_RULES:
            raise ValueError(f"unmatched must be one of {', '.join(UNMATCHED_RULES)}; got {unmatched!r}")
        if unknown not in UNKNOWN_RULES:
            raise ValueError(f"unknown must be one of {', '.join(UNKNOWN_RULES)}; got {unknown!r}")
        self._unmatched, self._unknown, self._limits = unmatched, unknown, limits or Limits()
        if isinstance(policies, str):
            raise TypeError("policies must be a sequence of names, not a single string")
        self._policies = tuple(policies) if policies is not None else None
        if tuf_root is not None:  # the TUF channel (qresilience-client[tuf])
            from qres_client.tuf_channel import tuf_source

            kw = {"timeout_s": timeout_s, "policies": self._policies, "limits": self._limits}
            self._source = tuf_source(source, tuf_root, cache_dir, **kw)
        else:
            self._source = make_source(source, timeout_s=timeout_s, policies=self._policies, limits=self._limits)
        self._keys = load_public_keys(public_keys)
        self._allow_unsigned, self._allow_rollback = allow_unsigned, allow_rollback
        self._cache = DiskCache(cache_dir) if cache_dir is not None else None
        self._lock = threading.Lock()
        self._indexes: dict = {}
        self._states: dict[str, State] = {}
        self._stop = threading.Event()
        self._load_cache()
        _, errors = self._refresh(raise_errors=False)
        fatal = [e for name, e in errors if name not in self._indexes and not isinstance(e, StoreUnavailableError)]
        if fatal:
            raise fatal[0] if len(fatal) == 1 else BundleVerificationError("\n".join(map(str, fatal)))

    def _state(self, policy: str) -> State:
        return self._states.setdefault(policy, State())

    def _verify(self, policy: str, version: str, manifest_bytes: bytes, files: dict[str, bytes], where: str):
        return verify_bundle_bytes(
            policy,
            version,
            manifest_bytes,
            files,
            public_keys=self._keys,
            allow_unsigned=self._allow_unsigned,
            where=where,
        )

    def _load_cache(self) -> None:
        if self._cache is None:
            return
        for name in self._cache.policies():
            if self._policies is not None and name not in self._policies:
                continue
            cached = self._cache.load(name)
            if cached is None:
                continue
            version, manifest_bytes, files = cached
            try:
                index, signed = self._verify(
                    name, version, manifest_bytes, files, f"cache {self._cache.root}/{name}/{version}"
                )
            except BundleVerificationError as exc:
                self._state(name).last_error = str(exc)
                continue
            self._indexes[name] = index
            state = self._state(name)
            state.signed, state.origin = signed, "cache"

    def refresh(self, *, raise_errors: bool = True) -> bool:
        """Load each policy's LATEST if it changed; True when any policy moved.

        Safe to call from several threads (they take turns). A policy whose new bundle
        cannot be fetched or verified keeps its current one; the others still move. The
        failures are recorded in :meth:`status` and, unless ``raise_errors`` is False,
        raised after the swap (StoreUnavailableError when the store was unreachable,
        BundleVerificationError when a bundle was bad).
        """
        changed, _ = self._refresh(raise_errors=raise_errors)
        return changed

    def _refresh(self, *, raise_errors: bool) -> tuple[bool, list[tuple[str, Exception]]]:
        changed = False
        with self._lock:
            errors: list[tuple[str, Exception]] = []
            self._source.start(time.monotonic() + self._limits.deadline_s)
            try:
                names = (
                    self._policies
                    if self._policies is not None
                    else sorted(set(self._source.list_policies()) | set(self._indexes))
                )
            except StoreUnavailableError as exc:
                names = ()
                errors = [(n, exc) for n in self._indexes] or [("*", exc)]
                for n in self._indexes:
                    self._state(n).last_error = str(exc)
            indexes = dict(self._indexes)
            for name in names:
                state = self._state(name)
                try:
                    self._refresh_one(name, indexes, state)
                    state.last_error = None
                except (BundleVerificationError, StoreUnavailableError) as exc:
                    state.last_error = str(exc)
                    errors.append((name, exc))
                except Exception as exc:  # noqa: BLE001 - unverified bytes must never kill a refresh: reported as bad
                    bad = BundleVerificationError(f"{self._source!r} {name}: {type(exc).__name__}: {str(exc)[:300]}")
                    state.last_error = str(bad)
                    errors.append((name, bad))
            if indexes != self._indexes:
                self._indexes = indexes  # one reference swap: concurrent decide() calls see old or new
                changed = True
        if raise_errors and errors:
            excs = [e for _, e in errors]
            if len(excs) == 1:
                raise excs[0]
            bad = any(isinstance(e, BundleVerificationError) for e in excs)
            raise (BundleVerificationError if bad else StoreUnavailableError)("\n".join(map(str, excs)))
        return changed, errors

    def _refresh_one(self, name: str, indexes: dict, state: State) -> None:
        version = self._source.latest(name)
        if version is None:
            return
        current = indexes.get(name)
        if current is not None and current.version == version:
            state.confirmed_at = time.time()
            return
        if (
            current is not None
            and not self._allow_rollback
            and version_number(version) < version_number(current.version)
        ):
            raise RollbackRefusedError(
                f"{self._source!r}: {name} LATEST names {version}, older than the loaded {current.version}; "
                "refused (rollback protection). If this rollback is intended, build the client with "
                "allow_rollback=True; `qres rollback` republishes the old bundle as a new version instead"
            )
        manifest_bytes, files = self._source.fetch(name, version)
        index, signed = self._verify(name, version, manifest_bytes, files, f"{self._source!r} {name}/{version}")
        indexes[name] = index
        state.signed, state.origin, state.confirmed_at = signed, "store", time.time()
        if self._cache is not None:
            try:
                self._cache.save(name, version, manifest_bytes, files)
            except OSError as exc:  # the cache is best effort; serving goes on
                state.last_error = f"disk cache {self._cache.root}: {exc}"

    def status(self) -> dict[str, PolicyStatus]:
        """Per policy: loaded version, where it came from, how stale, and the last error."""
        now = time.time()
        out = {}
        for name in sorted(set(self._states) | set(self._indexes)):
            if name == "*":
                continue
            s, index = self._state(name), self._indexes.get(name)
            out[name] = PolicyStatus(
                name,
                index.version if index else None,
                s.signed,
                s.origin,
                s.confirmed_at,
                None if s.confirmed_at is None else max(0.0, now - s.confirmed_at),
                s.last_error,
            )
        return out

    def start_auto_refresh(self, interval_s: float = 30.0) -> threading.Thread:
        """Refresh every ``interval_s`` in a daemon thread; failures only go to :meth:`status`."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self._refresh(raise_errors=False)
                except Exception as exc:  # noqa: BLE001 - the loop must outlive any one refresh; see status()
                    self._state("*").last_error = f"refresh failed: {type(exc).__name__}: {exc}"

        thread = threading.Thread(target=loop, name="qres-policy-refresh", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Stop the auto-refresh thread (if any)."""
        self._stop.set()

    def manifest(self, policy: str) -> dict:
        """The verified manifest of the loaded bundle of ``policy`` (KeyError when none)."""
        return self._indexes[policy].manifest

    @property
    def versions(self) -> dict[str, str]:
        """Loaded version per policy, e.g. ``{"shedding": "v000003"}``."""
        return {name: index.version for name, index in self._indexes.items()}

    def decide(self, policy: str = "shedding", down: Iterable[str] = (), degraded: Iterable[str] = ()) -> Decision:
        """The precomputed plan for the observed state (see the module docstring for the rule)."""
        index = self._indexes.get(policy)
        if index is None:
            loaded = ", ".join(sorted(self._indexes)) or "none"
            why = self._states.get(policy)
            raise BundleNotLoadedError(
                f"no verified bundle of policy {policy!r} is loaded (loaded: {loaded}); "
                + (f"last error: {why.last_error}. " if why and why.last_error else "")
                + "either the store has no LATEST for it yet or its bundle failed verification: "
                "publish a good bundle, then call refresh()"
            )
        if isinstance(down, str) or isinstance(degraded, str):
            raise TypeError("down and degraded take collections of service ids, not a single string")
        d = down if type(down) is frozenset else frozenset(down)
        g = frozenset(degraded)
        if g & d:
            g = g - d
        decision = index.decide(d, g, self._unmatched)
        if not decision.exact and self._unknown != "ignore":
            check_unknown(index, d | g, self._unknown)
        return decision
