"""The docs stay true to the code: CLI reference, commands, flags, links, paths and folder map."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Other READMEs are checked for links and commands too (client/README.md links into docs/).
OTHER_READMES = [
    ROOT / "client" / "README.md",
    ROOT / "deployments" / "README.md",
    ROOT / "data" / "expectations" / "README.md",
]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# `qres <command>` where qres is the program (not qres.toml, qres-run, qres_client, `qres`).
QRES = re.compile(r"(?<![\w.-])qres((?: [a-z][a-z-]*){1,2})")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:policies|tasks|flows|client|tests|benchmarks|docs|deployments|data/expectations"
    r"|data/examples|\.ci)/[\w./*-]*)"
)
PACKAGE_ROOTS = ("policies", "tasks", "flows", "client")


def _gen_cli():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _gen_cli()
COMMANDS = dict(GEN.command_tree())


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _mentions(text: str) -> list[tuple[str, list[str]]]:
    """Each `qres ...` mention as (command path, flags written after it on the same code span/line)."""
    found = []
    for m in QRES.finditer(text):
        words = m.group(1).split()
        path = "qres " + words[0]
        if path not in COMMANDS and len(words) > 1:
            path = f"qres {words[0]} {words[1]}"
        rest = re.split(r"`|\||&&|;|#|\)|\n", text[m.end() :], maxsplit=1)[0]
        found.append((path, FLAG.findall(rest)))
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in FENCE.sub("", _text(page)).splitlines():
        if m := re.match(r"#{1,6} (.+)", line):
            slug = _slug(m.group(1))
            anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_cli_reference_is_generated_from_the_app():
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == GEN.render(), (
        "docs/cli.md is stale: run .venv/bin/python docs/gen_cli.py"
    )


def test_cli_reference_lists_every_command_and_option():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert len(COMMANDS) >= 17
    for path, cmd in COMMANDS.items():
        section = text.split(f"\n## {path}\n", 1)
        assert len(section) == 2, f"{path} has no section in docs/cli.md"
        body = section[1].split("\n## ", 1)[0]
        for flag in GEN.option_names(cmd) - {"--help"}:
            assert f"`{flag}`" in body, f"{path} {flag} missing from docs/cli.md"


@pytest.mark.parametrize("page", PAGES + OTHER_READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_qres_command_mentioned_exists_with_its_flags(page):
    for path, flags in _mentions(_text(page)):
        assert path in COMMANDS, f"{page.name} mentions `{path}`, which the app does not register"
        unknown = set(flags) - GEN.option_names(COMMANDS[path])
        assert not unknown, f"{page.name}: `{path}` has no option {sorted(unknown)}"


def test_mentions_are_found():
    """The scanner itself: a made-up command and flag are caught, prose and file names are not."""
    text = "run `qres run --seed 3 --bogus` or `.venv/bin/qres keys init --dir d`; qres.toml, `qres` cmd"
    assert _mentions(text) == [("qres run", ["--seed", "--bogus"]), ("qres keys init", ["--dir"])]


@pytest.mark.parametrize("page", PAGES + OTHER_READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(page):
    for target in LINK.findall(FENCE.sub("", _text(page))):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        assert dest.exists(), f"{page.name}: link {target} points to a missing file"
        if anchor:
            assert anchor in _anchors(dest), f"{page.name}: link {target}: no heading with that anchor"


# docs/cli.md is left out: it quotes the app's help texts, which the code owns.
@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "cli.md"], ids=lambda p: p.name)
def test_repository_paths_mentioned_exist(page):
    for path in REPO_PATH.findall(_text(page)):
        path = path.rstrip(".")
        hits = list(ROOT.glob(path)) if "*" in path else [ROOT / path] if (ROOT / path).exists() else []
        assert hits, f"{page.name} mentions {path}, which does not exist"


def _tracked_dirs() -> set[str]:
    try:
        files = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]
    return {str(Path(f).parent) for f in files} | {f.split("/")[0] for f in files if "/" in f}


def _folder_map() -> list[str]:
    text = _text(ROOT / "README.md")
    section = text.split("\n## Map of the folders\n", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    entries, parent = [], ""
    for line in block.splitlines():
        if m := re.match(r"( *)(\S+/)\s", line + " "):
            name = m.group(2).rstrip("/")
            if m.group(1):
                entries.append(f"{parent}/{name}")
            else:
                parent = name
                entries.append(name)
    return entries


def test_folder_map_matches_the_tree():
    listed = _folder_map()
    for entry in listed:
        assert (ROOT / entry).is_dir(), f"README's folder map lists {entry}/, which does not exist"
    tracked = _tracked_dirs()
    top = {d for d in tracked if "/" not in d and d != "." and not d.startswith(".")}
    packages = {str(p.parent.relative_to(ROOT)) for root in PACKAGE_ROOTS for p in (ROOT / root).glob("*/__init__.py")}
    missing = sorted((top | packages) - set(listed))
    assert not missing, f"README's folder map leaves out {missing}"


def test_readme_stays_short():
    assert len(_text(ROOT / "README.md").splitlines()) <= 200
