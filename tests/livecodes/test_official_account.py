"""Identifying a scanner through a WeChat official account's silent OAuth (API.md §8): routing sticky by openid
across cookies and devices, known customers by unionid, refused codes, and the wire protocol via the simulator."""

from urllib.parse import parse_qs, urlparse

import pytest

from livecodes import hotpath, services
from tests.factories import ContactFactory, FollowRelationFactory
from wecom.errors import WeComError
from wecom.gateway import OAIdentity, OAuthIdentity

WECHAT = {"HTTP_USER_AGENT": "Mozilla/5.0 (iPhone) AppleWebKit/605 MicroMessenger/8.0.50 NetType/WIFI"}
WECOM_CLIENT = {"HTTP_USER_AGENT": "Mozilla/5.0 (iPhone) AppleWebKit/605 MicroMessenger/8.0.50 wxwork/4.1.30"}


@pytest.fixture
def official_account(settings, fake_wecom):
    settings.LIVECODE_OA_APPID = "wxTESTOA000000001"
    settings.LIVECODE_OA_SECRET = "oa-secret"
    settings.LIVECODE_PUBLIC_BASE_URL = "https://scrm.example.com"
    return fake_wecom


@pytest.fixture
def rotating_code(corp, staff_a, staff_b, fake_wecom):
    code = services.livecode_create(corp=corp, kind="staff", name="门店码", mode="round_robin")
    services.target_add_staff(code=code, staff=staff_a)
    services.target_add_staff(code=code, staff=staff_b)
    return code


def shown_staff(code, page: bytes) -> str:
    text = page.decode()
    shown = [t.staff.userid for t in code.targets.select_related("staff") if t.wecom_qr_url in text]
    assert len(shown) == 1, text
    return shown[0]


def scan_identified(client, code, oa_code: str) -> bytes:
    """A first scan in WeChat: redirected to the official account, then sent back with a code."""
    assert client.get(f"/l/{code.slug}", **WECHAT).status_code == 302
    response = client.get(f"/l/{code.slug}?code={oa_code}&state=lcoa", **WECHAT)
    assert response.status_code == 200
    return response.content


def test_a_first_scan_in_wechat_goes_through_the_official_account_once(client, official_account, rotating_code):
    response = client.get(f"/l/{rotating_code.slug}", **WECHAT)
    assert response.status_code == 302
    target = urlparse(response["Location"])
    query = parse_qs(target.query)
    assert target.netloc == "open.weixin.qq.com" and target.fragment == "wechat_redirect"
    assert query["appid"] == ["wxTESTOA000000001"] and query["scope"] == ["snsapi_base"]
    assert query["state"] == ["lcoa"] and "agentid" not in query
    assert query["redirect_uri"] == [f"https://scrm.example.com/l/{rotating_code.slug}"]
    assert client.get(f"/l/{rotating_code.slug}", **WECHAT).status_code == 200  # declined: never asked again


def test_inside_the_wecom_client_wecom_oauth_is_used_when_both_are_on(client, settings, official_account,
                                                                      rotating_code):
    settings.LIVECODE_WECOM_OAUTH = True
    wecom = parse_qs(urlparse(client.get(f"/l/{rotating_code.slug}", **WECOM_CLIENT)["Location"]).query)
    assert wecom["appid"] == ["wwTESTCORP0000001"] and wecom["state"] == ["lcid"]
    client.cookies.clear()
    wechat = parse_qs(urlparse(client.get(f"/l/{rotating_code.slug}", **WECHAT)["Location"]).query)
    assert wechat["appid"] == ["wxTESTOA000000001"] and wechat["state"] == ["lcoa"]


def test_the_same_person_keeps_their_target_with_a_new_cookie_or_device(client, official_account, rotating_code):
    official_account.oa_codes.update({"p1": OAIdentity(openid="oPERSON"), "p2": OAIdentity(openid="oPERSON"),
                                      "q1": OAIdentity(openid="oOTHER")})
    first = shown_staff(rotating_code, scan_identified(client, rotating_code, "p1"))
    # Anonymous scanners move the rotation on: a fresh visitor now gets the other staff member.
    fresh = []
    for _ in range(3):
        client.cookies.clear()
        fresh.append(shown_staff(rotating_code, client.get(f"/l/{rotating_code.slug}").content))
    assert set(fresh) == {"guide_a", "guide_b"}
    # The person comes back on another phone (no cookie): same openid, same target, whatever the rotation says.
    for _ in range(2):
        client.cookies.clear()
        official_account.oa_codes["p2"] = OAIdentity(openid="oPERSON")
        assert shown_staff(rotating_code, scan_identified(client, rotating_code, "p2")) == first
        # and their new cookie keeps them there without asking the official account again
        assert shown_staff(rotating_code, client.get(f"/l/{rotating_code.slug}", **WECHAT).content) == first
    assert [c for c in official_account.calls if c[0] == "get_oa_identity"] == \
        [("get_oa_identity", ("p1",)), ("get_oa_identity", ("p2",)), ("get_oa_identity", ("p2",))]
    # The openid itself is nowhere in Redis: only its keyed pseudonym.
    from scrm.redis import get_redis

    keys = [k.decode() for k in get_redis().scan_iter(hotpath.key_person("*"))]
    assert keys and not any("oPERSON" in k for k in keys)
    assert hotpath.key_person(hotpath.person_key("oPERSON")) in keys


def test_a_known_customer_is_recognised_by_unionid(client, official_account, corp, staff_b, rotating_code):
    contact = ContactFactory(corp=corp, unionid="uKNOWN")
    FollowRelationFactory(contact=contact, staff=staff_b)
    official_account.oa_codes["k1"] = OAIdentity(openid="oK", unionid="uKNOWN")
    page = scan_identified(client, rotating_code, "k1")
    assert shown_staff(rotating_code, page) == "guide_b" and "您已添加过这位员工" in page.decode()


def test_a_refused_code_routes_as_usual_and_remembers_nothing(client, official_account, rotating_code):
    page = scan_identified(client, rotating_code, "never-issued")
    assert "长按识别二维码" in page.decode()
    assert client.get(f"/l/{rotating_code.slug}", **WECHAT).status_code == 200  # no second redirect
    # a WeCom OAuth answer cannot be replayed into the official-account path (different state)
    official_account.oauth_codes["w1"] = OAuthIdentity(openid="oW")
    assert client.get(f"/l/{rotating_code.slug}?code=w1&state=lcid", **WECHAT).status_code == 200
    assert not [c for c in official_account.calls if c[0] == "get_oauth_user"]


def test_the_http_backend_speaks_sns_oauth2_with_the_simulator(wecom_sim, settings):
    from wecom import gateway

    settings.LIVECODE_OA_APPID, settings.LIVECODE_OA_SECRET = wecom_sim.config.oa_appid, wecom_sim.config.oa_secret
    settings.WECHAT_OA_API_BASE = f"{wecom_sim.url}/"
    gateway.reset()
    wecom_sim.control("members", {"userid": "sales_li", "name": "李销售"})
    customer = wecom_sim.control("actions/add_contact", {"userid": "sales_li", "name": "老客", "unionid": "uSIM1"})

    stranger = gateway.oa_identity_get(code="sim-oa-newcomer~1")
    again = gateway.oa_identity_get(code="sim-oa-newcomer~2")
    assert stranger.openid.startswith("o") and stranger.openid == again.openid and stranger.unionid == ""
    known = gateway.oa_identity_get(code=f"sim-oa-{customer['external_userid']}")
    assert known.unionid == "uSIM1" and known.openid != stranger.openid
    with pytest.raises(WeComError) as used:
        gateway.oa_identity_get(code="sim-oa-newcomer~1")
    assert used.value.code == 40163  # single use
    with pytest.raises(WeComError) as invalid:
        gateway.oa_identity_get(code="forged")
    assert invalid.value.code == 40029
    settings.LIVECODE_OA_SECRET = "wrong"
    gateway.reset()
    with pytest.raises(WeComError) as secret:
        gateway.oa_identity_get(code="sim-oa-newcomer~3")
    assert secret.value.code == 40125
    settings.LIVECODE_OA_APPID = settings.LIVECODE_OA_SECRET = ""
    with pytest.raises(ValueError, match="no official account"):
        gateway.oa_identity_get(code="sim-oa-newcomer~4")
