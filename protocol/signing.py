"""Per-device Ed25519 signatures.

The device keeps the private key; the registry holds only the public key. So neither the
gateway nor anyone reading the (public) registry can forge a device's data.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def generate_keypair() -> tuple[str, str]:
    """(private_key, public_key), each as base64 of the raw 32 bytes."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes_raw()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


class Signer:
    def __init__(self, private_key_b64: str) -> None:
        try:
            raw = base64.b64decode(private_key_b64, validate=True)
            self._key = Ed25519PrivateKey.from_private_bytes(raw)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("private key must be base64 of 32 raw Ed25519 bytes") from exc

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._key.sign(data)).decode()


class Verifier:
    def __init__(self, public_key_b64: str) -> None:
        try:
            raw = base64.b64decode(public_key_b64, validate=True)
            self._key = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("public key must be base64 of 32 raw Ed25519 bytes") from exc

    def verify(self, data: bytes, signature_b64: str) -> bool:
        try:
            self._key.verify(base64.b64decode(signature_b64, validate=True), data)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True
