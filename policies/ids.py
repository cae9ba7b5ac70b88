"""The one grammar every identifier follows (services, workloads, sites, incidents, candidates).

An id is 1-128 ASCII characters: a letter or digit, then letters, digits, ``.``, ``_``, ``:``
or ``-``. So no separators of scenario keys (``,``, ``;``, ``=``), no path parts (``/``,
``..`` alone cannot start an id), no whitespace, NUL or other control characters, and no
bidirectional overrides. The validation suites (``data/expectations/*.json``) hold this very
pattern in an ``expect_column_values_to_match_regex`` rule per id column (checked by a test).
"""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = ["ID_PATTERN", "ID_COLUMNS", "is_valid_id", "escape_id"]

# ``\Z``, not ``$``: ``$`` also matches before a trailing newline.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z"
ID_COLUMNS = {
    "services": "service_id",
    "workloads": "workload_id",
    "sites": "site_id",
    "incidents": "incident_id",
    "standby_candidates": "candidate_id",
}
_ID = re.compile(ID_PATTERN)


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID.match(value) is not None


def escape_id(service: str) -> str:
    """An id as it appears in a key: percent-encoded outside ``[A-Za-z0-9._:-]``.

    Ids of the documented grammar (``policies.ids``) are left as they are, so keys of valid
    data never change; anything else (``,``, ``;``, ``=``, ``%``, NUL, ...) is escaped, which
    makes the key injective: distinct (down, degraded) sets never share a key.
    """
    return quote(service, safe=":")
