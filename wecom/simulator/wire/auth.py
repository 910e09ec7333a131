"""gettoken, getcallbackip, user/get and auth/getuserinfo (API.md §1.1, §2.5, §8)."""

from __future__ import annotations

import hashlib

from ..errors import ApiError
from ..params import Params
from .base import Payload, WireContext, get, require_member


def gettoken(ctx: WireContext, p: Params) -> Payload:
    corpid, secret = p.text("corpid"), p.text("corpsecret")
    if not corpid:
        raise ApiError(41002)
    if not secret:
        raise ApiError(41004)
    if corpid != ctx.config.corp_id:
        raise ApiError(40013)
    if secret != ctx.config.secret:
        raise ApiError(40001, "invalid credential, corpsecret is invalid")
    now = ctx.clock.now()
    issued = ctx.tokens.current_or_new(now, ctx.settings.token_ttl)
    return {"access_token": issued.token, "expires_in": max(1, int(issued.expires_at - now))}


def getcallbackip(ctx: WireContext, p: Params) -> Payload:
    return {"ip_list": list(ctx.settings.callback_ips)}


def user_get(ctx: WireContext, p: Params) -> Payload:
    member = require_member(ctx.world, p.text("userid"))
    payload: Payload = {"userid": member.userid, "name": member.name, "status": member.status}
    if member.mobile:
        payload["mobile"] = member.mobile
    return payload


def auth_getuserinfo(ctx: WireContext, p: Params) -> Payload:
    """WeCom OAuth (API.md §8). The simulator has no authorize page: it takes codes of the form
    ``sim-<member userid>`` (→ userid), ``sim-<external_userid>`` (→ openid + external_userid: a customer) and
    ``sim-<anything else>`` (→ openid only: not a customer). Anything else is an invalid code."""
    code = p.text("code")
    if not code:
        raise ApiError(41008, "missing code")
    if not code.startswith("sim-") or len(code) <= 4:
        raise ApiError(40029, "invalid code")
    who = code[4:]
    if who in ctx.world.members:
        return {"userid": who}
    openid = "o" + hashlib.sha256(f"{ctx.config.corp_id}:{who}".encode()).hexdigest()[:27]
    if who in ctx.world.customers:
        return {"openid": openid, "external_userid": who}
    return {"openid": openid}


ENDPOINTS = [
    get("auth/getuserinfo", auth_getuserinfo),
    get("gettoken", gettoken, authenticated=False, mutates=True),
    get("getcallbackip", getcallbackip),
    get("user/get", user_get),
]
