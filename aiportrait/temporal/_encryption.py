"""An encrypting payload codec: what Temporal stores of the library's workflows is ciphertext.

Temporal keeps every workflow's history (inputs, results, failure details) in its database
for as long as the namespace retains it, readable by whoever can read that database, the Web
UI or ``temporal workflow show``. Temporal recommends a payload codec for personal data:
:class:`EncryptionCodec` encrypts each payload with AES-256-GCM on the client and the worker,
so the server stores and shows only ciphertext. :func:`encrypted_converter` is the library's
data converter with it, and with failure messages moved into the encrypted details::

    converter = aiportrait.temporal.encrypted_converter(key)   # the same key everywhere
    client = await aiportrait.temporal.connect(address, data_converter=converter)

Needs ``cryptography`` (installed with ``aiportrait[temporal]``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
from collections.abc import Sequence
from typing import Any, Final

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from ..errors import InvalidArgument
from ._wire import data_converter

__all__ = ["ENCODING", "EncryptionCodec", "encrypted_converter"]

ENCODING: Final = b"binary/encrypted"
"""The ``encoding`` of an encrypted payload (its metadata says nothing else of it)."""
_KEY_ID: Final = "encryption-key-id"
_NONCE: Final = 12


def _key_bytes(key: bytes | str) -> bytes:
    """A 32-byte key, given as such or as base64 (standard or URL-safe alphabet)."""
    raw: bytes | None = key if isinstance(key, bytes) else None
    if isinstance(key, str):
        text = key.strip()
        try:  # (with altchars, "+/" still read as well)
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise InvalidArgument(
            "an encryption key is 32 bytes (AES-256), given as bytes or in base64 (make one"
            " with: openssl rand -base64 32)"
        )
    return raw


class EncryptionCodec(PayloadCodec):
    """A ``temporalio`` payload codec that encrypts each payload with AES-256-GCM.

    ``key``: 32 bytes, or their base64 text (``openssl rand -base64 32``). Every client and
    worker of the namespace's workflows needs the same key (keep it in a secret store, not in
    the code). An encrypted payload names its key by a fingerprint (``encryption-key-id``,
    which tells nothing of the key), so a payload of another key is refused by name, not as
    garbage; a payload that was never encrypted (a history from before) is read as it is.
    """

    def __init__(self, key: bytes | str) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InvalidArgument(
                "EncryptionCodec needs cryptography: pip install 'aiportrait[temporal]'"
            ) from exc

        raw = _key_bytes(key)
        self._aes = AESGCM(raw)
        self.key_id = hashlib.sha256(b"aiportrait key id\0" + raw).hexdigest()[:16]
        """The key's fingerprint, written beside each payload."""

    def __repr__(self) -> str:
        return f"EncryptionCodec(key_id={self.key_id!r})"

    def __reduce__(self) -> Any:
        raise TypeError("an EncryptionCodec holds a key; it cannot be pickled")

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Each payload encrypted (with a fresh random nonce)."""
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Each encrypted payload decrypted (one that is not encrypted as it is)."""
        return [self._decrypt(p) if p.metadata.get("encoding") == ENCODING else p for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(_NONCE)
        data = nonce + self._aes.encrypt(nonce, payload.SerializeToString(), None)
        return Payload(metadata={"encoding": ENCODING, _KEY_ID: self.key_id.encode()}, data=data)

    def _decrypt(self, payload: Payload) -> Payload:
        from cryptography.exceptions import InvalidTag

        key_id = payload.metadata.get(_KEY_ID, b"").decode(errors="replace")
        if key_id != self.key_id:
            raise ValueError(
                f"a payload encrypted with the key {key_id!r}; this codec has the key"
                f" {self.key_id!r} (every client and worker needs the same key)"
            )
        try:
            plain = self._aes.decrypt(payload.data[:_NONCE], payload.data[_NONCE:], None)
        except InvalidTag:
            raise ValueError(f"a payload of the key {key_id!r} does not decrypt") from None
        return Payload.FromString(plain)


def encrypted_converter(key: bytes | str) -> DataConverter:
    """The library's data converter (:data:`~aiportrait.temporal.data_converter`) with an
    :class:`EncryptionCodec` of ``key``, and failures' messages and stack traces encrypted
    with their details (Temporal's ``DefaultFailureConverterWithEncodedAttributes``): give it
    to :func:`~aiportrait.temporal.connect` (``data_converter=``) on every client and worker,
    and to :func:`~aiportrait.temporal.new_replayer`."""
    return dataclasses.replace(
        data_converter,
        payload_codec=EncryptionCodec(key),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
