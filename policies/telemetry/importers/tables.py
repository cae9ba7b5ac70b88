"""Telemetry tables as they are (kinds files, dataset, url): where their files are, and a copy into a new folder.

``qres import files|dataset|url`` copies them into a new folder under their own keys (what
``--data`` would read there); the nightly lands them beside other sources (:mod:`.land`).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from policies.schema import TABLES
from policies.telemetry.importers.http import ConnectorError, HttpClient
from policies.telemetry.importers.spec import SourceEntry
from policies.telemetry.sources import Source, SourceFile, locate_source_files, open_source, read_bytes

__all__ = ["source_files", "table_files", "copy_tables"]


def source_files(entry: SourceEntry) -> Source:
    """The filesystem of a files/dataset/url entry (an archive is read from inside its one top folder)."""
    spec = entry.spec
    where = getattr(spec, "path", None) or spec.url
    if entry.kind == "url" and spec.archive:
        return _archive(spec)
    try:
        return open_source(where)
    except (OSError, ValueError) as exc:
        raise ConnectorError(f"{entry.kind}: cannot read {where} ({str(exc).splitlines()[0][:200]})") from None


def _archive(spec) -> Source:
    """A .zip or .tar(.gz) fetched whole (servers need not answer range requests), read in memory."""
    from fsspec.implementations.tar import TarFileSystem
    from fsspec.implementations.zip import ZipFileSystem

    client = HttpClient("url", {}, timeout_s=spec.timeout_s, retries=spec.retries)
    data = io.BytesIO(client.get(spec.url))
    try:
        if spec.archive == "zip":
            fs = ZipFileSystem(fo=data)
        else:
            gz = spec.url.split("?", 1)[0].lower().endswith(("gz", "tgz"))
            fs = TarFileSystem(fo=data, compression="gzip" if gz else None)
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise ConnectorError(f"url: {spec.url} is not a readable {spec.archive} archive ({exc})") from None
    top = fs.ls("", detail=True)
    one = len(top) == 1 and top[0]["type"] == "directory" and top[0]["name"].strip("/") not in TABLES
    return Source(spec.url, fs, top[0]["name"] if one else "/", spec.archive, False)


def table_files(src: Source, entry: SourceEntry) -> list[SourceFile]:
    try:
        found = locate_source_files(src)
    except (OSError, ValueError) as exc:
        raise ConnectorError(f"{entry.kind}: cannot list {src.spec} ({str(exc).splitlines()[0][:200]})") from None
    files = [f for table in found.values() for f in table]
    if not files:
        raise ConnectorError(
            f"{entry.kind} source {entry.name!r}: no telemetry table in {src.spec} (services.csv, "
            "health_checks/, ... as the README's Data contracts name them); check its path"
        )
    if entry.kind == "dataset" and not any("=" in part for f in files for part in f.key.split("/")[1:-1]):
        raise ConnectorError(
            f"dataset source {entry.name!r}: no Hive partition folder (health_checks/date=.../) in {src.spec}; "
            'a plain folder of tables is kind = "files"'
        )
    return files


def copy_tables(entry: SourceEntry, out_dir: str | Path) -> dict[str, int]:
    """Every table file of the source into a new folder (all read before any is written); files per table."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new --out folder")
    src = source_files(entry)
    files = table_files(src, entry)
    try:
        data = [(f.key, read_bytes(src, f)) for f in files]
    except OSError as exc:
        raise ConnectorError(f"{entry.kind}: cannot read {src.spec} ({str(exc).splitlines()[0][:200]})") from None
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for key, body in data:
        (tmp / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp / key).write_bytes(body)
    if out_dir.exists():
        out_dir.rmdir()
    os.replace(tmp, out_dir)
    counts: dict[str, int] = {}
    for f in files:
        counts[f.table] = counts.get(f.table, 0) + 1
    return counts
