"""Framework-free request/response values passed between the HTTP server and the handlers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes = b""
    content_type: str = ""
    client_ip: str = ""

    @property
    def is_form(self) -> bool:
        return self.content_type.split(";", 1)[0].strip().lower() == FORM_CONTENT_TYPE


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(status, payload, "application/json; charset=utf-8")

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode("utf-8"), "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(303, b"", "text/plain; charset=utf-8", {"Location": location})

    @classmethod
    def binary(cls, data: bytes, content_type: str) -> Response:
        return cls(200, data, content_type, {"Cache-Control": "no-store"})
