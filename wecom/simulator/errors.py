"""Errors of the two faces of the simulator: the WeCom wire protocol and the control API."""

from __future__ import annotations

# Default errmsg per errcode (WeCom's own wording where known). Callers must branch on errcode only.
ERRMSG: dict[int, str] = {
    -1: "system busy",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid userid",
    40004: "invalid media type",
    40005: "invalid file type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40011: "invalid video size",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40050: "chatid not found",
    40056: "invalid agentid",
    40058: "invalid parameter",
    40068: "invalid tagid",
    40071: "tag name exists",
    40096: "invalid external userid",
    40126: "corp tag count exceeds the limit",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41005: "media data missing",
    41009: "missing userid",
    41011: "missing agentid",
    41035: "missing external userid",
    41037: "missing type",
    41038: "missing scene",
    41039: "invalid type",
    41040: "invalid scene",
    41041: "too many users (more than 100)",
    41042: "invalid style",
    41043: "missing config_id",
    41044: "invalid config_id",
    41045: "contact way count reached the limit",
    41046: "missing msgid",
    41047: "invalid msgid",
    41048: "no one to send to",
    41049: "missing welcome_code",
    41050: "invalid welcome_code",
    41051: "welcome_code already used or customer already chatting",
    41054: "member not activated",
    41063: "mass message is being dispatched",
    41064: "too many attachments",
    41065: "invalid attachment type",
    41091: "too many chat ids (at most 5)",
    41093: "mass message already cancelled",
    41094: "remind count exceeds the limit",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    44001: "empty media data",
    44002: "empty post data",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    48002: "api forbidden",
    60020: "not allow to access from your ip",
    60111: "userid not found",
    60123: "invalid party id",
    81013: "user & party & tag all invalid",
    81017: "too many members in the app's visibility, owner_filter required",
    84061: "not external contact",
    84074: "no external contact permission",
    301002: "no privilege to access/modify this resource",
}

JSON_FORMAT_WARNING = "Warning: wrong json format."


class ApiError(Exception):
    """A WeCom errcode answer (always delivered as HTTP 200 + JSON)."""

    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg or ERRMSG.get(errcode, "error")
        super().__init__(f"{self.errcode}: {self.errmsg}")


def invalid_param(message: str) -> ApiError:
    """The generic WeCom answer for a malformed or out-of-range field (40058)."""
    return ApiError(40058, f"invalid parameter: {message}")


class ControlError(Exception):
    """A control-API failure, delivered with a real HTTP status code."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def bad_request(message: str) -> ControlError:
    return ControlError(400, message)


def not_found(message: str) -> ControlError:
    return ControlError(404, message)


def conflict(message: str) -> ControlError:
    return ControlError(409, message)
