"""Typed access to request parameters.

One reader serves JSON bodies (values keep their JSON types), query strings and HTML form posts (values
arrive as strings and are coerced: integers from digits, booleans from on/true/1, lists from comma- or
whitespace-separated text). A value of the wrong type raises the exception built by ``error``, so the wire
API can answer errcode 40058 and the control API HTTP 400 from the same code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

ErrorFactory = Callable[[str], Exception]

_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"0", "false", "off", "no"})
_LIST_SEPARATORS = re.compile(r"[,\s]+")


class Params:
    def __init__(self, data: Mapping[str, Any], error: ErrorFactory) -> None:
        self._data = data
        self._error = error

    @property
    def raw(self) -> Mapping[str, Any]:
        return self._data

    def has(self, name: str) -> bool:
        """True when the field is present and not null, an empty string or an empty list."""
        value = self._data.get(name)
        return value is not None and value != "" and value != []

    def text(self, name: str, default: str = "", *, max_len: int | None = None) -> str:
        value = self._data.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self._error(f"{name} must be a string")
        text = str(value)
        if max_len is not None and len(text) > max_len:
            raise self._error(f"{name} must be at most {max_len} characters")
        return text

    def required_text(self, name: str, *, max_len: int | None = None) -> str:
        text = self.text(name, max_len=max_len).strip()
        if not text:
            raise self._error(f"{name} is required")
        return text

    def integer(
        self, name: str, default: int | None = None, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self._data.get(name)
        if value is None or value == "":
            return default
        number = self._to_int(name, value)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise self._error(f"{name} must be between {minimum} and {maximum}")
        return number

    def required_integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
        number = self.integer(name, minimum=minimum, maximum=maximum)
        if number is None:
            raise self._error(f"{name} is required")
        return number

    def number(
        self, name: str, default: float | None = None, *, minimum: float | None = None
    ) -> float | None:
        value = self._data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise self._error(f"{name} must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self._error(f"{name} must be a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise self._error(f"{name} must be a finite number")
        if minimum is not None and number < minimum:
            raise self._error(f"{name} must be at least {minimum}")
        return number

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise self._error(f"{name} must be a boolean")

    def text_list(self, name: str, *, max_items: int | None = None) -> list[str]:
        value = self._data.get(name)
        if value is None or value == "":
            return []
        if isinstance(value, str):
            items = [item for item in _LIST_SEPARATORS.split(value) if item]
        elif isinstance(value, list) and all(
            isinstance(item, str | int) and not isinstance(item, bool) for item in value
        ):
            items = [str(item) for item in value]
        else:
            raise self._error(f"{name} must be a list of strings")
        if max_items is not None and len(items) > max_items:
            raise self._error(f"{name} must have at most {max_items} items")
        return items

    def integer_list(self, name: str) -> list[int]:
        return [self._to_int(name, item) for item in self.text_list(name)]

    def obj(self, name: str) -> dict[str, Any]:
        value = self._data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._error(f"{name} must be an object")
        return value

    def obj_list(self, name: str) -> list[dict[str, Any]]:
        value = self._data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self._error(f"{name} must be a list of objects")
        return value

    def child(self, name: str) -> Params:
        """Parameters of a nested object, reporting errors the same way."""
        return Params(self.obj(name), self._error)

    def _to_int(self, name: str, value: Any) -> int:
        if isinstance(value, bool):
            raise self._error(f"{name} must be an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value.strip())
        raise self._error(f"{name} must be an integer")
