"""Data Docs for every run: one self-contained HTML page of every rule, its counts and examples.

Built from the Great Expectations results of the run (the same records ``qres validate``
prints), so the page can be kept as an MLflow artifact and opened without a GE project.
"""

# Why not GE's own site builder (measured with GE 1.24.1 on data/sample): a filesystem site on the
# ephemeral context + build_data_docs() takes only 0.23 s, but writes 44 files / 4.8 MB per run
# (static GIFs and fonts), and every page loads 11 scripts and 5 stylesheets from 7 third-party
# hosts (jsDelivr, cdnjs, unpkg, jQuery, Bootstrap CDNs, GE's S3 bucket), so offline it renders
# unstyled and each view calls out; its pages name internal suites and batches, not files,
# quarantine or shares. This page is self-contained, offline and names the file of every break.

from __future__ import annotations

import html
import json
from pathlib import Path

__all__ = ["render_data_docs", "write_data_docs"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
    "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}"
    ".pass{color:#176f2c}.fail{color:#b00020;font-weight:bold}.quar{color:#a05a00}"
)


def render_data_docs(report: dict, title: str = "qresilience validation") -> str:
    """The HTML page for a ``ValidationReport.as_dict()``."""
    e = html.escape
    verdict = "passed" if report["success"] else "FAILED"
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{e(title)}</title><style>{_STYLE}</style>",
        f"<h1>{e(title)}: {verdict}</h1>",
        f"<p>{report['rows_validated']:,} rows; quarantine allowed up to "
        f"{report.get('quarantine_max_share', 0):.3%} of a table's rows.</p>",
    ]
    for name, t in report["tables"].items():
        parts.append(f"<h2>{e(name)} ({t['rows']:,} rows, {t.get('quarantined', 0):,} quarantined)</h2>")
        parts.append(
            "<table><tr><th>suite</th><th>rule</th><th>level</th><th>column</th><th>result</th>"
            "<th>unexpected</th><th>quarantined</th><th>examples</th><th>file</th></tr>"
        )
        for r in t["results"]:
            if r["success"]:
                cls, text = "pass", "pass"
            elif r.get("quarantined"):
                cls, text = "quar", "quarantined"
            else:
                cls, text = "fail", "FAIL"
            examples = json.dumps(r.get("examples") or [], default=str)[:200]
            parts.append(
                f"<tr><td>{e(str(r['suite']))}</td><td>{e(str(r['rule']))}</td><td>{e(str(r.get('level', '')))}</td>"
                f"<td>{e(str(r.get('column') or ''))}</td><td class='{cls}'>{text}</td>"
                f"<td>{r.get('unexpected_count') or 0}</td><td>{r.get('quarantined') or 0}</td>"
                f"<td>{e(examples)}</td><td>{e(str(r.get('file') or ''))}</td></tr>"
            )
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def write_data_docs(report: dict, out_dir: Path, title: str = "qresilience validation") -> Path:
    """Write ``index.html`` and ``validation.json`` into ``out_dir``; returns the page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "validation.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    page = out_dir / "index.html"
    page.write_text(render_data_docs(report, title))
    return page
