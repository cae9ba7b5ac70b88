"""The ``[sources.<name>]`` kinds that read files: telemetry tables as they are, and status histories.

Prometheus, PagerDuty and Backstage keep their specs beside their clients; these kinds read a
path (a folder, file or fsspec URL), so their specs are small and live together. Every field
is a key of the entry and an option of the matching ``qres import <kind>`` command.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FilesSpec", "DatasetSpec", "UrlSpec", "UpptimeSpec", "StatuspageSpec", "CloudSpec", "ARCHIVES"]

ARCHIVES = {".zip": "zip", ".tar": "tar", ".tar.gz": "tar", ".tgz": "tar"}


@dataclass(frozen=True)
class FilesSpec:
    """A local folder (or glob) of the telemetry tables, one file or table folder each, CSV or Parquet."""

    path: str

    def __post_init__(self) -> None:
        if "://" in self.path and not self.path.startswith("file://"):
            raise ValueError(f'path {self.path!r} is a URL; use kind = "url" (http/https) or "dataset" (s3://, gs://)')


@dataclass(frozen=True)
class DatasetSpec:
    """A partitioned dataset (``health_checks/date=2026-10-01/part-0.parquet``), local or any fsspec URL."""

    path: str


@dataclass(frozen=True)
class UrlSpec:
    """An HTTP(S) folder of the tables (a server that lists folders) or an archive (.zip, .tar.gz) of them."""

    url: str
    timeout_s: float = 60.0
    retries: int = 2

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f'url {self.url!r} must start with http:// or https:// (a local folder is kind = "files")')

    @property
    def archive(self) -> str | None:
        """``zip``/``tar`` when the URL names an archive, else None (a folder listing)."""
        path = self.url.split("?", 1)[0].lower()
        return next((fs for suffix, fs in ARCHIVES.items() if path.endswith(suffix)), None)


@dataclass(frozen=True)
class UpptimeSpec:
    """An Upptime status repository: a clone, a ``.bundle`` file or ``commits.jsonl`` (docs/importers.md)."""

    path: str
    resolution_min: int = 5
    keep_template_sites: bool = False
    stale_after_h: float = 72.0
    retired_after_h: float = 168.0


@dataclass(frozen=True)
class StatuspageSpec:
    """An Atlassian Statuspage incidents export (JSON or JSON lines, gzipped or not), file or URL."""

    path: str
    resolution_min: int = 60
    stale_open_h: float = 72.0


@dataclass(frozen=True)
class CloudSpec:
    """A cloud status history: Google Cloud ``incidents.json`` or AWS ``historyevents.json``, file or URL."""

    path: str
    resolution_min: int = 60
    stale_open_h: float = 72.0
