"""Identifier generators that look like WeCom's (API.md §10); clients never validate their shape."""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHANUMERIC = string.ascii_letters + string.digits
_TOKEN_ALPHABET = _ALPHANUMERIC + "-_"


def random_string(length: int, alphabet: str = _ALPHANUMERIC) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def external_userid() -> str:
    """A WeChat customer id: ``wm`` + 30 characters."""
    return "wm" + random_string(30)


def chat_id() -> str:
    return "wr" + random_string(30)


def tag_id() -> str:
    """Corp tags and tag groups share the ``et`` + 30 shape."""
    return "et" + random_string(30)


def mass_msgid() -> str:
    return "msg" + random_string(30)


def config_id() -> str:
    return secrets.token_hex(16)


def welcome_code() -> str:
    return random_string(43, _TOKEN_ALPHABET)


def access_token() -> str:
    return random_string(128, _TOKEN_ALPHABET)


def media_id() -> str:
    return "3" + random_string(63, _TOKEN_ALPHABET)


def app_msgid() -> str:
    return random_string(40, _TOKEN_ALPHABET)


def callback_nonce() -> str:
    return str(secrets.randbelow(9_000_000_000) + 1_000_000_000)


def member_version(chat: str, revision: int) -> str:
    """Opaque 32-hex member-list version, derived deterministically from a per-chat revision counter."""
    return hashlib.md5(f"{chat}:{revision}".encode(), usedforsecurity=False).hexdigest()
