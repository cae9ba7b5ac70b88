"""Importers: turn public status histories (Upptime, Statuspage) into qresilience tables."""

__all__: list[str] = []
