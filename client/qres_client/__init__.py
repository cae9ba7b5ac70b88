"""qresilience's client: load signed policy bundles and answer decide() at runtime (pyarrow and cryptography only)."""
