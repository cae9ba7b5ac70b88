"""How long a test waits for a condition (a server up, a run published) before it fails.

Sized for a machine several times busier than a quiet one: tests wait on conditions and never
on elapsed time, so this is only the point where a wait is declared hung. QRES_TEST_WAIT_S
raises it on slower machines.
"""

from __future__ import annotations

import os

WAIT_S = float(os.environ.get("QRES_TEST_WAIT_S", "600"))
