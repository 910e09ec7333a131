"""WeCom callback signature and encryption (API.md §2.4). Pure: no Django, no I/O.

AES-256-CBC, key = base64(EncodingAESKey + "="), IV = key[:16], PKCS#7 padded to 32-byte blocks.
Plaintext = random(16) | len(msg) as 4 bytes big-endian | msg | receiveid.
"""

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


class SignatureError(Exception):
    """The signature does not match: the request did not come from someone holding our token."""


class DecryptError(Exception):
    """The ciphertext is not valid WeCom encryption for our key and corp."""


def aes_key_from_encoding(encoding_aes_key: str) -> bytes:
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("EncodingAESKey is not valid base64") from exc
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes (43 characters)")
    return key


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    parts = sorted([token, timestamp, nonce, encrypted])
    return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()  # noqa: S324 - WeCom's protocol


def verify_signature(*, token: str, timestamp: str, nonce: str, encrypted: str, msg_signature: str) -> None:
    expected = signature(token, timestamp, nonce, encrypted)
    if not hmac.compare_digest(expected, (msg_signature or "").lower()):
        raise SignatureError("msg_signature does not match")


def decrypt(*, key: bytes, encrypted: str, receive_id: str) -> bytes:
    """Return the message bytes (UTF-8 XML); refuse anything malformed or meant for another corp."""
    try:
        data = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptError("ciphertext is not base64") from exc
    if not data or len(data) % 16:
        raise DecryptError("ciphertext length is not a multiple of the AES block")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if pad < 1 or pad > BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise DecryptError("bad padding")
    plain = plain[:-pad]
    if len(plain) < 20:
        raise DecryptError("plaintext too short")
    (length,) = struct.unpack(">I", plain[16:20])
    if 20 + length > len(plain):
        raise DecryptError("message length exceeds plaintext")
    message = plain[20 : 20 + length]
    rid = plain[20 + length :].decode("utf-8", errors="replace")
    if rid != receive_id:
        raise DecryptError("receiveid does not match our corp id")
    return message


def encrypt(*, key: bytes, message: bytes, receive_id: str, random_prefix: bytes | None = None) -> str:
    prefix = random_prefix if random_prefix is not None else os.urandom(16)
    plain = prefix + struct.pack(">I", len(message)) + message + receive_id.encode("utf-8")
    pad = BLOCK - len(plain) % BLOCK
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")
