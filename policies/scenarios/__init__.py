"""Outage scenarios: which dependencies are down or degraded, how likely, for how long."""
