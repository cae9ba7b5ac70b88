"""Telemetry in: sources, incremental ingest, importers of public status histories, the bundled sample."""
