"""Fault injection: forced errcodes, slow responses, and slow / duplicated / reordered callbacks."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from .errors import bad_request
from .params import Params

ANY_API = "*"


@dataclass
class ErrorRule:
    """Answer ``errcode`` to the next ``remaining`` calls of ``api`` ("*" = any API, gettoken included)."""

    api: str
    errcode: int
    remaining: int
    errmsg: str = ""


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[ErrorRule] = []
        self.api_delay_ms = 0
        self.callback_delay_ms = 0
        self.callback_duplicate = False
        self.callback_reorder = 0

    def take_error(self, api: str) -> ErrorRule | None:
        """The first matching rule, consuming one of its calls."""
        with self._lock:
            for rule in self._rules:
                if rule.api in (api, ANY_API):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def update(self, p: Params) -> None:
        """Apply a ``POST /sim/faults`` body; ``clear: true`` resets everything first."""
        rules = [_parse_rule(Params(item, bad_request)) for item in p.obj_list("errors")]
        api_delay = p.integer("api_delay_ms", minimum=0)
        callback_delay = p.integer("callback_delay_ms", minimum=0)
        reorder = p.integer("callback_reorder", minimum=0)
        with self._lock:
            if p.boolean("clear"):
                self._clear_locked()
            self._rules.extend(rules)
            if api_delay is not None:
                self.api_delay_ms = api_delay
            if callback_delay is not None:
                self.callback_delay_ms = callback_delay
            if "callback_duplicate" in p.raw:
                self.callback_duplicate = p.boolean("callback_duplicate")
            if reorder is not None:
                self.callback_reorder = reorder

    def clear(self) -> None:
        with self._lock:
            self._clear_locked()

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "errors": [asdict(rule) for rule in self._rules],
                "api_delay_ms": self.api_delay_ms,
                "callback_delay_ms": self.callback_delay_ms,
                "callback_duplicate": self.callback_duplicate,
                "callback_reorder": self.callback_reorder,
            }

    def _clear_locked(self) -> None:
        self._rules.clear()
        self.api_delay_ms = 0
        self.callback_delay_ms = 0
        self.callback_duplicate = False
        self.callback_reorder = 0


def _parse_rule(p: Params) -> ErrorRule:
    errcode = p.integer("errcode")
    if errcode is None or errcode == 0:
        raise bad_request("each error rule needs a non-zero errcode")
    return ErrorRule(
        api=p.text("api", ANY_API).strip().strip("/") or ANY_API,
        errcode=errcode,
        remaining=p.integer("count", 1, minimum=1) or 1,
        errmsg=p.text("errmsg"),
    )
