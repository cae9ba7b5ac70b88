"""Read an Upptime status repository's commits: every version of its history files and site list.

Accepted inputs: a git working folder (``git log`` + ``git cat-file --batch`` read every
version of ``history/*.yml`` and ``.upptimerc.yml``, including files deleted since), a git
bundle file (cloned into a temporary folder first), or a ``commits.jsonl`` export (one commit
per line with ``author_time``, ``message`` and ``files``: path -> content, null when deleted).
The time of a commit is its author time (when Upptime saw the change).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from policies.errors import DataValidationError, RuleViolation

__all__ = ["Commit", "CONFIG_FILE", "read_upptime_commits", "read_upptime_events", "is_history_file"]

CONFIG_FILE = ".upptimerc.yml"


@dataclass(frozen=True)
class Commit:
    """One commit that touched a history file or the site list: file path -> text (None = deleted)."""

    t_ms: int
    message: str
    files: dict[str, str | None]


def is_history_file(path: str) -> bool:
    return path.startswith("history/") and path.endswith(".yml") and path.count("/") == 1


def _wanted(path: str) -> bool:
    return path == CONFIG_FILE or is_history_file(path)


def read_upptime_commits(path: str | Path) -> list[Commit]:
    """Every commit touching ``history/*.yml`` or ``.upptimerc.yml``, oldest first."""
    p = Path(path)
    if p.is_file() and p.suffix == ".bundle":
        with tempfile.TemporaryDirectory(prefix="qres-upptime-") as tmp:
            _git(["clone", "-q", str(p), tmp + "/repo"], None)
            return _commits_from_git(Path(tmp) / "repo")
    if p.is_dir() and (p / ".git").exists():
        return _commits_from_git(p)
    jsonl = p / "commits.jsonl" if p.is_dir() else p
    if jsonl.is_file():
        return _commits_from_jsonl(jsonl)
    raise DataValidationError(
        [RuleViolation("upptime", None, "git repository, .bundle or commits.jsonl", [str(p)], file=str(p))]
    )


def read_upptime_events(path: str | Path) -> list[tuple[int, str, dict | None]]:
    """Every history file version as (author time ms, site id, parsed YAML or None when deleted), oldest
    first: the raw status changes, before any site-span rule (the Prometheus fixtures replay these)."""
    out = []
    for commit in read_upptime_commits(path):
        for name, text in sorted(commit.files.items()):
            if is_history_file(name):
                out.append((commit.t_ms, Path(name).stem, None if text is None else yaml.safe_load(text) or {}))
    return out


def _git(args: list[str], cwd: Path | None, stdin: bytes | None = None) -> bytes:
    try:
        return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        err = (getattr(exc, "stderr", b"") or b"").decode(errors="replace").strip()[:200]
        raise DataValidationError(
            [RuleViolation("upptime", None, "readable git repository", [err or str(exc)], file=str(cwd or args[-1]))]
        ) from exc


def _commits_from_git(repo: Path) -> list[Commit]:
    log = _git(
        ["log", "--reverse", "--no-renames", "--format=%x1e%H %at %s", "--name-only", "--", "history/", CONFIG_FILE],
        repo,
    ).decode()
    heads, wanted = [], []
    for block in log.split("\x1e")[1:]:
        lines = [x for x in block.strip("\n").splitlines() if x]
        commit, at, *subject = lines[0].split(" ", 2)
        heads.append((int(at) * 1000, subject[0] if subject else "", commit))
        wanted.append([f for f in lines[1:] if _wanted(f)])
    spec = "".join(f"{c}:{f}\n" for (_, _, c), files in zip(heads, wanted) for f in files).encode()
    raw = _git(["cat-file", "--batch"], repo, spec) if spec else b""
    out, pos = [], 0
    for (t, message, _), files in zip(heads, wanted):
        texts: dict[str, str | None] = {}
        for f in files:
            end = raw.index(b"\n", pos)
            header = raw[pos:end].decode()
            pos = end + 1
            if header.endswith("missing"):
                texts[f] = None
                continue
            size = int(header.split()[2])
            texts[f] = raw[pos : pos + size].decode("utf-8", errors="replace")
            pos += size + 1
        if texts:
            out.append(Commit(t, message, dict(sorted(texts.items()))))
    return sorted(out, key=lambda c: c.t_ms)


def _commits_from_jsonl(path: Path) -> list[Commit]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        c = json.loads(line)
        t = int(datetime.fromisoformat(c["author_time"].replace("Z", "+00:00")).timestamp() * 1000)
        files = {f: v for f, v in sorted((c.get("files") or {}).items()) if _wanted(f)}
        if files:
            out.append(Commit(t, (c.get("message") or "").split("\n", 1)[0], files))
    return sorted(out, key=lambda c: c.t_ms)
