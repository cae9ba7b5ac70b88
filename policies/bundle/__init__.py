"""Bundles from the pipeline side: the store publisher (the format itself is qres_client.bundle)."""
