"""Hand-made Upptime histories: a few lines say which sites are listed and what each check saw."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class History:
    """Commits in time order; ``at`` is hours after T0."""

    def __init__(self) -> None:
        self.commits: list[dict] = []

    def _add(self, at: float, message: str, files: dict) -> History:
        t = (T0 + timedelta(hours=at)).isoformat()
        self.commits.append({"commit": f"{len(self.commits):040x}", "author_time": t, "commit_time": t,
                             "message": message, "files": files})  # fmt: skip
        return self

    def sites(self, at: float, **urls: str) -> History:
        """The site list becomes ``name=url`` (names as Upptime shows them, underscores for spaces)."""
        body = "sites:\n" + "".join(f"  - name: {n.replace('_', ' ')}\n    url: {u}\n" for n, u in urls.items())
        return self._add(at, "Update .upptimerc.yml", {".upptimerc.yml": body})

    def check(self, at: float, slug: str, status: str, url: str = "https://x.test", updated: float | None = None):
        stamp = (T0 + timedelta(hours=at if updated is None else updated)).isoformat().replace("+00:00", "Z")
        text = f"url: {url}\nstatus: {status}\ncode: {200 if status == 'up' else 503}\nresponseTime: 120\n"
        text += f"lastUpdated: {stamp}\n"
        return self._add(at, f"{'🟩' if status == 'up' else '🟥'} {slug} is {status} [upptime]",
                         {f"history/{slug}.yml": text})  # fmt: skip

    def every(self, start: float, end: float, slug: str, status: str = "up", step: float = 6.0, **kw) -> History:
        t = start
        while t <= end:
            self.check(t, slug, status, **kw)
            t += step
        return self

    def delete(self, at: float, *slugs: str) -> History:
        return self._add(at, ":arrow_up: Update @upptime", {f"history/{s}.yml": None for s in slugs})

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "commits.jsonl"
        commits = sorted(self.commits, key=lambda c: c["author_time"])
        path.write_text("".join(json.dumps(c) + "\n" for c in commits))
        return path


def hours(ts) -> float:
    """Hours after T0 of a timestamp (pyarrow scalar or datetime)."""
    value = ts.as_py() if hasattr(ts, "as_py") else ts
    return (value - T0).total_seconds() / 3600
