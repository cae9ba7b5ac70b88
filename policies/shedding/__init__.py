"""Shedding family: per outage scenario, which workloads to admit, how much, in what order."""
