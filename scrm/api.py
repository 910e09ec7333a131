"""Shared API plumbing: error mapping and keyset pagination."""

import base64
import binascii

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, serializers
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from scrm.errors import ApplicationError


def exception_handler(exc, context):
    """Every error leaves the API as ``{"message": ..., "extra": {...}}``."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "extra": exc.extra}, status=400)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"message": "Validation error", "extra": {"fields": response.data}}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        response.data = {"message": str(detail), "extra": {}}
    return response


class KeysetPagination(BasePagination):
    """Keyset (seek) pagination on ``-id``: constant cost however deep the page."""

    page_size = 50
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        size = request.query_params.get("page_size")
        try:
            self.size = min(int(size), self.max_page_size) if size else self.page_size
        except ValueError as exc:
            raise exceptions.ValidationError({"page_size": "must be a number"}) from exc
        if self.size < 1:
            raise exceptions.ValidationError({"page_size": "must be at least 1"})
        cursor = request.query_params.get("cursor")
        if cursor:
            try:
                before = int(base64.urlsafe_b64decode(cursor.encode()).decode())
            except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
                raise exceptions.ValidationError({"cursor": "invalid cursor"}) from exc
            queryset = queryset.filter(id__lt=before)
        rows = list(queryset.order_by("-id")[: self.size + 1])
        self.has_next = len(rows) > self.size
        rows = rows[: self.size]
        self.next_cursor = (
            base64.urlsafe_b64encode(str(rows[-1].id).encode()).decode() if self.has_next and rows else None
        )
        return rows

    def get_paginated_response(self, data):
        return Response({"next_cursor": self.next_cursor, "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "properties": {"next_cursor": {"type": "string", "nullable": True}, "results": schema},
        }


class EmptySerializer(serializers.Serializer):
    pass
