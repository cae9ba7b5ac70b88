"""Upptime as it really is, on hand-made histories: template start, removal, rename, late add, re-creation."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from policies.errors import DataValidationError
from policies.telemetry.importers.upptime import import_upptime, upptime_slug
from tests.policies.importers.upptime_builder import History, hours


def _template_start() -> History:
    h = History().sites(0, Google="https://www.google.com", Wikipedia="https://en.wikipedia.org",
                        Test_Broken_Site="https://thissitedoesnotexist.koj.co")  # fmt: skip
    h.check(0, "google", "up").check(0, "wikipedia", "up").check(0, "test-broken-site", "down")
    h.sites(0.3, Shop="https://shop.test", Api="https://api.test").delete(
        0.5, "google", "wikipedia", "test-broken-site"
    )
    return h.every(1, 240, "shop", url="https://shop.test").every(1, 240, "api", url="https://api.test")


def _checks(out: Path, service: str):
    t = pq.read_table(out / "health_checks")
    return t.filter(pc.equal(t["service_id"], service))


def test_upptime_slug_matches_upptime_file_names() -> None:
    names = ["IPv6 test", "GitHub", "3Deling", "MySQL Playground", "Manual (dev)", "Hacker News", "WWW"]
    assert [upptime_slug(n) for n in names] == [
        "i-pv6-test", "git-hub", "3-deling", "my-sql-playground", "manual-dev", "hacker-news", "www",
    ]  # fmt: skip


def test_template_sites_are_dropped_and_the_history_starts_with_the_real_sites(tmp_path: Path) -> None:
    src = _template_start().write(tmp_path / "src")
    report = import_upptime(src, tmp_path / "out")
    assert sorted(s.service_id for s in report.kept) == ["api", "shop"]
    dropped = {s.site: s.reason for s in report.dropped}
    assert set(dropped) == {"google", "wikipedia", "test-broken-site"}
    assert all("template placeholder" in r for r in dropped.values())
    assert report.rows["incidents"] == 0  # the broken placeholder site is no outage
    assert hours(pq.read_table(tmp_path / "out" / "health_checks")["ts"][0]) >= 0.9
    assert "dropped test-broken-site: Upptime template placeholder" in report.text()
    kept = import_upptime(src, tmp_path / "keep", keep_template_sites=True)
    broken = kept.site("test-broken-site")
    assert broken.kept and broken.spans[0].ended_by == "removed from the site list"
    assert hours(_checks(tmp_path / "keep", "test-broken-site")["ts"][-1]) <= 0.3  # absent after removal, not down


def test_removed_site_is_absent_afterwards_and_readded_site_starts_again(tmp_path: Path) -> None:
    h = History().sites(0, Shop="https://shop.test", Blog="https://blog.test")
    h.every(0, 300, "shop", url="https://shop.test").every(0, 100, "blog", url="https://blog.test")
    h.check(95, "blog", "down", url="https://blog.test")
    h.sites(100.5, Shop="https://shop.test").delete(101, "blog")
    h.sites(200, Shop="https://shop.test", Blog="https://blog.test").every(201, 300, "blog", url="https://blog.test")
    report = import_upptime(h.write(tmp_path / "src"), tmp_path / "out")
    blog = report.site("blog")
    assert [s.ended_by for s in blog.spans] == ["removed from the site list", "end of data"]
    ts = [hours(t) for t in _checks(tmp_path / "out", "blog")["ts"]]
    assert not [t for t in ts if 100.6 < t < 200.9]  # nothing while it was not listed
    assert max(ts) >= 299
    inc = pq.read_table(tmp_path / "out" / "incidents.parquet").to_pylist()
    assert len(inc) == 1 and hours(inc[0]["resolved_at"]) <= 100.5  # closed when the site left, not carried


def test_renamed_site_continues_under_its_new_name(tmp_path: Path) -> None:
    h = History().sites(0, Web="https://www.test").every(0, 100, "web", url="https://www.test")
    h.sites(100.2, Website="https://www.test").every(100.5, 200, "website", url="https://www.test")
    h.check(150, "website", "down", url="https://www.test")
    report = import_upptime(h.write(tmp_path / "src"), tmp_path / "out")
    assert [s.service_id for s in report.kept] == ["website", "website"]
    assert report.site("web").reason == "renamed to website"
    ts = [hours(t) for t in _checks(tmp_path / "out", "website")["ts"]]
    assert min(ts) < 1 and max(ts) > 196 and ts == sorted(set(ts))
    assert pq.read_table(tmp_path / "out" / "services.parquet")["service_id"].to_pylist().count("web") == 0


def test_late_site_recreated_file_and_maintenance_rewrite(tmp_path: Path) -> None:
    h = (
        History()
        .sites(0, Shop="https://shop.test", Api="https://api.test")
        .every(0, 400, "shop", url="https://shop.test")
    )
    h.every(150, 400, "api", url="https://api.test")  # added late: absent before its first check
    h.delete(200, "api").every(210, 400, "api", url="https://api.test", step=10)  # file re-created
    h.check(398, "shop", "up", url="https://shop.test", updated=396)  # a rewrite: same lastUpdated
    report = import_upptime(h.write(tmp_path / "src"), tmp_path / "out")
    api = report.site("api")
    assert [s.ended_by for s in api.spans] == ["history file deleted", "end of data"]
    assert hours(_checks(tmp_path / "out", "api")["ts"][0]) >= 149.9
    assert any("maintenance" in n for n in report.site("shop").notes)


def test_site_down_until_the_end_is_reported_as_probably_retired(tmp_path: Path) -> None:
    h = (
        History()
        .sites(0, Shop="https://shop.test", Old="https://old.test")
        .every(0, 500, "shop", url="https://shop.test")
    )
    h.every(0, 100, "old", url="https://old.test").every(106, 500, "old", "down", url="https://old.test")
    report = import_upptime(h.write(tmp_path / "src"), tmp_path / "out", retired_after_h=168)
    old = report.site("old")
    assert "probably retired or misconfigured" in old.spans[-1].ended_by and old.down_events == 0
    assert set(_checks(tmp_path / "out", "old")["status"].to_pylist()) == {"up"}
    short = import_upptime(h.write(tmp_path / "src"), tmp_path / "long", retired_after_h=24 * 30)
    assert short.site("old").down_events == 1  # within the limit it is an (open) outage


def test_stale_site_ends_at_its_last_check_and_empty_history_refuses(tmp_path: Path) -> None:
    h = (
        History()
        .sites(0, Shop="https://shop.test", Api="https://api.test")
        .every(0, 400, "shop", url="https://shop.test")
    )
    h.every(0, 100, "api", url="https://api.test")
    report = import_upptime(h.write(tmp_path / "src"), tmp_path / "out", stale_after_h=48)
    assert report.site("api").spans[-1].ended_by == "no later check"
    assert max(hours(t) for t in _checks(tmp_path / "out", "api")["ts"]) <= 100
    only_template = History().sites(0, Google="https://www.google.com").check(0, "google", "down")
    only_template.sites(1, Shop="https://shop.test").delete(2, "google")
    with pytest.raises(DataValidationError, match="google: Upptime template placeholder"):
        import_upptime(only_template.write(tmp_path / "t"), tmp_path / "t-out")
