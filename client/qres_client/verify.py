"""Everything a client checks before it trusts bytes from a store, in one call."""

from __future__ import annotations

from qres_client.bundle import check_manifest_identity, verify_files
from qres_client.errors import BundleVerificationError
from qres_client.index import build_index
from qres_client.signing import PublicKeys, verify_manifest_signatures

__all__ = ["verify_bundle_bytes", "RollbackRefusedError"]


def verify_bundle_bytes(
    policy: str,
    version: str,
    manifest_bytes: bytes,
    files: dict[str, bytes],
    *,
    public_keys: PublicKeys | None,
    allow_unsigned: bool = False,
    where: str = "",
):
    """Everything a client checks before trusting bytes: (index for decide(), signed?).

    Manifest JSON and schema, every file's sha256 and size, no missing or extra file,
    the policy/version it claims, both signatures, then a decision table that parses.
    """
    where = where or f"{policy}/{version}"
    manifest = verify_files(manifest_bytes, files, where)
    check_manifest_identity(manifest, policy, version, where)
    signed = verify_manifest_signatures(manifest, public_keys, where, allow_unsigned=allow_unsigned)
    return build_index(policy, version, manifest, files), signed


class RollbackRefusedError(BundleVerificationError):
    """LATEST names a version older than the one held: a replay, or a rollback not allowed here."""
