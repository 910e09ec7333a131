"""Wire-protocol basics: tokens, request parsing, frequency limits and injected faults."""

from __future__ import annotations

import time

from .conftest import CORP_ID, SimClient


def test_gettoken_returns_the_cached_token_until_it_expires(sim: SimClient) -> None:
    first, second = sim.gettoken(), sim.gettoken()
    assert first["errcode"] == 0 and first["expires_in"] <= 7200
    assert first["access_token"] == second["access_token"]
    sim.advance(7201)
    assert sim.gettoken()["access_token"] != first["access_token"]


def test_gettoken_rejects_bad_credentials(sim: SimClient) -> None:
    assert sim.gettoken(corpid="wwNOTMYCORP")["errcode"] == 40013
    assert sim.gettoken(secret="wrong")["errcode"] == 40001
    assert sim.gettoken(corpid="")["errcode"] == 41002
    assert sim.gettoken(secret="")["errcode"] == 41004


def test_access_token_missing_unknown_and_expired(sim: SimClient) -> None:
    api = "externalcontact/get_follow_user_list"
    assert sim.get(api, access_token="")["errcode"] == 41001
    assert sim.get(api, access_token="not-a-token")["errcode"] == 40014
    assert sim.get(api)["errcode"] == 0
    sim.advance(7201)
    answer = sim.get(api)
    assert answer["errcode"] == 42001
    assert "hint: [" in answer["errmsg"] and "e=42001" in answer["errmsg"]


def test_token_knobs_expire_and_rotate(sim: SimClient) -> None:
    api = "externalcontact/get_follow_user_list"
    old = sim.token
    assert sim.control("POST", "/sim/token", {"action": "expire"}).status_code == 200
    assert sim.get(api, access_token=old)["errcode"] == 42001
    fresh = sim.gettoken()["access_token"]
    assert fresh != old
    rotated = sim.control("POST", "/sim/token", {"action": "rotate"}).json()["access_token"]
    assert sim.get(api, access_token=fresh)["errcode"] == 40014
    assert sim.get(api, access_token=rotated)["errcode"] == 0
    assert sim.control("POST", "/sim/token", {"action": "explode"}).status_code == 400


def test_malformed_and_empty_json_bodies(sim: SimClient) -> None:
    api = "externalcontact/groupchat/list"
    broken = sim.post(api, b"{not json")
    assert broken["errcode"] == 47001 and "Warning: wrong json format." in broken["errmsg"]
    assert sim.post(api, b"[1, 2]")["errcode"] == 47001
    assert sim.post(api, b"")["errcode"] == 44002
    assert sim.post(api, {"limit": 10})["errcode"] == 0


def test_wrong_method_and_unknown_api(sim: SimClient) -> None:
    assert sim.get("externalcontact/groupchat/list")["errcode"] == 43002
    response = sim.http.get(f"{sim.base_url}/cgi-bin/no/such/api", params={"access_token": sim.token})
    assert response.status_code == 404


def test_rate_limit_answers_45009_then_recovers_after_the_block(sim: SimClient) -> None:
    api = "externalcontact/get_follow_user_list"
    sim.configure(api_rate_limits={api: 3})
    assert [sim.get(api)["errcode"] for _ in range(4)] == [0, 0, 0, 45009]
    assert sim.get("getcallbackip")["errcode"] == 0  # buckets are per API
    sim.advance(30)
    assert sim.get(api)["errcode"] == 45009  # a per-minute breach blocks for 60 s
    sim.advance(31)
    assert sim.get(api)["errcode"] == 0


def test_injected_errors_hit_the_next_n_calls(sim: SimClient) -> None:
    api = "externalcontact/get_follow_user_list"
    body = {"errors": [{"api": api, "errcode": 45033, "count": 2}]}
    assert sim.control("POST", "/sim/faults", body).status_code == 200
    assert sim.control("GET", "/sim/faults").json()["errors"][0]["remaining"] == 2
    assert [sim.get(api)["errcode"] for _ in range(3)] == [45033, 45033, 0]
    assert sim.control("GET", "/sim/faults").json()["errors"] == []


def test_wildcard_fault_also_hits_gettoken(sim: SimClient) -> None:
    token = sim.token
    sim.control(
        "POST", "/sim/faults", {"errors": [{"api": "*", "errcode": -1}, {"api": "*", "errcode": 60020}]}
    )
    assert sim.gettoken()["errcode"] == -1
    assert sim.get("getcallbackip", access_token=token)["errcode"] == 60020
    assert sim.gettoken()["errcode"] == 0


def test_fault_validation_and_clear(sim: SimClient) -> None:
    assert sim.control("POST", "/sim/faults", {"errors": [{"api": "*"}]}).status_code == 400
    sim.control(
        "POST", "/sim/faults", {"errors": [{"errcode": 42001, "count": 5}], "callback_duplicate": True}
    )
    cleared = sim.control("POST", "/sim/faults", {"clear": True}).json()
    assert cleared["errors"] == [] and cleared["callback_duplicate"] is False


def test_response_delay(sim: SimClient) -> None:
    sim.control("POST", "/sim/faults", {"api_delay_ms": 150})
    started = time.monotonic()
    assert sim.get("getcallbackip")["errcode"] == 0
    assert time.monotonic() - started >= 0.15


def test_getcallbackip_and_user_get(demo: SimClient) -> None:
    assert demo.ok("getcallbackip")["ip_list"]
    user = demo.ok("user/get", userid="lina")
    assert (user["userid"], user["name"], user["status"]) == ("lina", "李娜", 1)
    assert demo.get("user/get", userid="nobody")["errcode"] == 60111
    assert demo.get("user/get")["errcode"] == 41009


def test_api_calls_are_logged(sim: SimClient) -> None:
    sim.get("getcallbackip")
    calls = sim.control("GET", "/sim/api_calls").json()["api_calls"]
    assert [c["api"] for c in calls][-2:] == ["gettoken", "getcallbackip"]


def test_clock_control(sim: SimClient) -> None:
    before = sim.control("GET", "/sim/clock").json()["now"]
    assert sim.control("POST", "/sim/clock", {"advance_seconds": 3600}).json()["now"] >= before + 3600
    assert sim.control("POST", "/sim/clock", {"advance_seconds": -5}).status_code == 400
    assert sim.control("POST", "/sim/clock", {}).status_code == 400
    assert sim.control("POST", "/sim/clock", {"now": 1767196800}).json()["now"] < 1767196810


def test_config_rejects_bad_values(sim: SimClient) -> None:
    assert sim.control("POST", "/sim/config", {"callback_url": "ftp://x"}).status_code == 400
    assert sim.control("POST", "/sim/config", {"token_ttl": 0}).status_code == 400
    assert sim.control("POST", "/sim/config", {"mass_msg_quota_period": "year"}).status_code == 400
    config = sim.control("GET", "/sim/config").json()
    assert config["corp_id"] == CORP_ID and config["token_ttl"] == 7200


def test_unknown_control_paths(sim: SimClient) -> None:
    assert sim.control("GET", "/sim/nothing").status_code == 404
    assert sim.control("POST", "/sim/actions/fly_to_the_moon", {}).status_code == 404
    assert sim.control("POST", "/sim/reset", None).status_code == 200
    bad = sim.http.post(
        f"{sim.base_url}/sim/reset", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400
