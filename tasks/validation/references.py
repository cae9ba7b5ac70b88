"""Reference rules (a column's values among another table's ids) checked beside Great Expectations.

A suite's ``expect_column_values_to_be_in_set`` with ``value_set: {"$PARAMETER": "service_ids"}``
stays in the GE-native JSON, but GE 1.24 paid for it in every batch in proportion to the id
set as well as the rows: the whole value set goes through the expectation's pydantic config,
its metric ids (hashed JSON) and the result, several times per run. Measured on a 2.88M-row
batch of health checks: 1.6 s of CPU for the suite with 1,000 ids, 2.1 s with 10,000, so the
cost per row grew with the fleet. Here the same rule is one lookup per distinct value of the
batch (the frame's strings are categoricals) and one gather over the rows' codes, and the
answer has the shape GE gives (unexpected count, every unexpected row index, the first
unexpected values), so counts, examples, files, quarantine and messages are unchanged
(``tests/tasks/test_reference_rules.py`` compares both on the same frames).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from tasks.validation.rules import parameters

__all__ = ["is_reference_rule", "check_reference"]

# As GE's COMPLETE results: the first 20 unexpected values as examples, and at most 200 values
# (but every row index) in the unexpected list.
_PARTIAL = 20
_VALUES = 200
_PLAIN_KWARGS = {"column", "value_set", "mostly"}


def is_reference_rule(exp: dict, sources: Collection[str]) -> bool:
    """An in-set rule over a parameter naming another table's ids, with nothing GE alone would apply.

    ``sources`` are the parameters filled from reference tables. Row conditions, ``mostly`` below
    1 and any other option keep the rule in GE.
    """
    kw = exp.get("kwargs") or {}
    if exp["type"] != "expect_column_values_to_be_in_set":
        return False
    value_set = kw.get("value_set")
    return (
        isinstance(value_set, dict)
        and parameters({"value_set": value_set}) <= set(sources)
        and set(kw) <= _PLAIN_KWARGS
        and kw.get("mostly") in (None, 1, 1.0)
    )


def check_reference(frame: pd.DataFrame, column: str, allowed: Collection) -> dict:
    """GE's answer for ``column in allowed``: nulls are not checked, every other value must be allowed.

    Returns ``success``, ``unexpected_count``, ``partial_unexpected_list``, ``unexpected_list``
    and ``unexpected_index_list`` (the frame's index labels, ascending), as GE's COMPLETE result.
    """
    series = frame[column]
    if isinstance(series.dtype, pd.CategoricalDtype):
        ok = np.asarray(series.cat.categories.isin(list(allowed)), dtype=bool)
        codes = series.cat.codes.to_numpy()
        bad = (codes >= 0) & ~np.append(ok, True)[codes]  # code -1 (null) reads the appended True
    else:
        bad = series.notna().to_numpy() & ~series.isin(list(allowed)).to_numpy()
    where = np.flatnonzero(bad)
    values = series.iloc[where[:_VALUES]].tolist() if where.size else []
    return {
        "success": not where.size,
        "unexpected_count": int(where.size),
        "partial_unexpected_list": values[:_PARTIAL],
        "unexpected_list": values,
        "unexpected_index_list": frame.index[where].tolist(),
    }
