"""The root of trust: the one key that wraps every other secret at rest.

A KeyStore wraps and unwraps small secrets (KMS key material, secret access keys)
under a root key that never leaves it. The default backend is a sealed file in the
data directory; an HSM backend (PKCS#11) implements the same protocol.
"""

from __future__ import annotations

from typing import Protocol


class KeyStoreError(Exception):
    """The root of trust cannot be opened (missing, wrong passphrase, corrupt)."""


class KeyStore(Protocol):
    def wrap(self, secret: bytes, label: str) -> bytes:
        """Encrypt secret under the root key; label (e.g. the key ARN) is bound as AAD."""
        ...

    def unwrap(self, wrapped: bytes, label: str) -> bytes:
        """Inverse of wrap; a wrong label or tampered input raises InvalidCiphertext."""
        ...

    def describe(self) -> str:
        """A one-line, secret-free description for logs and health output."""
        ...
