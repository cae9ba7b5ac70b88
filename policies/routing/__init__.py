"""Routing family: per-scenario traffic weights across each service's region endpoints."""
