"""Tiers family: one robust tier assignment for runtime load shedders, across all scenarios."""
