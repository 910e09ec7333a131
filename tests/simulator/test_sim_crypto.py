"""Callback crypto against WeCom's official test vector, plus round trips and tampering."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from wecom.simulator.crypto import (
    InvalidAESKeyError,
    InvalidCiphertextError,
    InvalidSignatureError,
    ReceiveIdMismatchError,
    WeComCrypto,
    pkcs7_pad,
    pkcs7_unpad,
    sign,
)

from .conftest import parse_event_xml

VECTOR = json.loads((Path(__file__).resolve().parents[1] / "wecom/fixtures/test_vector.json").read_text())


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(VECTOR["token"], VECTOR["encoding_aes_key"], VECTOR["corp_id"])


def test_golden_vector_signature_matches() -> None:
    signature = sign(VECTOR["token"], VECTOR["timestamp"], VECTOR["nonce"], VECTOR["encrypt"])
    assert signature == VECTOR["msg_signature"]


def test_golden_vector_decrypts_to_the_text_message(crypto: WeComCrypto) -> None:
    message, receive_id = crypto.decrypt_with_receive_id(VECTOR["encrypt"])
    assert receive_id == VECTOR["corp_id"]
    fields = parse_event_xml(message)
    assert fields["ToUserName"] == VECTOR["corp_id"]
    assert fields["MsgType"] == "text"
    assert fields["Content"] == "hello"
    assert fields["AgentID"] == VECTOR["agent_id"]
    assert crypto.decrypt_signed(
        VECTOR["msg_signature"], VECTOR["timestamp"], VECTOR["nonce"], VECTOR["encrypt"]
    )


def test_encrypt_decrypt_round_trip_with_unicode(crypto: WeComCrypto) -> None:
    message = "<xml><Content><![CDATA[你好, WeCom]]></Content></xml>"
    ciphertext = crypto.encrypt(message)
    assert len(base64.b64decode(ciphertext)) % 32 == 0
    assert crypto.decrypt(ciphertext) == message
    assert crypto.encrypt(message) != ciphertext  # a fresh random prefix every time


def test_encrypt_is_deterministic_given_the_random_prefix(crypto: WeComCrypto) -> None:
    prefix = b"0123456789abcdef"
    assert crypto.encrypt("x", random_prefix=prefix) == crypto.encrypt("x", random_prefix=prefix)
    with pytest.raises(ValueError, match="16 bytes"):
        crypto.encrypt("x", random_prefix=b"short")


def test_wrong_signature_is_rejected(crypto: WeComCrypto) -> None:
    with pytest.raises(InvalidSignatureError):
        crypto.verify("0" * 40, VECTOR["timestamp"], VECTOR["nonce"], VECTOR["encrypt"])


def test_other_receive_id_is_rejected() -> None:
    other = WeComCrypto(VECTOR["token"], VECTOR["encoding_aes_key"], "wwSOMEONEELSE")
    with pytest.raises(ReceiveIdMismatchError):
        other.decrypt(VECTOR["encrypt"])


@pytest.mark.parametrize("ciphertext", ["not base64!", base64.b64encode(b"x" * 15).decode(), ""])
def test_malformed_ciphertext_is_rejected(crypto: WeComCrypto, ciphertext: str) -> None:
    with pytest.raises(InvalidCiphertextError):
        crypto.decrypt(ciphertext)


def test_tampered_ciphertext_fails_padding_or_layout(crypto: WeComCrypto) -> None:
    raw = bytearray(base64.b64decode(VECTOR["encrypt"]))
    raw[-1] ^= 0xFF
    with pytest.raises(InvalidCiphertextError):
        crypto.decrypt(base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize("key", ["short", "a" * 44, "!" * 43])
def test_bad_encoding_aes_key_is_rejected(key: str) -> None:
    with pytest.raises(InvalidAESKeyError):
        WeComCrypto("token", key, "corp")


def test_pkcs7_pads_to_32_bytes() -> None:
    assert len(pkcs7_pad(b"")) == 32
    assert len(pkcs7_pad(b"a" * 32)) == 64
    assert pkcs7_unpad(pkcs7_pad(b"abc")) == b"abc"
    with pytest.raises(InvalidCiphertextError):
        pkcs7_unpad(b"a" * 31 + b"\x00")
