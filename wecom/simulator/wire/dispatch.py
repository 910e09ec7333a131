"""Turns an HTTP request to ``/cgi-bin/<api>`` into a WeCom answer (always HTTP 200 + errcode JSON).

Order of checks: method -> injected fault -> access_token -> frequency limit -> body -> handler.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from ..errors import JSON_FORMAT_WARNING, ApiError, invalid_param
from ..multipart import MultipartError, UploadedFile, parse_multipart
from ..params import Params
from ..transport import Request, Response
from . import ENDPOINTS
from .base import Endpoint

if TYPE_CHECKING:
    from ..app import Simulator

logger = logging.getLogger(__name__)

API_PREFIX = "/cgi-bin/"


def handle_api(sim: Simulator, request: Request) -> Response:
    name = request.path.removeprefix(API_PREFIX).strip("/")
    endpoint = ENDPOINTS.get(name)
    if endpoint is None:
        # Not a WeCom answer on purpose: an unsimulated API should fail loudly, not look like a WeCom error.
        return Response.json(
            {"errcode": 404, "errmsg": f"the simulator does not implement /cgi-bin/{name}"}, 404
        )
    if delay_ms := sim.faults.api_delay_ms:
        time.sleep(delay_ms / 1000)
    try:
        body: dict[str, Any] = {"errcode": 0, "errmsg": "ok", **_call(sim, endpoint, request)}
    except ApiError as exc:
        body = {"errcode": exc.errcode, "errmsg": _with_hint(exc, request)}
    except Exception:
        logger.exception("simulator API %s crashed", name)
        body = {"errcode": -1, "errmsg": _with_hint(ApiError(-1), request)}
    sim.record_api_call(name, body["errcode"])
    return Response.json(body)


def _call(sim: Simulator, endpoint: Endpoint, request: Request) -> dict[str, Any]:
    if request.method != endpoint.method:
        raise ApiError(43001 if endpoint.method == "GET" else 43002)
    if (rule := sim.faults.take_error(endpoint.name)) is not None:
        raise ApiError(rule.errcode, rule.errmsg or None)
    with sim.lock:
        if endpoint.authenticated:
            _check_token(sim, request)
        if endpoint.rate_limited and not sim.limiter.allow(sim.config.corp_id, endpoint.name):
            raise ApiError(45009)
        data, files = _parameters(endpoint, request)
        payload = endpoint.handler(sim.wire_context(files), Params(data, invalid_param))
        if endpoint.mutates:
            sim.mark_dirty()
        return payload


def _check_token(sim: Simulator, request: Request) -> None:
    token = request.query.get("access_token", "")
    if not token:
        raise ApiError(41001)
    errcode = sim.tokens.check(token, sim.clock.now())
    if errcode:
        raise ApiError(errcode)


def _parameters(endpoint: Endpoint, request: Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    query = {k: v for k, v in request.query.items() if k != "access_token"}
    if endpoint.source == "query":
        return query, {}
    if endpoint.source == "multipart":
        try:
            return query, parse_multipart(request.body, request.content_type)
        except MultipartError as exc:
            raise ApiError(41005, f"media data missing: {exc}") from None
    return _json_body(request.body), {}


def _json_body(raw: bytes) -> dict[str, Any]:
    """wechatpy posts UTF-8 JSON without a Content-Type, so the header is never consulted."""
    if not raw.strip():
        raise ApiError(44002)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(47001, f"data format error, {JSON_FORMAT_WARNING} {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(47001, f"data format error, {JSON_FORMAT_WARNING} the body must be a JSON object")
    return data


def _with_hint(error: ApiError, request: Request) -> str:
    """WeCom-style errmsg suffix; clients must branch on errcode, never on this text."""
    hint = f"{int(time.time())}_{secrets.token_hex(8)}"
    return (
        f"{error.errmsg}, hint: [{hint}], from ip: {request.client_ip or '127.0.0.1'}, "
        f"more info at https://open.work.weixin.qq.com/devtool/query?e={error.errcode}"
    )
