"""Errors raised by the gateway. Callers branch on ``permanent``, never on message text."""

# errcodes worth retrying: busy, rate limits, concurrency, data-version conflict, mass message still dispatching.
TRANSIENT_CODES = frozenset({-1, 45009, 45033, 6000, 41063})
# token problems: refresh once, retry once (API.md §1.1).
TOKEN_CODES = frozenset({40014, 42001, 41001})
# credentials or IP allow-list: nothing will work until a human fixes configuration.
AUTH_CODES = frozenset({40001, 40013, 40091, 41002, 41004, 60020, 48002})


class WeComError(Exception):
    def __init__(self, code: int | None, message: str, *, permanent: bool, api: str = "") -> None:
        super().__init__(f"WeCom {api or 'call'} failed: errcode={code} {message}")
        self.code = code
        self.message = message
        self.permanent = permanent
        self.api = api


class WeComTransientError(WeComError):
    """Worth retrying later: busy, rate-limited, a network failure before the request was accepted."""

    def __init__(self, code: int | None, message: str, *, api: str = "") -> None:
        super().__init__(code, message, permanent=False, api=api)


class WeComRateLimited(WeComTransientError):
    """Our own token bucket (or WeCom's 45009/45033) says wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, api: str = "", retry_after: float = 1.0, code: int | None = None) -> None:
        super().__init__(code, message, api=api)
        self.retry_after = retry_after


class WeComUnknownOutcome(WeComError):
    """The request left but no answer came back (timeout): it may or may not have taken effect."""

    def __init__(self, message: str, *, api: str = "") -> None:
        super().__init__(None, message, permanent=False, api=api)


class WeComAuthError(WeComError):
    """Bad credentials or an untrusted IP: permanent until configuration changes."""

    def __init__(self, code: int | None, message: str, *, api: str = "") -> None:
        super().__init__(code, message, permanent=True, api=api)


class WeComConfigError(Exception):
    """Required WECOM_* settings are missing or malformed."""


def error_for_code(code: int, message: str, *, api: str) -> WeComError:
    if code in (45009, 45033):
        return WeComRateLimited(message, api=api, retry_after=60.0 if code == 45009 else 1.0, code=code)
    if code in TRANSIENT_CODES:
        return WeComTransientError(code, message, api=api)
    if code in AUTH_CODES or code in TOKEN_CODES:
        return WeComAuthError(code, message, api=api)
    return WeComError(code, message, permanent=True, api=api)
