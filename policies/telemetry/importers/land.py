"""Pull any ``[sources.<name>]`` entry into a landing folder, the one folder the nightly ingests.

Every kind lands beside the others without touching their files:

- **files, dataset, url** (tables as they are) and **upptime, statuspage, gcp, aws** (status
  histories, imported each pull) land under ``<table>/source=<name>/`` (a Hive-style folder the
  ingest reads as part of the table, and no column of ours). Files are rewritten only when their
  bytes change (so the incremental ingest reads only what changed) and files the source no longer
  has are removed. An imported history's default rows (services, workloads, dependencies) yield
  to rows of the same key already landed by another source: the synthetic ``region-imported``
  and a service two sources name are kept once.
- **prometheus** and **pagerduty** (live API) pull ``[watermark, until)``; PagerDuty re-reads
  from the start of the oldest incident still open, so a resolution is never missed, and keeps one
  row per incident id in ``incidents/source=<name>/incidents.parquet``. A saved ``export`` is read
  whole each pull.
- **backstage** is a catalog snapshot each pull: its services replace the rows of the same id in
  ``services.parquet`` (services it landed before and no longer lists are dropped) and its
  dependencies are ``dependencies.parquet``.

Everything is read (or imported into ``_pull/``) before the first file moves, so a source that
refuses writes nothing. ``_pull/<name>.json`` keeps the watermark or what was landed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from policies.errors import QresError
from policies.schema import TABLES
from policies.telemetry.importers.http import ConnectorError
from policies.telemetry.importers.spec import SourceEntry
from policies.telemetry.importers.tables import source_files, table_files
from policies.telemetry.sources import locate_source_files, open_source, read_bytes

__all__ = ["pull_source", "pull_order", "describe_pull", "landed_rel", "land_files", "write_manifest", "read_manifest"]

_COPY = ("files", "dataset", "url")
_IMPORT = ("upptime", "statuspage", "gcp", "aws")
_ORDER = ("backstage", "prometheus", *_COPY, *_IMPORT, "pagerduty")
_KEYS = {"services": ("service_id",), "workloads": ("workload_id",), "dependencies": ("service_id", "depends_on")}


def pull_order(entries: Iterable[SourceEntry]) -> list[SourceEntry]:
    """The catalog first, then Prometheus, tables as they are, imported histories, incidents; by name within."""
    return sorted(entries, key=lambda e: (_ORDER.index(e.kind), e.name))


def pull_source(
    entry: SourceEntry, landing: str | Path, *, since_ms: int | None = None, until_ms: int | None = None
) -> dict[str, object]:
    """Bring one source into ``landing`` (see the module doc); returns what was pulled."""
    from policies.telemetry.importers.pull import pull_into

    landing = Path(landing)
    if entry.kind == "prometheus":
        return {
            "kind": "prometheus",
            **pull_into(entry.spec, landing, entry.name, since_ms=since_ms, until_ms=until_ms),
        }
    if entry.kind == "pagerduty":
        from policies.telemetry.importers.land_connectors import pull_pagerduty

        return pull_pagerduty(entry, landing, since_ms=since_ms, until_ms=until_ms)
    if entry.kind == "backstage":
        from policies.telemetry.importers.land_connectors import pull_backstage

        return pull_backstage(entry, landing)
    if entry.kind in _COPY:
        _not_the_landing(entry, landing)
        src = source_files(entry)
        files = [
            (landed_rel(f.key, entry.name), f.stamp, lambda f=f: read_bytes(src, f)) for f in table_files(src, entry)
        ]
        try:
            return land_files(landing, entry, files)
        except OSError as exc:
            raise ConnectorError(f"{entry.kind}: cannot read {src.spec} ({str(exc).splitlines()[0][:200]})") from None
    return _land_import(entry, landing)


def describe_pull(report: dict[str, object]) -> str:
    """One line per pulled source, as the nightly's log and `qres pull` print it."""
    head = f"pulled {report['source']} ({report['kind']})"
    if report["kind"] == "prometheus":
        return f"{head}: {report['health_checks']:,} health checks, {report['incidents']} incidents"
    rows = ", ".join(f"{k}={v:,}" for k, v in sorted((report.get("tables") or report.get("files") or {}).items()))
    files = (
        f"; {report['written']} file(s) written, {report['unchanged']} unchanged, {report['removed']} removed"
        if "written" in report
        else ""
    )
    return f"{head}: {rows}{files}"


def _not_the_landing(entry: SourceEntry, landing: Path) -> None:
    """A local source that is (or holds) its own landing folder would copy itself into itself each pull."""
    where = str(getattr(entry.spec, "path", "") or "").removeprefix("file://")
    if not where or "://" in where or any(c in where for c in "*?["):
        return
    path, land = Path(where).absolute(), landing.absolute()
    if path == land or path in land.parents or land in path.parents:
        raise ConnectorError(
            f"{entry.kind} source {entry.name!r}: {where} is its own landing folder {landing} (or holds it); "
            "point path at the exported tables, or set `into` (or data_dir) to another folder"
        )


def landed_rel(key: str, name: str) -> str:
    """``services.csv`` -> ``services/source=<name>/services.csv``; ``health_checks/x/y`` -> ``health_checks/source=<name>/x/y``."""
    table, sep, rest = key.partition("/")
    if not sep:
        table, rest = key.split(".", 1)[0], key
    return f"{table}/source={name}/{rest}"


def land_files(
    landing: Path, entry: SourceEntry, files: list[tuple[str, str, object]], extra: dict | None = None
) -> dict[str, object]:
    """Write ``(rel, stamp, bytes or a reader)`` files whose bytes changed, then drop this source's other files.

    ``extra`` goes into ``_pull/<name>.json`` beside what was landed (a watermark).
    """
    manifest = read_manifest(landing, entry.name)
    seen = manifest.get("files", {})
    todo, kept = [], {}
    for rel, stamp, read in files:
        target = landing / rel
        if stamp and seen.get(rel, {}).get("stamp") == stamp and target.is_file():
            kept[rel] = seen[rel]
            continue
        data = read() if callable(read) else read
        digest = hashlib.sha256(data).hexdigest()
        kept[rel] = {"stamp": stamp, "sha256": digest}
        if not (target.is_file() and _sha(target) == digest):
            todo.append((target, data))
    for target, data in todo:  # everything read: now write
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name("." + target.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    removed = 0
    for path in sorted(_own_files(landing, entry.name)):
        if path.relative_to(landing).as_posix() not in kept:
            path.unlink()
            removed += 1
    _prune(landing, entry.name)
    write_manifest(landing, entry.name, {"kind": entry.kind, "files": kept} | (extra or {}))
    tables: dict[str, int] = {}
    for rel in kept:
        tables[rel.split("/", 1)[0]] = tables.get(rel.split("/", 1)[0], 0) + 1
    return {
        "source": entry.name,
        "kind": entry.kind,
        "files": tables,
        "written": len(todo),
        "unchanged": len(kept) - len(todo),
        "removed": removed,
    }


def _land_import(entry: SourceEntry, landing: Path) -> dict[str, object]:
    """Import the history into ``_pull/`` (as ``qres import <kind>`` would), then land its tables."""
    from policies.telemetry.importers import cloud, statuspage, upptime
    from policies.telemetry.importers.report import SUMMARY_FILE

    spec, tmp = entry.spec, landing / "_pull" / f".{entry.name}.import"
    made = [p for p in (landing, tmp.parent) if not p.exists()]  # removed again if the import refuses
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    keep, out = {"resolution_min": spec.resolution_min}, None
    try:
        if entry.kind == "upptime":
            keep |= {"keep_template_sites": spec.keep_template_sites, "stale_after_h": spec.stale_after_h}
            report = upptime.import_upptime(spec.path, tmp, retired_after_h=spec.retired_after_h, **keep)
        else:
            run = {"statuspage": statuspage.import_statuspage, "gcp": cloud.import_gcp, "aws": cloud.import_aws}
            report = run[entry.kind](spec.path, tmp, stale_open_h=spec.stale_open_h, **keep)
        src = open_source(tmp)
        others = _landed_keys(landing, entry.name)
        files = []
        for f in (f for table in locate_source_files(src).values() for f in table):
            data = read_bytes(src, f)
            if f.table in _KEYS and others.get(f.table):
                data = _without(pq.read_table(pa.BufferReader(data)), f.table, others[f.table])
            files.append((landed_rel(f.key, entry.name), "", data))
        summary = (tmp / SUMMARY_FILE).read_bytes()
        out = land_files(landing, entry, files)
    except QresError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise ConnectorError(f"{entry.kind} source {entry.name!r}: cannot import {spec.path} ({exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp.with_name(tmp.name + ".partial"), ignore_errors=True)
        for folder in reversed(made if out is None else []):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    (landing / "_pull" / f"{entry.name}.summary.json").write_bytes(summary)
    return out | {"tables": dict(sorted(report.rows.items()))}


def _landed_keys(landing: Path, name: str) -> dict[str, set[tuple]]:
    """Keys of services/workloads/dependencies rows other sources have landed (or that were there)."""
    from policies.telemetry.ingest import read_part

    if not landing.is_dir():
        return {}
    src = open_source(landing)
    out: dict[str, set[tuple]] = {}
    found = locate_source_files(src)
    for table, cols in _KEYS.items():
        for f in found.get(table, []):
            if f.key.startswith(f"{table}/source={name}/"):
                continue
            rows = read_part(src, f).table
            if all(c in rows.column_names for c in cols):
                out.setdefault(table, set()).update(zip(*(rows[c].to_pylist() for c in cols)))
    return out


def _without(table: pa.Table, name: str, taken: set[tuple]) -> bytes:
    cols = _KEYS[name]
    mask = [k not in taken for k in zip(*(table[c].to_pylist() for c in cols))]
    sink = pa.BufferOutputStream()
    pq.write_table(table.filter(pa.array(mask, pa.bool_())).cast(TABLES[name]), sink)
    return sink.getvalue().to_pybytes()


def _own_files(landing: Path, name: str) -> list[Path]:
    return [p for t in TABLES for p in (landing / t / f"source={name}").rglob("*") if p.is_file()]


def _prune(landing: Path, name: str) -> None:
    for t in TABLES:
        root = landing / t / f"source={name}"
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(d.iterdir()):
                d.rmdir()
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(landing: Path, name: str) -> dict:
    path = landing / "_pull" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_manifest(landing: Path, name: str, doc: dict) -> None:
    (landing / "_pull").mkdir(parents=True, exist_ok=True)
    tmp = landing / "_pull" / f".{name}.json.tmp"
    tmp.write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n")
    os.replace(tmp, landing / "_pull" / f"{name}.json")
