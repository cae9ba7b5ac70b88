"""One source spec: every kind is checked on load with what to fix, and the nightly's pull lands each beside the others.

The status histories are the real ones under ../shared/realdata (read in place); the landing
folder the pull writes must hold exactly what `qres import <kind>` writes for each source.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from flows.cli.app import app
from policies.errors import ConfigError
from policies.telemetry.importers.http import ConnectorError
from policies.telemetry.importers.land import pull_order, pull_source
from policies.telemetry.importers.spec import parse_sources
from policies.telemetry.ingest import load_telemetry
from tests.policies import test_ingest_sources

REAL = Path(__file__).resolve().parents[3].parent / "shared" / "realdata"
MANTICORE = REAL / "upptime" / "manticore" / "commits.jsonl"
GITHUB = REAL / "statuspage" / "github" / "incidents.jsonl.gz"
runner = CliRunner()
served = test_ingest_sources.served  # the sample behind `python -m http.server` (a fixture)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "ftp", "path": "x"}, 'sources.s: kind must be one of .*upptime, statuspage.*; set e.g. kind = "files"'),
        ({"path": "x"}, "sources.s: kind must be one of .*got None.*; add e.g. kind ="),
        ({"kind": "upptime"}, 'sources.s: upptime needs path; add e.g. path = "status-repo"'),
        ({"kind": "statuspage"}, "sources.s: statuspage needs path; add e.g. path ="),
        ({"kind": "url"}, 'sources.s: url needs url; add e.g. url = "https://'),
        ({"kind": "upptime", "path": "x", "resolution_min": "often"}, "sources.s.resolution_min: expected a number, got 'often'; e.g. resolution_min = 5"),
        ({"kind": "upptime", "path": "x", "keep_template_sites": "yes"}, "sources.s.keep_template_sites: expected true or false, got 'yes'; e.g. keep_template_sites = false"),
        ({"kind": "statuspage", "path": 7}, "sources.s.path: expected a string, got 7; e.g. path = "),
        ({"kind": "gcp", "path": "x", "stale_open_h": -1}, "sources.s.stale_open_h: expected a positive number, got -1; e.g. stale_open_h = 72"),
        ({"kind": "files", "path": "x", "resolution_min": 5}, "sources.s: unknown key.s. resolution_min for kind 'files'; known keys: into, path"),
        ({"kind": "upptime", "path": "x", "resolution": 5}, "did you mean resolution_min for resolution"),
        ({"kind": "files", "path": "s3://b/t"}, 'sources.s: path .* is a URL; use kind = "url"'),
        ({"kind": "url", "url": "ftp://h/t.zip"}, "sources.s: url .* must start with http:// or https://"),
        ({"kind": "upptime", "path": "x", "since": "14d"}, "sources.s.since: only prometheus and pagerduty .* drop since"),
        ({"kind": "backstage", "files": "a.yaml", "into": 3}, 'sources.s.into: expected a folder path, got 3; e.g. into = "'),
    ],
)  # fmt: skip
def test_every_kind_is_validated_with_the_source_the_key_and_the_fix(entry: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_sources({"s": entry})


def test_a_source_name_must_be_usable_as_a_file_name() -> None:
    with pytest.raises(ConfigError, match=r"sources.my source/1: .*rename it, e.g. \[sources.my-source-1\]"):
        parse_sources({"my source/1": {"kind": "files", "path": "x"}})


def test_cli_options_are_checked_like_the_entry(tmp_path: Path) -> None:
    cfg = tmp_path / "qres.toml"
    cfg.write_text(f'[sources.status]\nkind = "upptime"\npath = "{MANTICORE}"\n')
    res = runner.invoke(app, ["import", "statuspage", "--source", "status", "--config", str(cfg), "--out", "o"])
    assert res.exit_code == 1 and "[sources.status] is kind 'upptime'; use `qres import upptime`" in res.output
    res = runner.invoke(app, ["import", "upptime", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "qres import upptime: path is missing" in " ".join(res.output.split())
    cfg.write_text('[sources.status]\nkind = "upptime"\npath = "x"\nstale_after_h = "long"\n')
    res = runner.invoke(app, ["sources", "--config", str(cfg)])
    assert res.exit_code == 1 and "sources.status.stale_after_h: expected a number" in " ".join(res.output.split())


def _rows(table: pa.Table, key: list[str]) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[k]) for k in key))


def _cli_import(kind: str, path: Path, out: Path, *options: str) -> dict[str, pa.Table]:
    res = runner.invoke(app, ["import", kind, str(path), "--out", str(out), *options])
    assert res.exit_code == 0, res.output
    return load_telemetry(out).tables


@pytest.fixture(scope="module")
def histories(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A landing folder pulled from the real manticore Upptime and GitHub Statuspage histories, and their imports."""
    if not (MANTICORE.is_file() and GITHUB.is_file()):
        pytest.skip("shared real data not present")
    from flows.settings import load_settings

    root = tmp_path_factory.mktemp("histories")
    cfg = root / "qres.toml"
    cfg.write_text(
        'data_dir = "landing"\n'
        f'[sources.manticore]\nkind = "upptime"\npath = "{MANTICORE}"\n'
        f'[sources.github]\nkind = "statuspage"\npath = "{GITHUB}"\nresolution_min = 1440\n'
    )
    settings = load_settings(cfg)
    reports = _pull_all(settings)
    return {
        "settings": settings,
        "landing": Path(settings.data_dir),
        "reports": reports,
        "upptime": _cli_import("upptime", MANTICORE, root / "upptime"),
        "statuspage": _cli_import("statuspage", GITHUB, root / "statuspage", "--resolution-min", "1440"),
    }


def _pull_all(settings) -> list[dict]:
    """What the nightly's pull task does (tasks/pull.py), without the Prefect run around it."""
    return [pull_source(e, e.into or settings.data_dir) for e in pull_order(parse_sources(settings.sources).values())]


def test_the_pull_lands_exactly_what_qres_import_writes(histories: dict) -> None:
    landed = load_telemetry(histories["landing"]).tables
    up, sp = histories["upptime"], histories["statuspage"]
    for table, key in (("health_checks", ["service_id", "ts"]), ("incidents", ["incident_id"])):
        want = pa.concat_tables([up[table], sp[table]])
        assert _rows(landed[table].select(want.column_names), key) == _rows(want, key), table
    # the statuspage source's synthetic region yields to the Upptime one landed first: kept once
    services = landed["services"]["service_id"].to_pylist()
    assert sorted(services) == sorted(
        set(up["services"]["service_id"].to_pylist() + sp["services"]["service_id"].to_pylist())
    )
    assert len(services) == len(set(services)) and "region-imported" in services
    assert [r["source"] for r in histories["reports"]] == ["manticore", "github"]  # upptime before statuspage
    assert sorted(p.name for p in (histories["landing"] / "health_checks").iterdir()) == [
        "source=github",
        "source=manticore",
    ]


def test_a_second_pull_rewrites_nothing(histories: dict) -> None:
    files = {p: p.stat().st_mtime_ns for p in histories["landing"].rglob("*.parquet")}
    again = _pull_all(histories["settings"])
    assert [(r["written"], r["removed"]) for r in again] == [(0, 0), (0, 0)]
    assert {p: p.stat().st_mtime_ns for p in histories["landing"].rglob("*.parquet")} == files


def test_files_and_dataset_sources_land_as_they_are_and_follow_deletions(small_sample: Path, tmp_path: Path) -> None:
    import shutil

    from tests.policies.test_partitions import to_hive

    folder = tmp_path / "exports"
    shutil.copytree(small_sample, folder)
    lake = to_hive(small_sample, tmp_path / "lake")
    entries = parse_sources(
        {"team": {"kind": "files", "path": str(folder)}, "lake": {"kind": "dataset", "path": str(lake)}}
    )
    landing = tmp_path / "landing"
    for e in pull_order(entries.values()):
        pull_source(e, landing)
    got = load_telemetry(landing).tables
    want = load_telemetry(small_sample).tables
    for table in ("health_checks", "services", "incidents"):
        assert got[table].num_rows == 2 * want[table].num_rows, table  # both sources hold the whole sample
    assert any((landing / "health_checks" / "source=lake").glob("date=*/*.parquet"))
    day = sorted((folder / "health_checks").iterdir())[-1]
    day.unlink()  # the team's export drops a day: the next pull drops it too
    report = pull_source(entries["team"], landing)
    assert (report["written"], report["removed"]) == (0, 1)
    assert not (landing / "health_checks" / "source=team" / day.name).exists()
    itself = parse_sources({"loop": {"kind": "files", "path": str(tmp_path)}})["loop"]
    with pytest.raises(ConnectorError, match="is its own landing folder"):
        pull_source(itself, landing)  # tmp_path holds the landing folder: it would copy itself each pull
    plain = parse_sources({"lake": {"kind": "dataset", "path": str(folder)}})["lake"]
    with pytest.raises(ConnectorError, match='no Hive partition folder .*kind = "files"'):
        pull_source(plain, tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_a_url_source_reads_a_served_folder_or_an_archive(served, small_sample: Path, tmp_path: Path) -> None:
    import io
    import zipfile

    url, root = served  # python -m http.server over a copy of the sample: folder listings, no range requests
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(small_sample.rglob("*")):
            if p.is_file():
                z.write(p, "telemetry/" + p.relative_to(small_sample).as_posix())  # one top folder, as archives have
    (root / "t.zip").write_bytes(buf.getvalue())
    entries = parse_sources({"web": {"kind": "url", "url": url}, "zipped": {"kind": "url", "url": f"{url}t.zip"}})
    for e in entries.values():
        pull_source(e, tmp_path / "landing")
    res = runner.invoke(app, ["import", "url", f"{url}t.zip", "--out", str(tmp_path / "copy")])
    assert res.exit_code == 0, res.output
    missing = parse_sources({"web": {"kind": "url", "url": f"{url}gone.zip", "retries": 0}})["web"]
    with pytest.raises(ConnectorError, match="url: .*gone.zip answered HTTP 404"):
        pull_source(missing, tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()
    want = load_telemetry(small_sample).tables
    got = load_telemetry(tmp_path / "copy").tables
    assert {t: got[t].num_rows for t in want} == {t: want[t].num_rows for t in want}
    landed = load_telemetry(tmp_path / "landing").tables  # both sources hold the whole sample
    assert {t: landed[t].num_rows for t in want} == {t: 2 * want[t].num_rows for t in want}
    assert sorted(p.name for p in (tmp_path / "landing" / "services").iterdir()) == ["source=web", "source=zipped"]


def test_a_history_that_cannot_be_read_writes_nothing(tmp_path: Path) -> None:
    from policies.errors import QresError

    entry = parse_sources({"gh": {"kind": "statuspage", "path": str(tmp_path / "missing.jsonl")}})["gh"]
    with pytest.raises(QresError, match="missing.jsonl"):
        pull_source(entry, tmp_path / "landing")
    assert not (tmp_path / "landing").exists()  # not even the landing or _pull/ folder
