"""WeCom callback cryptography ("加解密方案", API.md §2.4), implemented independently of any SDK.

* AES key   = Base64Decode(EncodingAESKey + "=")  -> 32 bytes; AES-256-CBC with IV = key[:16].
* Padding   = PKCS#7 to a multiple of 32 bytes (not the AES block size of 16).
* Plaintext = random(16) | len(msg) as 4 bytes big-endian | msg (UTF-8) | receiveid.
* Signature = lowercase hex SHA-1 of the sorted, concatenated [token, timestamp, nonce, ciphertext].
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import string
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PAD_BLOCK_SIZE = 32
_RANDOM_PREFIX_SIZE = 16
_LENGTH_FIELD = struct.Struct(">I")
_KEY_ALPHABET = frozenset(string.ascii_letters + string.digits)


class CryptoError(Exception):
    """Base class for every callback-crypto failure."""


class InvalidAESKeyError(CryptoError):
    """The EncodingAESKey is not 43 characters of [a-zA-Z0-9] decoding to 32 bytes."""


class InvalidSignatureError(CryptoError):
    """msg_signature does not match sha1(sort(token, timestamp, nonce, ciphertext))."""


class InvalidCiphertextError(CryptoError):
    """The ciphertext is not valid Base64, not block aligned, badly padded or truncated."""


class ReceiveIdMismatchError(CryptoError):
    """The decrypted receiveid is not the expected CorpID."""


def decode_aes_key(encoding_aes_key: str) -> bytes:
    """Turn the 43-character EncodingAESKey into the 32-byte AES key."""
    if len(encoding_aes_key) != 43 or not set(encoding_aes_key) <= _KEY_ALPHABET:
        raise InvalidAESKeyError("EncodingAESKey must be exactly 43 characters from [a-zA-Z0-9]")
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise InvalidAESKeyError("EncodingAESKey must decode to 32 bytes")
    return key


def sign(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """The WeCom msg_signature of a ciphertext (also used for echostr in URL verification)."""
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    # SHA-1 is mandated by the WeCom protocol; it is not our choice of hash.
    return hashlib.sha1(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


def pkcs7_pad(data: bytes, block_size: int = PAD_BLOCK_SIZE) -> bytes:
    amount = block_size - len(data) % block_size
    return data + bytes([amount]) * amount


def pkcs7_unpad(data: bytes, block_size: int = PAD_BLOCK_SIZE) -> bytes:
    if not data:
        raise InvalidCiphertextError("empty plaintext")
    amount = data[-1]
    if not 1 <= amount <= block_size or data[-amount:] != bytes([amount]) * amount:
        raise InvalidCiphertextError("bad PKCS#7 padding")
    return data[:-amount]


class WeComCrypto:
    """Encrypts, decrypts and signs WeCom callback payloads for one (token, key, receiveid)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.token = token
        self.receive_id = receive_id
        self._key = decode_aes_key(encoding_aes_key)
        self._iv = self._key[:16]

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return sign(self.token, timestamp, nonce, encrypt)

    def verify(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Raise InvalidSignatureError unless ``signature`` matches (constant-time comparison)."""
        expected = self.sign(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected, signature.lower()):
            raise InvalidSignatureError("msg_signature does not match")

    def encrypt(self, message: str, *, random_prefix: bytes | None = None) -> str:
        """Return the Base64 ciphertext of ``message``; ``random_prefix`` (16 bytes) is for tests only."""
        prefix = os.urandom(_RANDOM_PREFIX_SIZE) if random_prefix is None else random_prefix
        if len(prefix) != _RANDOM_PREFIX_SIZE:
            raise ValueError("random_prefix must be 16 bytes")
        body = message.encode("utf-8")
        plaintext = prefix + _LENGTH_FIELD.pack(len(body)) + body + self.receive_id.encode("utf-8")
        encryptor = self._cipher().encryptor()
        ciphertext = encryptor.update(pkcs7_pad(plaintext)) + encryptor.finalize()
        return base64.b64encode(ciphertext).decode("ascii")

    def decrypt_with_receive_id(self, encrypt: str) -> tuple[str, str]:
        """Decrypt without checking the receiveid; returns (message, receiveid)."""
        try:
            ciphertext = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidCiphertextError("ciphertext is not valid Base64") from exc
        if not ciphertext or len(ciphertext) % 16:
            raise InvalidCiphertextError("ciphertext length is not a multiple of the AES block size")
        decryptor = self._cipher().decryptor()
        plaintext = pkcs7_unpad(decryptor.update(ciphertext) + decryptor.finalize())
        header_end = _RANDOM_PREFIX_SIZE + _LENGTH_FIELD.size
        if len(plaintext) < header_end:
            raise InvalidCiphertextError("plaintext is shorter than its header")
        (length,) = _LENGTH_FIELD.unpack(plaintext[_RANDOM_PREFIX_SIZE:header_end])
        if header_end + length > len(plaintext):
            raise InvalidCiphertextError("message length field exceeds the plaintext")
        try:
            message = plaintext[header_end : header_end + length].decode("utf-8")
            receive_id = plaintext[header_end + length :].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidCiphertextError("plaintext is not UTF-8") from exc
        return message, receive_id

    def decrypt(self, encrypt: str) -> str:
        """Decrypt and check that the receiveid is ours."""
        message, receive_id = self.decrypt_with_receive_id(encrypt)
        if receive_id != self.receive_id:
            raise ReceiveIdMismatchError(f"receiveid {receive_id!r} is not {self.receive_id!r}")
        return message

    def decrypt_signed(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Verify the signature, then decrypt (what a callback receiver does)."""
        self.verify(signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._iv))
