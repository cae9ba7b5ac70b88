"""Identifiers: one grammar checked at the door, and scenario keys that cannot collide."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.errors import DataValidationError
from policies.ids import ID_COLUMNS, ID_PATTERN, is_valid_id
from policies.scenarios.scenario_set import NORMAL_KEY, scenario_key
from tasks.validation.ge_suites import load_suite_dict
from tasks.validation.suite import validate_tables
from tests.tasks.test_validation import FILES, to_tables, valid_rows

HOSTILE = [
    "a,b",
    "a;down=b",
    "x=y",
    "../etc/passwd",
    "svc/../../key",
    "nul\x00byte",
    "rtl\u202eevil",
    "trailing\n",
    " leading-space",
    "",
    "ümlaut",
    "a" * 129,
]
# The first row of each table, with its id replaced.
ID_ROW = {"services": 3, "workloads": 1, "sites": 1, "incidents": 1, "standby_candidates": 1}


def test_every_id_column_has_the_grammar_rule_in_its_suite() -> None:
    for table, column in ID_COLUMNS.items():
        rules = [
            e for e in load_suite_dict(table)["expectations"] if e["type"] == "expect_column_values_to_match_regex"
        ]
        assert [(r["kwargs"]["column"], r["kwargs"]["regex"]) for r in rules] == [(column, ID_PATTERN)], table
        assert rules[0]["meta"]["level"] == "table"  # refused, never quarantined


_CASES = [("sites", v) for v in HOSTILE] + [(t, v) for t in sorted(ID_COLUMNS) if t != "sites" for v in HOSTILE[:6:2]]


@pytest.mark.parametrize(("table", "value"), _CASES, ids=[f"{t}-{v!r}"[:30] for t, v in _CASES])
def test_a_hostile_id_is_refused_naming_the_value(table: str, value: str) -> None:
    rows = valid_rows()
    column = ID_COLUMNS[table]
    row = ID_ROW[table]
    if table == "services":  # an unreferenced leaf, so only the grammar can object
        rows["dependencies"] = [d for d in rows["dependencies"] if "edge-cdn" not in d.values()]
        rows["incidents"][1]["affected"] = ["svc-api"]
    rows[table][row][column] = value
    with pytest.raises(DataValidationError) as err:
        validate_tables(to_tables(rows), files=FILES, quarantine_max_share=0.9)
    hits = [v for v in err.value.violations if v.table == table and v.column == column and "matches" in v.rule]
    assert hits, str(err.value)
    assert hits[0].examples == [value]
    line = next(line for line in str(err.value).splitlines() if "matches" in line and f"table {table!r}" in line)
    assert repr(value)[:40] in line or repr(value)[1:30] in line, line


def test_sample_style_ids_follow_the_grammar() -> None:
    for value in ["svc-api", "region-eu-west", "INC-0001", "c1", "site_hq", "upptime:manticore", "v1.2"]:
        assert is_valid_id(value) and re.fullmatch(ID_PATTERN.removesuffix(r"\Z"), value)
    assert not any(is_valid_id(v) for v in HOSTILE)


_any_id = st.text(min_size=1, max_size=6, alphabet=st.sampled_from(list("ab,;=%:.-_~/\x00\u202e é")))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_any_id, max_size=4),
    st.lists(_any_id, max_size=3),
    st.lists(_any_id, max_size=4),
    st.lists(_any_id, max_size=3),
)
def test_distinct_scenarios_get_distinct_keys(d1, g1, d2, g2) -> None:
    canon1 = (frozenset(d1), frozenset(g1) - frozenset(d1))
    canon2 = (frozenset(d2), frozenset(g2) - frozenset(d2))
    same = scenario_key(d1, g1) == scenario_key(d2, g2)
    assert same == (canon1 == canon2), (d1, g1, d2, g2)


@given(st.lists(st.from_regex(ID_PATTERN, fullmatch=True), max_size=4))
def test_valid_ids_keep_the_plain_key(ids) -> None:
    expected = "down=" + ",".join(sorted(set(ids))) if ids else NORMAL_KEY
    assert scenario_key(ids) == expected


def test_the_issue_collision_is_gone() -> None:
    assert scenario_key(["a,b"]) != scenario_key(["a", "b"])
    assert scenario_key(["a;degraded=b"]) != scenario_key(["a"], ["b"])
    assert json.dumps(scenario_key(["rtl\u202e"])).isascii()
