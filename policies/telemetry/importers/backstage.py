"""Services and dependencies from a Backstage catalog (``catalog-info.yaml`` or ``/api/catalog/entities``).

Entities of kind Component, Resource, API and System become services (``service_id`` =
``metadata.name``, or ``namespace-name`` outside the default namespace). The kind follows
``spec.type``: ``saas``/``external``/``third-party`` -> saas, ``edge``/``cdn``/``gateway`` -> edge,
``region``/``cloud-region`` -> region, else internal. Tier (0 = most critical .. 3): the
``tier_annotation`` annotation or label (``qresilience.io/tier`` by default; ``tier-1`` or ``1``),
else ``lifecycle_tiers`` by ``spec.lifecycle`` (production 1, experimental 3), else
``default_tier``. Dependencies: ``spec.dependsOn`` (entity refs ``kind:namespace/name``) and
``spec.system`` (a component depends on its System); hard unless the ``hard_annotation``
(``qresilience.io/dependency-hard``) says false, or lists the refs that are hard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from policies.schema import TABLES
from policies.telemetry.importers.http import ConnectorError, HttpClient, auth_headers

__all__ = [
    "BackstageSpec",
    "read_catalog_files",
    "fetch_catalog",
    "catalog_tables",
    "import_backstage",
    "write_catalog",
]

KINDS = ("component", "resource", "api", "system")
_TYPE_KIND = {
    "saas": "saas",
    "external": "saas",
    "third-party": "saas",
    "edge": "edge",
    "cdn": "edge",
    "gateway": "edge",
    "region": "region",
    "cloud-region": "region",
}


@dataclass(frozen=True)
class BackstageSpec:
    url: str = ""
    files: tuple[str, ...] = ()  # catalog-info.yaml files or folders, instead of the catalog API
    tier_annotation: str = "qresilience.io/tier"
    hard_annotation: str = "qresilience.io/dependency-hard"
    default_tier: int = 2
    lifecycle_tiers: dict[str, int] = field(default_factory=lambda: {"production": 1, "experimental": 3})
    token_env: str = "BACKSTAGE_TOKEN"
    page_limit: int = 500
    timeout_s: float = 30.0
    retries: int = 4


def read_catalog_files(paths: list[str | Path]) -> list[dict]:
    """Every entity document of the files (folders: every ``*.yaml``/``*.yml`` below them)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")]) if p.is_dir() else [p]
    out = []
    for f in files:
        try:
            docs = list(yaml.safe_load_all(f.read_text()))
        except (OSError, yaml.YAMLError) as exc:
            raise ConnectorError(f"backstage: cannot read {f} ({str(exc).splitlines()[0]})") from None
        out += [d for d in docs if isinstance(d, dict)]
    return out


def fetch_catalog(spec: BackstageSpec) -> tuple[list[dict], int]:
    """Entities of ``GET /api/catalog/entities`` (offset/limit pages until a short page)."""
    client = HttpClient(
        "backstage",
        auth_headers(spec.token_env, None, None),
        timeout_s=spec.timeout_s,
        retries=spec.retries,
        auth_hint=f"set ${spec.token_env}",
    )
    base = spec.url.rstrip("/")
    api = base if base.endswith("/api/catalog/entities") else base + "/api/catalog/entities"
    out, offset = [], 0
    while True:
        page = client.get_json(api, {"offset": offset, "limit": spec.page_limit})
        if not isinstance(page, list):
            raise ConnectorError(f"backstage: {api} did not answer a list of entities")
        out += page
        if len(page) < spec.page_limit:
            return out, client.requests
        offset += len(page)


def catalog_tables(spec: BackstageSpec, entities: list[dict]) -> dict[str, pa.Table]:
    """services and dependencies tables (sorted; a dependency on an entity not in the catalog is refused)."""
    ents = {}
    for e in entities:
        kind = str(e.get("kind", "")).lower()
        if kind in KINDS:
            meta = e.get("metadata") or {}
            if not meta.get("name"):
                raise ConnectorError(f"backstage: a {e.get('kind')} entity has no metadata.name")
            ents[_ref(kind, meta)] = e
    services, deps = [], set()
    for ref, e in sorted(ents.items()):
        meta, spec_ = e.get("metadata") or {}, e.get("spec") or {}
        sid = _sid(meta)
        typ = str(spec_.get("type", "")).lower()
        services.append(
            {"service_id": sid, "kind": _TYPE_KIND.get(typ, "internal"), "tier": _tier(spec, meta, spec_),
             "capacity": 0.0, "region": None}
        )  # fmt: skip
        targets = [_parse_ref(r, "component", meta) for r in spec_.get("dependsOn") or []]
        if spec_.get("system") and ref.split(":", 1)[0] != "system":
            targets.append(_parse_ref(spec_["system"], "system", meta))
        hard = _hardness(spec, meta)
        for t in targets:
            if t not in ents:
                raise ConnectorError(
                    f"backstage: {ref} depends on {t}, which is not in the catalog; add it or drop the reference"
                )
            deps.add((sid, _sid(ents[t]["metadata"]), hard(t)))
    return {
        "services": pa.Table.from_pylist(services, schema=TABLES["services"]),
        "dependencies": pa.Table.from_pylist(
            [{"service_id": a, "depends_on": b, "hard": h} for a, b, h in sorted(deps)], schema=TABLES["dependencies"]
        ),
    }


def import_backstage(
    spec: BackstageSpec, out_dir: str | Path, *, files: list[str] = (), replace: bool = False
) -> dict[str, int]:
    """Write services.parquet and dependencies.parquet into ``out_dir``.

    With ``replace``, catalog services replace the rows of the same id and the folder's other services
    stay (an importer's synthetic region); dependencies are the catalog's alone.
    """
    if not files and not spec.url:
        raise ConnectorError("backstage: give catalog-info.yaml files/folders or --url of the catalog")
    out_dir = Path(out_dir)
    clash = [p for p in (out_dir / "services.parquet", out_dir / "dependencies.parquet") if p.exists()]
    if clash and not replace:
        raise FileExistsError(f"{clash[0]} exists; pass --replace to overwrite it")
    entities = read_catalog_files(list(files)) if files else fetch_catalog(spec)[0]
    return write_catalog(out_dir, catalog_tables(spec, entities))


def write_catalog(out_dir: Path, tables: dict[str, pa.Table], forget: frozenset[str] = frozenset()) -> dict[str, int]:
    """The catalog's services over the folder's (same id replaced, ids in ``forget`` dropped), its dependencies."""
    if not tables["services"].num_rows:
        raise ConnectorError("backstage: no Component, Resource, API or System entity found")
    targets = {n: out_dir / f"{n}.parquet" for n in ("services", "dependencies")}
    if targets["services"].exists():  # keep the folder's other services (an importer's region-imported)
        old = pq.read_table(targets["services"]).cast(TABLES["services"])
        ids = set(tables["services"]["service_id"].to_pylist()) | forget
        keep = old.filter(pa.array([s not in ids for s in old["service_id"].to_pylist()], pa.bool_()))
        tables = tables | {"services": pa.concat_tables([tables["services"], keep])}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, path in targets.items():
        tmp = path.with_name("." + path.name + ".tmp")
        pq.write_table(tables[name], tmp)
        os.replace(tmp, path)
    return {n: t.num_rows for n, t in tables.items()}


def _ref(kind: str, meta: dict) -> str:
    return f"{kind}:{meta.get('namespace') or 'default'}/{meta['name']}".lower()


def _sid(meta: dict) -> str:
    ns = meta.get("namespace") or "default"
    return meta["name"] if ns == "default" else f"{ns}-{meta['name']}"


def _parse_ref(ref: str, default_kind: str, meta: dict) -> str:
    """``[kind:][namespace/]name`` with the entity's namespace as default (Backstage's rule)."""
    text = str(ref)
    kind, _, rest = text.partition(":") if ":" in text else (default_kind, "", text)
    ns, _, name = rest.rpartition("/")
    return f"{kind}:{ns or meta.get('namespace') or 'default'}/{name}".lower()


def _labelled(meta: dict, key: str) -> str | None:
    for where in ("annotations", "labels"):
        value = (meta.get(where) or {}).get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _tier(spec: BackstageSpec, meta: dict, spec_: dict) -> int:
    raw = _labelled(meta, spec.tier_annotation)
    if raw is not None:
        digits = "".join(c for c in raw if c.isdigit())
        if not digits or not 0 <= int(digits) <= 3:
            raise ConnectorError(f"backstage: {meta['name']}: {spec.tier_annotation}={raw!r} is not a tier 0..3")
        return int(digits)
    return int(spec.lifecycle_tiers.get(str(spec_.get("lifecycle", "")).lower(), spec.default_tier))


def _hardness(spec: BackstageSpec, meta: dict):
    """ref -> hard: annotation absent/true = all hard, false = all soft, else the comma list of hard refs."""
    raw = _labelled(meta, spec.hard_annotation)
    if raw is None or raw.strip().lower() in ("true", "yes", "1"):
        return lambda ref: True
    if raw.strip().lower() in ("false", "no", "0"):
        return lambda ref: False
    hard = {_parse_ref(r.strip(), "component", meta) for r in raw.split(",") if r.strip()}
    return lambda ref: ref in hard
