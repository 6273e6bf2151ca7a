"""The one decryption failure.

Every way an authenticated decryption can fail — wrong key, tampered byte, wrong
context, truncated or unparsable input — raises the same exception with the same
message, so callers cannot become an oracle for which check failed.
"""

from __future__ import annotations


class InvalidCiphertext(Exception):
    def __init__(self) -> None:
        super().__init__("ciphertext could not be authenticated")
