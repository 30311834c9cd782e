"""Per-device Ed25519 signatures (RFC 8032), with libsodium through PyNaCl.

The device keeps the private key; the registry holds only the public key. So neither the
gateway nor anyone reading the (public) registry can forge a device's data. Keys are base64 of
the raw 32 bytes (the private key is the RFC 8032 seed), signatures base64 of the 64 bytes.
libsodium was chosen for its verification speed, which bounds the ingest's throughput
(bench.pipeline prints the checks per second), and it releases the GIL while it verifies.
"""

from __future__ import annotations

import base64
import binascii

from nacl.exceptions import BadSignatureError
from nacl.exceptions import ValueError as NaclValueError
from nacl.signing import SigningKey, VerifyKey


def generate_keypair() -> tuple[str, str]:
    """(private_key, public_key), each as base64 of the raw 32 bytes."""
    key = SigningKey.generate()
    return base64.b64encode(bytes(key)).decode(), base64.b64encode(bytes(key.verify_key)).decode()


def _raw32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} must be base64 of 32 raw Ed25519 bytes") from exc
    if len(raw) != 32:
        raise ValueError(f"{what} must be base64 of 32 raw Ed25519 bytes, not {len(raw)}")
    return raw


class Signer:
    def __init__(self, private_key_b64: str) -> None:
        self._key = SigningKey(_raw32(private_key_b64, "private key"))

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._key.sign(data).signature).decode()


class Verifier:
    def __init__(self, public_key_b64: str) -> None:
        try:
            self._key = VerifyKey(_raw32(public_key_b64, "public key"))
        except NaclValueError as exc:  # not a point on the curve
            raise ValueError(f"public key is not an Ed25519 key: {exc}") from exc

    def verify(self, data: bytes, signature_b64: str) -> bool:
        try:
            signature = base64.b64decode(signature_b64, validate=True)
            if len(signature) != 64:
                return False
            self._key.verify(data, signature)
        except (BadSignatureError, binascii.Error, ValueError):
            return False
        return True
