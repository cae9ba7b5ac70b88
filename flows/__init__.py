"""Prefect flows that wire the tasks, and the qres command line.

Importing the package sets quiet defaults for third-party libraries (telemetry off, their INFO
logs off) before any of them is imported; see flows.environment.quiet_defaults.
"""

from flows.environment import quiet_defaults

quiet_defaults()
