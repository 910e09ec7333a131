import base64
import json
from pathlib import Path

import pytest

from wecom import signatures

VECTOR = json.loads((Path(__file__).resolve().parent / "fixtures/test_vector.json").read_text())
KEY = signatures.aes_key_from_encoding(VECTOR["encoding_aes_key"])


def test_official_vector_signature_matches():
    sig = signatures.signature(VECTOR["token"], VECTOR["timestamp"], VECTOR["nonce"], VECTOR["encrypt"])
    assert sig == VECTOR["msg_signature"]


def test_official_vector_decrypts_to_text_message():
    xml = signatures.decrypt(key=KEY, encrypted=VECTOR["encrypt"], receive_id=VECTOR["corp_id"])
    assert xml.startswith(b"<xml>")
    assert b"<MsgType><![CDATA[text]]></MsgType>" in xml


def test_wrong_receive_id_is_refused():
    with pytest.raises(signatures.DecryptError, match="receiveid"):
        signatures.decrypt(key=KEY, encrypted=VECTOR["encrypt"], receive_id="wwSOMEONEELSE")


def test_bad_signature_is_refused():
    with pytest.raises(signatures.SignatureError):
        signatures.verify_signature(token=VECTOR["token"], timestamp=VECTOR["timestamp"], nonce="1",
                                    encrypted=VECTOR["encrypt"], msg_signature=VECTOR["msg_signature"])


def test_round_trip_pads_to_32_byte_blocks():
    message = b"<xml><Event>x</Event></xml>"
    encrypted = signatures.encrypt(key=KEY, message=message, receive_id="wwcorp")
    assert len(base64.b64decode(encrypted)) % 32 == 0
    assert signatures.decrypt(key=KEY, encrypted=encrypted, receive_id="wwcorp") == message


@pytest.mark.parametrize("garbage", ["", "not base64!!", base64.b64encode(b"short").decode(),
                                     base64.b64encode(b"\x00" * 32).decode()])
def test_garbage_ciphertext_raises_decrypt_error(garbage):
    with pytest.raises(signatures.DecryptError):
        signatures.decrypt(key=KEY, encrypted=garbage, receive_id="wwcorp")
