"""A minimal multipart/form-data parser (the ``cgi`` module is gone from Python 3.13)."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser


@dataclass(frozen=True)
class UploadedFile:
    field_name: str
    filename: str
    content_type: str
    data: bytes


class MultipartError(ValueError):
    """The body is not a well-formed multipart/form-data document."""


def parse_multipart(body: bytes, content_type: str) -> dict[str, UploadedFile]:
    """Every part by form-field name (the first one wins when a name repeats)."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise MultipartError("Content-Type must be multipart/form-data with a boundary")
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(header + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise MultipartError("body is not multipart")
    files: dict[str, UploadedFile] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or name in files:
            continue
        payload = part.get_payload(decode=True)
        files[name] = UploadedFile(
            field_name=name,
            filename=part.get_filename() or "",
            content_type=part.get_content_type(),
            data=payload if isinstance(payload, bytes) else b"",
        )
    return files
