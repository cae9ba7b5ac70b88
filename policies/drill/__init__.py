"""Drills: the domain side of playing an outage on a running system (timelines, load, admission, outcomes).

Pure code: the processes that serve, inject and load live in ``tasks.drill``.
"""
