"""The simulator-only control API under ``/sim/`` (JSON in, JSON out; HTML forms are accepted too).

Errors use real HTTP statuses (400 bad input, 404 unknown thing, 409 conflicting state, 504 wait timeout)
with ``{"error": "..."}``. Form posts from the console are answered with a redirect back to the console.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from . import console, png
from .actions import ACTIONS, add_member
from .errors import ControlError, bad_request, not_found
from .params import Params
from .transport import Request, Response

if TYPE_CHECKING:
    from .app import Simulator

ControlHandler = Callable[["Simulator", Request, Params], Response | dict[str, Any]]

MAX_WAIT_SECONDS = 120.0
_QR_PATH = re.compile(r"^/sim/qr/([A-Za-z0-9_-]{1,64})\.png$")
_MEDIA_PATH = re.compile(r"^/sim/media/([A-Za-z0-9_-]{1,128})$")
_ACTION_PATH = re.compile(r"^/sim/actions/([a-z_]+)$")


def handle_control(sim: Simulator, request: Request) -> Response:
    try:
        handler = _route(request)
        params = Params(_body(request), bad_request)
        result = handler(sim, request, params)
    except ControlError as exc:
        if request.is_form:
            return Response.redirect("/sim/?" + urllib.parse.urlencode({"error": exc.message}))
        return Response.json({"error": exc.message}, exc.status)
    if isinstance(result, Response):
        return result
    if request.is_form:
        summary = json.dumps(result, ensure_ascii=False)[:300]
        return Response.redirect("/sim/?" + urllib.parse.urlencode({"ok": f"{request.path}: {summary}"}))
    return Response.json(result)


def _route(request: Request) -> ControlHandler:
    path = request.path
    if path == "/sim":
        return lambda sim, req, p: Response.redirect("/sim/")
    if request.method == "GET":
        if (match := _QR_PATH.match(path)) is not None:
            return _qr_handler(match.group(1))
        if (match := _MEDIA_PATH.match(path)) is not None:
            return _media_handler(match.group(1))
    if request.method == "POST" and (match := _ACTION_PATH.match(path)) is not None:
        return _action_handler(match.group(1))
    handler = _ROUTES.get((request.method, path.rstrip("/") if path != "/sim/" else path))
    if handler is None:
        raise not_found(f"no control endpoint {request.method} {path}")
    return handler


def _body(request: Request) -> dict[str, Any]:
    if request.method != "POST":
        return dict(request.query)
    if request.is_form:
        pairs = urllib.parse.parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        # A blank form field means "not given", so defaults (e.g. a contact way's state) still apply.
        return {key: value for key, value in pairs if value.strip()}
    if not request.body.strip():
        return {}
    try:
        data = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("the JSON body must be an object")
    return data


# --- handlers -----------------------------------------------------------------------------------------------


def _console(sim: Simulator, request: Request, p: Params) -> Response:
    with sim.lock:
        page = console.render(sim, flash_ok=p.text("ok"), flash_error=p.text("error"))
    return Response.html(page)


def _state(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    with sim.lock:
        return {
            "now": sim.clock.now(),
            "clock_offset": sim.clock.offset,
            "corp_id": sim.config.corp_id,
            "agent_id": sim.config.agent_id,
            "world": sim.world.to_dict(),
        }


def _reset(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    seed = p.boolean("seed_demo")
    sim.reset(seed_demo=seed)
    return {"reset": True, "seed_demo": seed}


def _clock_get(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    return {"now": sim.clock.now(), "offset": sim.clock.offset}


def _clock_post(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    advance = p.number("advance_seconds", minimum=0)
    absolute = p.number("now", minimum=0)
    if (advance is None) == (absolute is None):
        raise bad_request("give exactly one of advance_seconds or now")
    with sim.lock:
        if advance is not None:
            sim.clock.advance(advance)
        else:
            sim.clock.set(absolute or 0.0)
        sim.mark_dirty()
    return _clock_get(sim, request, p)


def _config_get(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    return {
        "corp_id": sim.config.corp_id,
        "agent_id": sim.config.agent_id,
        "token": sim.config.token,
        "aes_key": sim.config.aes_key,
        "public_url": sim.public_url,
        **sim.settings.to_dict(),
    }


def _config_post(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    sim.settings.update(p)
    sim.limiter.reset()
    return _config_get(sim, request, p)


def _faults_get(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    return sim.faults.to_dict()


def _faults_post(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    sim.faults.update(p)
    if sim.faults.callback_reorder <= 1:
        sim.delivery.release_held()  # turning reordering off must not strand held callbacks
    return sim.faults.to_dict()


def _token(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    action = p.required_text("action")
    with sim.lock:
        now = sim.clock.now()
        if action == "expire":
            sim.tokens.expire_current(now)
            result: dict[str, Any] = {"action": action}
        elif action == "rotate":
            issued = sim.tokens.rotate(now, sim.settings.token_ttl)
            result = {"action": action, "access_token": issued.token, "expires_at": issued.expires_at}
        else:
            raise bad_request("action must be expire or rotate")
        sim.mark_dirty()
    return result


def _members(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    with sim.lock:
        result = add_member(sim.action_context(), p)
        sim.mark_dirty()
    return result


def _action_handler(name: str) -> ControlHandler:
    action = ACTIONS.get(name)
    if action is None:
        raise not_found(f"unknown action {name!r}; known: {', '.join(sorted(ACTIONS))}")

    def run(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
        with sim.lock:
            result = action(sim.action_context(), p)
            sim.mark_dirty()
        return result

    return run


def _callbacks(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    limit = p.integer("limit", minimum=0)
    return {"callbacks": sim.delivery.records(limit), "pending": sim.delivery.pending_count()}


def _callbacks_wait(sim: Simulator, request: Request, p: Params) -> Response:
    timeout = min(p.number("timeout", 10.0, minimum=0) or 0.0, MAX_WAIT_SECONDS)
    idle = sim.delivery.wait_idle(timeout)
    body = {"idle": idle, "pending": sim.delivery.pending_count()}
    return Response.json(body, 200 if idle else 504)


def _callbacks_release(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    return {"released": sim.delivery.release_held()}


def _callbacks_verify_url(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    return sim.delivery.verify_url()


def _welcome_messages(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    external_userid = p.text("external_userid")
    with sim.lock:
        items = [
            asdict(m)
            for m in sim.world.welcome_messages
            if not external_userid or m.external_userid == external_userid
        ]
    return {"welcome_messages": items}


def _app_messages(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    userid = p.text("userid")
    with sim.lock:
        items = [
            asdict(m)
            for m in sim.world.app_messages
            if not userid or userid in (*m.delivered, *m.dropped, *m.duplicate, *m.invaliduser)
        ]
    return {"app_messages": items}


def _api_calls(sim: Simulator, request: Request, p: Params) -> dict[str, Any]:
    return {"api_calls": sim.api_calls(p.integer("limit", minimum=1)), "totals": sim.api_call_totals()}


def _qr_handler(config_id: str) -> ControlHandler:
    def serve(sim: Simulator, request: Request, p: Params) -> Response:
        with sim.lock:
            known = config_id in sim.world.contact_ways or config_id in sim.world.join_ways
        if not known:
            raise not_found(f"no contact way or join way {config_id!r}")
        return Response.binary(png.placeholder_qr(config_id), "image/png")

    return serve


def _media_handler(media_id: str) -> ControlHandler:
    def serve(sim: Simulator, request: Request, p: Params) -> Response:
        with sim.lock:
            media = sim.world.media.get(media_id)
            data = sim.media_blobs.get(media_id)
        if media is None or data is None:
            raise not_found(f"no media {media_id!r} (media bytes are kept in memory only)")
        return Response.binary(data, media.content_type or "application/octet-stream")

    return serve


_ROUTES: dict[tuple[str, str], ControlHandler] = {
    ("GET", "/sim/"): _console,
    ("GET", "/sim/state"): _state,
    ("POST", "/sim/reset"): _reset,
    ("GET", "/sim/clock"): _clock_get,
    ("POST", "/sim/clock"): _clock_post,
    ("GET", "/sim/config"): _config_get,
    ("POST", "/sim/config"): _config_post,
    ("GET", "/sim/faults"): _faults_get,
    ("POST", "/sim/faults"): _faults_post,
    ("POST", "/sim/token"): _token,
    ("POST", "/sim/members"): _members,
    ("GET", "/sim/callbacks"): _callbacks,
    ("POST", "/sim/callbacks/wait"): _callbacks_wait,
    ("POST", "/sim/callbacks/release"): _callbacks_release,
    ("POST", "/sim/callbacks/verify_url"): _callbacks_verify_url,
    ("GET", "/sim/welcome_messages"): _welcome_messages,
    ("GET", "/sim/app_messages"): _app_messages,
    ("GET", "/sim/api_calls"): _api_calls,
}
