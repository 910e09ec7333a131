"""Access tokens: gettoken returns the cached token until it expires; the control API can rotate/expire it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import ids

# Tokens expired longer than this are forgotten (they then answer 40014 instead of 42001).
_RETENTION_SECONDS = 86400


@dataclass
class IssuedToken:
    token: str
    issued_at: float
    expires_at: float
    revoked: bool = False


class TokenStore:
    """Not thread-safe by itself: the Simulator lock guards every call."""

    def __init__(self) -> None:
        self._tokens: dict[str, IssuedToken] = {}
        self._current: str | None = None

    def current_or_new(self, now: float, ttl: int) -> IssuedToken:
        current = self._tokens.get(self._current) if self._current else None
        if current is not None and not current.revoked and current.expires_at > now:
            return current
        return self._issue(now, ttl)

    def check(self, token: str, now: float) -> int:
        """0 when valid, else the WeCom errcode: 40014 unknown/revoked, 42001 expired."""
        issued = self._tokens.get(token)
        if issued is None or issued.revoked:
            return 40014
        if issued.expires_at <= now:
            return 42001
        return 0

    def expire_current(self, now: float) -> None:
        """The current token expires immediately (next use: 42001; next gettoken: a fresh token)."""
        if self._current and (current := self._tokens.get(self._current)):
            current.expires_at = min(current.expires_at, now)

    def rotate(self, now: float, ttl: int) -> IssuedToken:
        """Issue a new token now and revoke the old one (next use of the old one: 40014)."""
        if self._current and (current := self._tokens.get(self._current)):
            current.revoked = True
        return self._issue(now, ttl)

    def to_dict(self) -> dict[str, Any]:
        return {"current": self._current, "tokens": [asdict(t) for t in self._tokens.values()]}

    def load(self, data: dict[str, Any]) -> None:
        self._tokens = {item["token"]: IssuedToken(**item) for item in data.get("tokens", [])}
        self._current = data.get("current")

    def _issue(self, now: float, ttl: int) -> IssuedToken:
        self._tokens = {key: t for key, t in self._tokens.items() if t.expires_at > now - _RETENTION_SECONDS}
        issued = IssuedToken(token=ids.access_token(), issued_at=now, expires_at=now + ttl)
        self._tokens[issued.token] = issued
        self._current = issued.token
        return issued
