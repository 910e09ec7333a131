"""The real backend (wechatpy subclass) against the WeCom simulator over loopback HTTP."""

import pytest

from wecom import gateway
from wecom.contracts import MessageContent
from wecom.errors import WeComAuthError, WeComError, WeComRateLimited, WeComTransientError


def api_calls(sim, api: str) -> list[dict]:
    calls = sim.control("api_calls", method="GET")
    rows = calls["api_calls"]
    return [c for c in rows if c.get("api") == api]


@pytest.fixture
def member(wecom_sim):
    wecom_sim.control("members", {"userid": "sales_li", "name": "李销售"})
    return "sales_li"


def add_customer(sim, userid="sales_li", name="小红", state="") -> str:
    return sim.control("actions/add_contact", {"userid": userid, "name": name, "state": state})["external_userid"]


@pytest.mark.django_db
def test_reads_staff_and_customers_through_wechatpy(wecom_sim, member):
    ext = add_customer(wecom_sim, state="poster_1")
    assert gateway.follow_users_list() == ["sales_li"]
    assert gateway.staff_get(userid="sales_li").name == "李销售"
    assert gateway.external_contact_ids_list(userid="sales_li") == [ext]
    contact = gateway.external_contact_get(external_userid=ext)
    assert contact.name == "小红"
    assert contact.follow_users[0].userid == "sales_li"
    assert contact.follow_users[0].state == "poster_1"


@pytest.mark.django_db
def test_access_token_is_fetched_once_and_shared_through_redis(wecom_sim, member):
    gateway.follow_users_list()
    gateway.reset()  # a new process: the token comes from Redis, not from gettoken
    gateway.follow_users_list()
    gateway.staff_get(userid="sales_li")
    assert len(api_calls(wecom_sim, "gettoken")) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["expire", "rotate"])
def test_rejected_token_is_refreshed_once_and_the_call_retried(wecom_sim, member, action):
    gateway.follow_users_list()
    wecom_sim.control("token", {"action": action})
    assert gateway.follow_users_list() == ["sales_li"]
    assert len(api_calls(wecom_sim, "gettoken")) == 2


@pytest.mark.django_db
def test_a_token_error_that_persists_fails_after_one_refresh_instead_of_looping(wecom_sim, member):
    gateway.follow_users_list()
    wecom_sim.control("faults", {"errors": [{"api": "externalcontact/get_follow_user_list", "errcode": 40014,
                                             "count": 100}]})
    with pytest.raises(WeComAuthError) as info:
        gateway.follow_users_list()
    assert info.value.code == 40014
    assert len(api_calls(wecom_sim, "externalcontact/get_follow_user_list")) == 3  # first ok, then 2 tries


@pytest.mark.django_db
@pytest.mark.parametrize(("errcode", "error", "permanent"), [
    (-1, WeComTransientError, False),
    (45009, WeComRateLimited, False),
    (45033, WeComRateLimited, False),
    (60020, WeComAuthError, True),
    (48002, WeComAuthError, True),
    (40096, WeComError, True),
])
def test_errcodes_map_to_permanent_or_transient(wecom_sim, member, errcode, error, permanent):
    wecom_sim.control("faults", {"errors": [{"api": "externalcontact/get_follow_user_list", "errcode": errcode,
                                             "count": 1}]})
    with pytest.raises(error) as info:
        gateway.follow_users_list()
    assert info.value.code == errcode
    assert info.value.permanent is permanent


@pytest.mark.django_db
def test_wrong_secret_is_a_clear_auth_error(wecom_sim, member, settings):
    settings.WECOM_SECRET = "wrong"
    gateway.reset()
    with pytest.raises(WeComAuthError) as info:
        gateway.follow_users_list()
    assert info.value.code == 40001


@pytest.mark.django_db
def test_read_timeout_is_transient_but_a_write_timeout_is_an_unknown_outcome(wecom_sim, member, settings):
    from wecom.errors import WeComUnknownOutcome

    gateway.follow_users_list()  # token fetched before slowing the simulator down
    settings.WECOM_TIMEOUT = 0.3
    gateway.reset()
    wecom_sim.control("faults", {"api_delay_ms": 1500})
    with pytest.raises(WeComTransientError):
        gateway.follow_users_list()
    with pytest.raises(WeComUnknownOutcome) as info:
        gateway.welcome_message_send(welcome_code="x", content=MessageContent(text="hi"))
    assert not info.value.permanent


@pytest.mark.django_db
def test_unreachable_wecom_is_transient(wecom_sim, settings):
    settings.WECOM_API_BASE = "http://127.0.0.1:9/cgi-bin/"
    gateway.reset()
    with pytest.raises(WeComTransientError):
        gateway.follow_users_list()


@pytest.mark.django_db
def test_our_own_bucket_stops_us_before_wecom_answers_45009(wecom_sim, member, settings):
    settings.WECOM_API_RATE_PER_MIN = 3
    settings.WECOM_RATE_MAX_WAIT = 0
    gateway.reset()
    for _ in range(3):
        gateway.follow_users_list()
    with pytest.raises(WeComRateLimited):
        gateway.follow_users_list()
    assert len(api_calls(wecom_sim, "externalcontact/get_follow_user_list")) == 3


@pytest.mark.django_db
def test_welcome_message_is_single_use_within_20_seconds(wecom_sim, member):
    result = wecom_sim.control("actions/add_contact", {"userid": "sales_li", "name": "阿明"})
    gateway.welcome_message_send(welcome_code=result["welcome_code"], content=MessageContent(text="欢迎！"))
    with pytest.raises(WeComError) as info:
        gateway.welcome_message_send(welcome_code=result["welcome_code"], content=MessageContent(text="again"))
    assert info.value.code == 41051 and info.value.permanent
    late = wecom_sim.control("actions/add_contact", {"userid": "sales_li", "name": "迟到"})
    wecom_sim.control("clock", {"advance_seconds": 21})
    with pytest.raises(WeComError) as info:
        gateway.welcome_message_send(welcome_code=late["welcome_code"], content=MessageContent(text="hi"))
    assert info.value.code == 41050
    sent = wecom_sim.control("welcome_messages", method="GET")
    rows = sent["welcome_messages"]
    assert len(rows) == 1


@pytest.mark.django_db
def test_contact_way_and_join_way_round_trip(wecom_sim, member):
    way = gateway.contact_way_create(userids=["sales_li"], state="poster_1", remark="海报")
    assert way.config_id and way.qr_code
    gateway.contact_way_update(config_id=way.config_id, userids=["sales_li"], state="poster_2")
    gateway.contact_way_delete(config_id=way.config_id)
    with pytest.raises(ValueError, match="30"):
        gateway.contact_way_create(userids=["sales_li"], state="x" * 31)
    chat = wecom_sim.control("actions/create_group", {"owner": "sales_li", "name": "群1"})
    chat_id = chat["chat_id"]
    join = gateway.join_way_create(chat_ids=[chat_id], state="pool_1")
    assert join.config_id and join.qr_code
    with pytest.raises(ValueError, match="1 to 5"):
        gateway.join_way_create(chat_ids=[chat_id] * 6, state="x")


@pytest.mark.django_db
def test_mass_message_task_and_results(wecom_sim, member):
    ext = add_customer(wecom_sim)
    result = gateway.mass_message_create(sender="sales_li", content=MessageContent(text="新品上市"),
                                         external_userids=[ext])
    assert result.msgid
    tasks = gateway.mass_message_tasks_get(msgid=result.msgid)
    assert [t["status"] for t in tasks["task_list"]] == [0]
    wecom_sim.control("actions/confirm_mass_msg", {"msgid": result.msgid, "userid": "sales_li"})
    sent = gateway.mass_message_results_get(msgid=result.msgid, userid="sales_li")
    assert [(r["external_userid"], r["status"]) for r in sent["send_list"]] == [(ext, 1)]


@pytest.mark.django_db
def test_app_message_reaches_the_staff_member(wecom_sim, member):
    result = gateway.app_message_send(userids=["sales_li", "nobody"], content=MessageContent(text="请确认群发"))
    assert result.invalid_users == ("nobody",)
    messages = wecom_sim.control("app_messages", method="GET")
    rows = messages["app_messages"]
    assert len(rows) == 1


@pytest.mark.django_db
def test_group_reads_and_corp_tags(wecom_sim, member):
    ext = add_customer(wecom_sim)
    chat = wecom_sim.control("actions/create_group", {"owner": "sales_li", "name": "会员群", "members": [ext]})
    chat_id = chat["chat_id"]
    page = gateway.group_chats_list()
    assert [c.chat_id for c in page.chats] == [chat_id]
    detail = gateway.group_chat_get(chat_id=chat_id)
    assert detail.name == "会员群" and detail.owner == "sales_li"
    assert {m.userid for m in detail.members} == {"sales_li", ext}
    group = gateway.corp_tag_create(group_name="来源", names=["海报", "直播"])
    tag_ids = [t["id"] for t in group["tag"]]
    gateway.contact_tags_mark(userid="sales_li", external_userid=ext, add=tag_ids[:1])
    contact = gateway.external_contact_get(external_userid=ext)
    assert [t.tag_id for t in contact.follow_users[0].tags] == tag_ids[:1]
    with pytest.raises(WeComError) as info:
        gateway.contact_tags_mark(userid="sales_li", external_userid=ext, add=["etNOPE"])
    assert info.value.code == 40068
