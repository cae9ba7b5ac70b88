"""Write docs/cli.md from the `qres` app itself, so the reference cannot drift from `--help`.

    .venv/bin/python docs/gen_cli.py          # rewrite docs/cli.md
    .venv/bin/python docs/gen_cli.py --check  # exit 1 if docs/cli.md is stale

The page is rendered from the same command objects `--help` prints (name, help text, every
argument and option with its flags, type and default), not from the terminal output, so it does
not depend on the terminal's width. tests/test_docs.py runs the check.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"

HEADER = """# `qres` command reference

Generated from the installed app by `.venv/bin/python docs/gen_cli.py` (do not edit by hand:
`tests/test_docs.py` fails when this page and the app disagree). Every command also answers
`--help`. Settings that a command does not take as a flag come from `qres.toml` or `QRES_*`
variables (see [operations.md](operations.md#configuration)).

Exit codes of the pipeline commands (`run`, `resolve`): 0 published, 1 failed (nothing
published), 3 solved but held back by the gates.
"""

_TYPE_NAMES = {str: "TEXT", int: "INTEGER", float: "FLOAT", Path: "PATH", bool: "BOOLEAN"}


def command_tree() -> list[tuple[str, object]]:
    """Every leaf command as ("qres a b", command object), in the order the app registers them."""
    import typer.main

    from flows.cli.app import app

    leaves: list[tuple[str, object]] = []

    def walk(cmd: object, path: list[str]) -> None:
        subcommands = getattr(cmd, "commands", None)
        if subcommands is None:
            leaves.append((" ".join(["qres", *path]), cmd))
            return
        for name, sub in subcommands.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return leaves


def option_names(cmd: object) -> set[str]:
    """Every flag a command accepts (long and short, both halves of --x/--no-x), plus --help."""
    names = {"--help"}
    for p in cmd.params:
        if p.param_type_name == "option":
            names.update(p.opts)
            names.update(p.secondary_opts)
    return names


def _type_name(p: object) -> str:
    annotation = getattr(getattr(p, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    name = _TYPE_NAMES.get(annotation) or getattr(getattr(p, "type", None), "name", "") or "TEXT"
    if getattr(p, "min", None) is not None or getattr(p, "max", None) is not None:
        lo = "" if p.min is None else f"{p.min} <= "
        hi = "" if p.max is None else f" <= {p.max}"
        name += f" ({lo}x{hi})"
    return name.upper() if name.islower() else name


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _row(p: object) -> str:
    if p.param_type_name == "argument":
        flags = f"`{p.name.upper()}`"
        kind = _type_name(p)
    else:
        flags = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
        kind = "flag" if p.is_flag else _type_name(p)
    if p.required:
        default = "required"
    elif p.param_type_name == "option" and p.is_flag:
        default = "on" if p.default else "off"
    elif p.default is None or p.default == "":
        default = ""
    else:
        default = f"`{p.default}`"
    return f"| {flags} | {kind} | {default} | {_cell(p.help or '')} |"


def _section(path: str, cmd: object) -> str:
    args = [p.name.upper() for p in cmd.params if p.param_type_name == "argument"]
    usage = " ".join([path, "[OPTIONS]", *args])
    paragraphs = [" ".join(para.split()) for para in (cmd.help or "").split("\n\n") if para.strip()]
    table = ["| argument / option | type | default | help |", "| --- | --- | --- | --- |"]
    table += [_row(p) for p in cmd.params]
    return "\n\n".join([f"## {path}", f"```\n{usage}\n```", *paragraphs, "\n".join(table)])


def render() -> str:
    tree = command_tree()
    index = ["| command | what it does |", "| --- | --- |"]
    for path, cmd in tree:
        first = " ".join((cmd.help or "").strip().split("\n\n")[0].split())
        index.append(f"| [`{path}`](#{path.replace(' ', '-')}) | {_cell(first)} |")
    blocks = [HEADER.strip(), "\n".join(index), *(_section(path, cmd) for path, cmd in tree)]
    return "\n\n".join(blocks) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md differs from the app")
    text = render()
    if ap.parse_args().check:
        if CLI_MD.read_text(encoding="utf-8") != text:
            print(f"{CLI_MD} is stale: run .venv/bin/python docs/gen_cli.py", file=sys.stderr)
            return 1
        return 0
    CLI_MD.write_text(text, encoding="utf-8")
    print(f"wrote {CLI_MD}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
