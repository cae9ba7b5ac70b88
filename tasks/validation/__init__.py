"""Validation: Great Expectations suites, batching, quarantine, Data Docs and incremental re-validation."""
