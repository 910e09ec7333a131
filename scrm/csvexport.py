"""Streamed CSV downloads, shared by the pages and the API.

UTF-8 with a byte order mark: without it Excel reads the file as the system code page and garbles Chinese.
Rows are written as they are produced, so a large export never sits in memory.
"""

import csv
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse

BOM = "\ufeff"


class _Echo:
    """A file-like object whose write() returns the line, so that csv.writer produces strings to stream."""

    def write(self, value: str) -> str:
        return value


def csv_response(rows: Iterable[Iterable], *, filename: str) -> StreamingHttpResponse:
    """A streamed ``text/csv`` attachment of ``rows`` (the first one is the header)."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield BOM
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
