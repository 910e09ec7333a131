"""A WeChat official account's web OAuth, ``GET /sns/oauth2/access_token`` (API.md §8), as api.weixin.qq.com
answers it: the code of the authorize redirect becomes an ``openid`` (per account and person) and, sometimes, a
``unionid``.

The simulator has no authorize page. Codes look like ``sim-oa-<who>`` or ``sim-oa-<who>~<anything>`` (the suffix
makes several single-use codes for one person). ``<who>`` names the person: the openid is derived from the
account and ``<who>``; a ``unionid`` comes back only when ``<who>`` is a simulated customer who has one (as with
``snsapi_base``, which returns it only for people WeChat already knows through the account). Each code works once.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from ..transport import Request, Response

if TYPE_CHECKING:
    from ..app import Simulator

OA_OAUTH_PATH = "/sns/oauth2/access_token"


def _error(errcode: int, errmsg: str) -> Response:
    return Response.json({"errcode": errcode, "errmsg": errmsg})


def handle_oa_oauth(sim: Simulator, request: Request) -> Response:
    if request.method != "GET":
        return _error(43001, "require GET method")
    q = request.query
    config = sim.config
    if not q.get("appid"):
        return _error(41002, "appid missing")
    if q["appid"] != config.oa_appid:
        return _error(40013, "invalid appid")
    if q.get("secret") != config.oa_secret:
        return _error(40125, "invalid appsecret")
    if q.get("grant_type") != "authorization_code":
        return _error(40002, "invalid grant_type")
    code = q.get("code", "")
    if not code:
        return _error(41008, "missing code")
    if not code.startswith("sim-oa-") or len(code) <= len("sim-oa-"):
        return _error(40029, "invalid code")
    with sim.lock:
        if code in sim.oa_codes_used:
            return _error(40163, "code been used")
        sim.oa_codes_used.add(code)
        who = code[len("sim-oa-"):].split("~", 1)[0]
        customer = sim.world.customers.peek(who)
        unionid = customer.unionid if customer is not None else ""
    openid = "o" + hashlib.sha256(f"{config.oa_appid}:{who}".encode()).hexdigest()[:27]
    payload = {"access_token": "sim-oa-" + secrets.token_hex(16), "expires_in": 7200,
               "refresh_token": "sim-oa-r-" + secrets.token_hex(16), "openid": openid, "scope": "snsapi_base"}
    if unionid:
        payload["unionid"] = unionid
    return Response.json(payload)
