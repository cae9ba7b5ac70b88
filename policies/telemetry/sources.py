"""Where telemetry comes from: a folder, a glob or any fsspec URL, resolved to files per table.

A *source* is one string, as ``--data`` takes it:

- a local folder (``data/sample``) or its URL (``file:///srv/telemetry``): one file per table
  named after it (``services.parquet``, ``services.csv``) or a folder of files for a partitioned
  table: flat (``health_checks/2026-10-01.parquet``) or Hive-partitioned, as data lakes write
  it (``health_checks/date=2026-10-01/part-0.parquet``,
  ``health_checks/service_id=api/date=2026-10-01/part-0.csv``; partition values become typed
  columns: :mod:`policies.telemetry.partitions`);
- the same layout behind any fsspec URL: ``http(s)://host/telemetry/`` (the server must list
  folders, as ``python -m http.server`` does), ``s3://bucket/prefix`` once ``s3fs`` is
  installed, ``gs://``, ``abfs://`` and so on with their fsspec extras;
- a glob (``exports/2026-10-*/**``, ``s3://bucket/*/health_checks/*.parquet``): every matching
  file is assigned to the table its name (``services.csv``) or its folder (``health_checks/``)
  names; files of other names are ignored.

Files are listed, never written, and sorted by name so that hashes repeat. Each file is read
once into memory (:func:`read_bytes`); the caller parses and hashes the same bytes.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from policies.errors import DataValidationError, RuleViolation
from policies.schema import TABLES
from policies.telemetry.partitions import is_partition_segment

__all__ = ["Source", "SourceFile", "open_source", "locate_source_files", "read_bytes", "SUFFIXES"]

SUFFIXES = (".parquet", ".csv")
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class SourceFile:
    """One input file: its table, its path inside the filesystem and its name for hashing."""

    table: str
    path: str  # protocol-free path as the filesystem wants it
    key: str  # "services.parquet" or "health_checks/2026-10-01.parquet": what the sha256 covers
    uri: str  # full URL, for messages and lineage
    stamp: str = ""  # size + modification time (or ETag) from the listing; "" when the filesystem gives none

    @property
    def suffix(self) -> str:
        return next((s for s in sorted(SUFFIXES, key=len, reverse=True) if self.path.endswith(s)), "")


@dataclass(frozen=True)
class Source:
    """A resolved source: the filesystem, the root (or glob) and the spec as the user gave it."""

    spec: str
    fs: object  # fsspec.AbstractFileSystem
    root: str
    protocol: str
    is_glob: bool

    def uri(self, path: str) -> str:
        if self.protocol in ("file", "local"):
            return path
        return path if "://" in path else f"{self.protocol}://{path}"


def open_source(spec: str | Path) -> Source:
    """Resolve a source string to a filesystem; unknown protocols say which package to install."""
    import fsspec
    from fsspec.core import url_to_fs

    text = str(spec)
    if "://" not in text:
        text = str(Path(text).expanduser().absolute())
    try:
        fs, root = url_to_fs(text)
    except (ImportError, ValueError) as exc:
        protocol = text.split("://", 1)[0]
        raise DataValidationError(
            [RuleViolation("*", None, "source readable", [str(exc).splitlines()[0][:200]], file=text)],
            hint=f"The {protocol}:// filesystem needs its fsspec extra (e.g. `pip install s3fs` for s3://, "
            "`gcsfs` for gs://, `adlfs` for abfs://).",
        ) from exc
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    is_glob = any(c in root for c in _GLOB_CHARS) and protocol not in ("http", "https")
    del fsspec
    return Source(spec=str(spec), fs=fs, root=root.rstrip("/") or "/", protocol=protocol, is_glob=is_glob)


def locate_source_files(source: Source) -> dict[str, list[SourceFile]]:
    """Every known table's files in the source, sorted by key (so hashes repeat)."""
    try:
        paths = _glob_files(source) if source.is_glob else _folder_files(source)
    except (FileNotFoundError, NotADirectoryError, OSError) as exc:
        raise DataValidationError(
            [RuleViolation("*", None, "source folder exists", [str(exc).splitlines()[0][:200]], file=source.spec)],
            hint="Point --data at a folder, glob or URL of telemetry tables (or run `qres sample --out DIR`).",
        ) from exc
    found: dict[str, list[SourceFile]] = {}
    top = None if source.is_glob else source.root.rstrip("/")
    for entry in paths:
        path = entry["name"]
        assigned = _assign(path, top)
        if assigned is not None:
            table, key = assigned
            found.setdefault(table, []).append(SourceFile(table, path, key, source.uri(path), _stamp(entry)))
    return {t: sorted(files, key=lambda f: f.key) for t, files in sorted(found.items())}


def read_bytes(source: Source, file: SourceFile) -> bytes:
    """The whole file (inputs are small per partition; one read serves parsing and hashing)."""
    with source.fs.open(file.path, "rb") as f:
        return f.read()


def _folder_files(source: Source) -> list[dict]:
    fs, root = source.fs, source.root
    if not fs.isdir(root):
        raise NotADirectoryError(f"not a folder: {source.spec}")
    out: list[dict] = []
    for entry in fs.ls(root, detail=True):
        name = _name(entry["name"])
        if name.startswith(".") or name.startswith("_"):
            continue
        if entry["type"] == "directory" and name in TABLES:
            out += _table_folder_files(fs, entry["name"])
        elif entry["type"] != "directory":
            out.append(entry)
    return out


def _glob_files(source: Source) -> list[dict]:
    out: list[dict] = []
    for path, entry in sorted(source.fs.glob(source.root, detail=True).items()):
        if entry.get("type") == "directory":
            out += _table_folder_files(source.fs, path)
        else:
            out.append({**entry, "name": path})
    return out


def _table_folder_files(fs, folder: str) -> list[dict]:
    """Files of a table folder: its own, and those in Hive partition folders (``key=value/``) below it."""
    out = []
    for entry in fs.ls(folder, detail=True):
        name = _name(entry["name"])
        if name.startswith((".", "_")):
            continue  # _SUCCESS, _temporary/, .crc files: writer bookkeeping
        if entry["type"] != "directory":
            out.append(entry)
        elif is_partition_segment(name):
            out += _table_folder_files(fs, entry["name"])
    return out


_STAMP_KEYS = ("mtime", "LastModified", "last_modified", "updated", "ETag", "etag")


def _stamp(entry: dict) -> str:
    """What says a file changed without reading it (as rsync does): size plus a time or ETag.

    Filesystems that report neither (plain http listings) give "", and the file is read and
    hashed each run instead.
    """
    marks = [f"{k}={entry[k]}" for k in _STAMP_KEYS if entry.get(k) not in (None, "")]
    return f"size={entry.get('size')};" + ";".join(marks) if marks else ""


def _name(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def _stem(name: str) -> str | None:
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _assign(path: str, top: str | None) -> tuple[str, str] | None:
    """(table, hash key) for a data file: by its folder (partitions) first, else by its name.

    ``top`` is the source folder (None for globs): files directly in it go by their name.
    """
    name = _name(path)
    stem = _stem(name)
    if stem is None or name.startswith((".", "_")):
        return None
    folder = posixpath.dirname(path.rstrip("/"))
    below: list[str] = []  # Hive partition folders between the table folder and the file
    while is_partition_segment(_name(folder)) and folder.rstrip("/") != top:
        below.insert(0, _name(folder))
        folder = posixpath.dirname(folder)
    parent = _name(folder)
    if parent in TABLES and folder.rstrip("/") != top:
        return parent, "/".join([parent, *below, name])
    if below:
        return None
    if stem in TABLES:
        return stem, name
    return None
