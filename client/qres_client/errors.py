"""The root of qresilience's error tree, and the errors a client can raise.

    QresError                      anything qresilience raises on purpose
    ├── ConfigError                a setting, a key or a config file is wrong
    └── BundleVerificationError    a bundle's hashes, signatures or layout do not check out

The pipeline adds its own branches under ``QresError`` in ``qres_client.errors``. Messages say
what was wrong, where, and what to do. Standard library only.
"""

from __future__ import annotations

__all__ = ["QresError", "ConfigError", "BundleVerificationError"]


class QresError(Exception):
    """Base class: catch this to handle every qresilience failure."""


class ConfigError(QresError):
    """A setting is missing or has a bad value."""


class BundleVerificationError(QresError):
    """A bundle is incomplete, tampered with or from an unknown schema: never load it."""
