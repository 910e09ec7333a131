"""Recognising a known contact on the landing page through WeCom OAuth (API.md §8)."""

from urllib.parse import parse_qs, urlparse

import pytest

from livecodes import services
from tests.factories import ContactFactory, FollowRelationFactory, GroupChatFactory, GroupMemberFactory
from wecom.gateway import OAuthIdentity

WECHAT = {"HTTP_USER_AGENT": "Mozilla/5.0 (iPhone) AppleWebKit/605 MicroMessenger/8.0.50 NetType/WIFI"}


@pytest.fixture
def oauth(settings, fake_wecom):
    settings.LIVECODE_WECOM_OAUTH = True
    settings.LIVECODE_PUBLIC_BASE_URL = "https://scrm.example.com"
    return fake_wecom


@pytest.fixture
def staff_code(corp, staff_a, staff_b, fake_wecom):
    code = services.livecode_create(corp=corp, kind="staff", name="导购码")
    services.target_add_staff(code=code, staff=staff_a)
    services.target_add_staff(code=code, staff=staff_b)
    return code


def back_from_oauth(client, code, oauth_code):
    """The redirect to WeCom, then WeCom sending the browser back with a code."""
    assert client.get(f"/l/{code.slug}", **WECHAT).status_code == 302
    return client.get(f"/l/{code.slug}?code={oauth_code}&state=lcid", **WECHAT)


def qr_urls(code):
    return {t.staff.userid: t.wecom_qr_url for t in code.targets.select_related("staff")}


def test_a_first_scan_inside_wechat_goes_through_wecom_oauth_once(client, oauth, staff_code):
    response = client.get(f"/l/{staff_code.slug}", **WECHAT)
    assert response.status_code == 302
    target = urlparse(response["Location"])
    query = parse_qs(target.query)
    assert target.netloc == "open.weixin.qq.com" and target.fragment == "wechat_redirect"
    assert query["appid"] == ["wwTESTCORP0000001"] and query["scope"] == ["snsapi_base"]
    assert query["redirect_uri"] == [f"https://scrm.example.com/l/{staff_code.slug}"] and query["state"] == ["lcid"]
    # Declined or not recognised: the cookie remembers the attempt, the next scan is not redirected again.
    assert client.get(f"/l/{staff_code.slug}", **WECHAT).status_code == 200
    # Outside WeChat/WeCom nobody is redirected.
    client.cookies.clear()
    assert client.get(f"/l/{staff_code.slug}").status_code == 200


def test_a_customer_who_already_added_a_pool_staff_member_is_sent_back_to_them(client, oauth, corp, staff_b,
                                                                                 staff_code):
    contact = ContactFactory(corp=corp)
    FollowRelationFactory(contact=contact, staff=staff_b)
    oauth.oauth_codes["c1"] = OAuthIdentity(openid="oX", external_userid=contact.external_userid)
    page = back_from_oauth(client, staff_code, "c1").content.decode()
    assert qr_urls(staff_code)["guide_b"] in page and "您已添加过这位员工" in page
    again = client.get(f"/l/{staff_code.slug}", **WECHAT)  # no second OAuth, same staff member
    assert again.status_code == 200 and qr_urls(staff_code)["guide_b"] in again.content.decode()
    client.get(f"/l/{staff_code.slug}?code=c1&state=lcid", **WECHAT)  # a reloaded or shared URL: not asked again
    assert [c for c in oauth.calls if c[0] == "get_oauth_user"] == [("get_oauth_user", ("c1",))]


def test_a_customer_already_in_a_pool_group_is_shown_that_group(client, oauth, corp):
    code = services.livecode_create(corp=corp, kind="group", name="新品群")
    first, second = GroupChatFactory(corp=corp, name="一群"), GroupChatFactory(corp=corp, name="二群")
    services.target_add_group(code=code, chat=first)
    services.target_add_group(code=code, chat=second)
    contact = ContactFactory(corp=corp)
    GroupMemberFactory(chat=second, contact=contact)
    oauth.oauth_codes["c2"] = OAuthIdentity(openid="oY", external_userid=contact.external_userid)
    page = back_from_oauth(client, code, "c2").content.decode()
    assert "您已在这个群里" in page
    # a stranger is routed by the pool's order as usual
    stranger = services.landing_identify(code="unknown-code")
    assert stranger.known == frozenset() and stranger.contact == ""


def test_an_invalid_code_or_a_non_customer_routes_as_usual(client, oauth, staff_code):
    oauth.oauth_codes["c3"] = OAuthIdentity(openid="oZ")  # not a customer yet
    for code in ("c3", "never-issued"):
        client.cookies.clear()
        response = back_from_oauth(client, staff_code, code)
        assert response.status_code == 200 and "长按识别二维码" in response.content.decode()
        assert client.get(f"/l/{staff_code.slug}", **WECHAT).status_code == 200  # not redirected again


def test_the_http_backend_resolves_oauth_codes_through_auth_getuserinfo(wecom_sim):
    from wecom import gateway
    from wecom.errors import WeComError

    stranger = gateway.oauth_user_get(code="sim-someone-new")
    assert stranger.openid.startswith("o") and stranger.external_userid == "" and stranger.userid == ""
    with pytest.raises(WeComError) as refused:
        gateway.oauth_user_get(code="not-a-code")
    assert refused.value.code == 40029
    with pytest.raises(ValueError):
        gateway.oauth_user_get(code="")
