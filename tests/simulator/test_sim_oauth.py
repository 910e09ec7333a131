"""WeCom OAuth: auth/getuserinfo (API.md §8), with the simulator's code convention ``sim-<who>``."""

from __future__ import annotations

from .conftest import SimClient


def test_getuserinfo_tells_members_customers_and_strangers_apart(demo: SimClient) -> None:
    assert demo.ok("auth/getuserinfo", code="sim-zhangwei") == {"errcode": 0, "errmsg": "ok", "userid": "zhangwei"}
    known = demo.ok("auth/getuserinfo", code="sim-wmDemo" + "0" * 26)
    assert known["external_userid"] == "wmDemo" + "0" * 26 and known["openid"].startswith("o")
    stranger = demo.ok("auth/getuserinfo", code="sim-someone-new")
    assert "external_userid" not in stranger and stranger["openid"] != known["openid"]
    assert demo.ok("auth/getuserinfo", code="sim-someone-new")["openid"] == stranger["openid"]  # stable per corp
    assert demo.get("auth/getuserinfo", code="garbage")["errcode"] == 40029
    assert demo.get("auth/getuserinfo")["errcode"] == 41008
