"""Customer groups, join ways and mass messages (tasks, confirmation, receive quota)."""

from __future__ import annotations

from wecom.simulator.config import Settings
from wecom.simulator.quota import period_key, period_limit

from .conftest import SimClient


def chat(j: int) -> str:
    return "wrDemo" + f"{j:026d}"


def customer(i: int) -> str:
    return "wmDemo" + f"{i:026d}"


# --- groups -------------------------------------------------------------------------------------------------


def test_groupchat_list_pages_and_filters(demo: SimClient) -> None:
    first = demo.ok("externalcontact/groupchat/list", {"limit": 3})
    assert [g["chat_id"] for g in first["group_chat_list"]] == [chat(0), chat(1), chat(2)]
    rest = demo.ok("externalcontact/groupchat/list", {"limit": 3, "cursor": first["next_cursor"]})
    assert [g["chat_id"] for g in rest["group_chat_list"]] == [chat(3), chat(4)] and rest["next_cursor"] == ""
    owned = demo.ok(
        "externalcontact/groupchat/list", {"limit": 100, "owner_filter": {"userid_list": ["lina"]}}
    )
    assert owned["group_chat_list"] == [{"chat_id": chat(1), "status": 0}]
    assert demo.post("externalcontact/groupchat/list", {"limit": 0})["errcode"] == 40058
    assert demo.post("externalcontact/groupchat/list", {"limit": 1001})["errcode"] == 40058


def test_groupchat_get(demo: SimClient) -> None:
    group = demo.ok("externalcontact/groupchat/get", {"chat_id": chat(0), "need_name": 1})["group_chat"]
    assert (group["name"], group["owner"], len(group["member_list"])) == ("新品体验群", "zhangwei", 31)
    assert group["member_list"][1] == {
        "userid": customer(0),
        "type": 2,
        "join_time": 1767196800 + 3600,
        "join_scene": 3,
        "group_nickname": "",
        "name": "王敏",
    }
    assert len(group["member_version"]) == 32
    assert demo.post("externalcontact/groupchat/get", {"chat_id": "wrNope"})["errcode"] == 40050


def test_join_way_with_six_chats_is_refused(demo: SimClient) -> None:
    demo.action("create_group", owner="lina", name="extra", chat_id="wrExtra")
    six = [chat(j) for j in range(5)] + ["wrExtra"]
    assert (
        demo.post("externalcontact/groupchat/add_join_way", {"scene": 2, "chat_id_list": six})["errcode"]
        == 41091
    )
    five = demo.ok(
        "externalcontact/groupchat/add_join_way", {"scene": 2, "chat_id_list": six[:5], "state": "jw"}
    )
    way = demo.ok("externalcontact/groupchat/get_join_way", {"config_id": five["config_id"]})["join_way"]
    assert (way["chat_id_list"], way["state"], way["auto_create_room"]) == (six[:5], "jw", 1)
    assert way["qr_code"].endswith(".png")
    update = {"config_id": five["config_id"], "scene": 2, "chat_id_list": six}
    assert demo.post("externalcontact/groupchat/update_join_way", update)["errcode"] == 41091
    assert (
        demo.post("externalcontact/groupchat/add_join_way", {"scene": 2, "chat_id_list": ["wrNope"]})[
            "errcode"
        ]
        == 40050
    )
    assert (
        demo.post(
            "externalcontact/groupchat/add_join_way",
            {"scene": 2, "chat_id_list": [chat(0)], "state": "s" * 31},
        )["errcode"]
        == 40058
    )
    assert (
        demo.post("externalcontact/groupchat/add_join_way", {"chat_id_list": [chat(0)]})["errcode"] == 41038
    )


def test_join_through_a_join_way_records_state_and_auto_creates_rooms(demo: SimClient) -> None:
    way = {
        "scene": 2,
        "chat_id_list": [chat(0)],
        "state": "poster7",
        "room_base_name": "新品群",
        "room_base_id": 2,
    }
    config_id = demo.ok("externalcontact/groupchat/add_join_way", way)["config_id"]
    demo.configure(join_way_qr_capacity=31)  # the demo group already has 30 QR joiners
    first = demo.action("join_group", config_id=config_id, external_userids=[customer(1)])
    assert first["chat_id"] == chat(0)
    members = demo.ok("externalcontact/groupchat/get", {"chat_id": chat(0)})["group_chat"]["member_list"]
    assert (
        members[-1]["userid"] == customer(1)
        and members[-1]["state"] == "poster7"
        and members[-1]["join_scene"] == 3
    )
    second = demo.action("join_group", config_id=config_id, external_userids=[customer(2)])
    assert second["chat_id"] != chat(0)
    created = demo.ok("externalcontact/groupchat/get", {"chat_id": second["chat_id"], "need_name": 1})[
        "group_chat"
    ]
    assert (created["name"], created["owner"]) == ("新品群2", "zhangwei")
    assert demo.ok("externalcontact/groupchat/get_join_way", {"config_id": config_id})["join_way"][
        "chat_id_list"
    ] == [chat(0), second["chat_id"]]
    demo.wait()
    changes = [(c["change_type"], c["keys"].get("UpdateDetail", "")) for c in demo.callbacks()]
    assert changes == [("update", "add_member"), ("create", ""), ("update", "add_member")]


def test_group_actions_validate_input(demo: SimClient) -> None:
    assert (
        demo.control(
            "POST", "/sim/actions/join_group", {"chat_id": chat(0), "external_userids": [customer(0)]}
        ).status_code
        == 409
    )
    assert (
        demo.control(
            "POST", "/sim/actions/join_group", {"chat_id": "wrNope", "external_userids": ["x"]}
        ).status_code
        == 404
    )
    assert (
        demo.control(
            "POST", "/sim/actions/leave_group", {"chat_id": chat(0), "external_userids": ["zhangwei"]}
        ).status_code
        == 409
    )
    assert demo.control("POST", "/sim/actions/create_group", {"owner": "ghost"}).status_code == 404
    assert demo.control("POST", "/sim/actions/join_group", {"chat_id": chat(0)}).status_code == 400


# --- mass messages ------------------------------------------------------------------------------------------


def test_mass_message_results_sent_not_friend_and_over_quota(demo: SimClient) -> None:
    demo.configure(mass_msg_quota_limit=1)
    # customers 5, 10 and 15 are followed by zhangwei only
    first = demo.ok(
        "externalcontact/add_msg_template",
        {"sender": "zhangwei", "external_userid": [customer(5)], "text": {"content": "one"}},
    )
    demo.action("confirm_mass_msg", msgid=first["msgid"], userid="zhangwei")
    targets = [customer(5), customer(10), customer(15), "wmUnknownCustomer"]
    second = demo.ok(
        "externalcontact/add_msg_template",
        {"sender": "zhangwei", "external_userid": targets, "text": {"content": "two"}},
    )
    assert second["fail_list"] == ["wmUnknownCustomer"] and second["msgid"].startswith("msg")
    task = demo.ok("externalcontact/get_groupmsg_task", {"msgid": second["msgid"]})["task_list"]
    assert task == [{"userid": "zhangwei", "status": 0}]
    demo.action("customer_deletes_member", userid="zhangwei", external_userid=customer(15))
    confirmed = demo.action("confirm_mass_msg", msgid=second["msgid"], userid="zhangwei")
    assert (confirmed["sent"], confirmed["not_friend"], confirmed["over_quota"]) == (1, 1, 1)
    results = demo.ok(
        "externalcontact/get_groupmsg_send_result", {"msgid": second["msgid"], "userid": "zhangwei"}
    )
    statuses = {row["external_userid"]: row["status"] for row in results["send_list"]}
    assert statuses == {customer(5): 3, customer(10): 1, customer(15): 2}
    task = demo.ok("externalcontact/get_groupmsg_task", {"msgid": second["msgid"]})["task_list"][0]
    assert task["status"] == 2 and task["send_time"] > 0
    assert (
        demo.control(
            "POST", "/sim/actions/confirm_mass_msg", {"msgid": second["msgid"], "userid": "zhangwei"}
        ).status_code
        == 409
    )


def test_mass_message_without_sender_goes_to_the_newest_follower(demo: SimClient) -> None:
    # customer 0 is followed by zhangwei and lina with the same createtime; 7 by wangfang and liuyang
    answer = demo.ok(
        "externalcontact/add_msg_template",
        {"external_userid": [customer(1), customer(2)], "text": {"content": "x"}},
    )
    tasks = demo.ok("externalcontact/get_groupmsg_task", {"msgid": answer["msgid"]})["task_list"]
    assert sorted(t["userid"] for t in tasks) == ["lina", "wangfang"]


def test_mass_message_errors(demo: SimClient) -> None:
    api = "externalcontact/add_msg_template"
    assert demo.post(api, {"external_userid": ["wmNobody"], "text": {"content": "x"}})["errcode"] == 41048
    assert demo.post(api, {"text": {"content": "x"}})["errcode"] == 40058
    assert demo.post(api, {"sender": "lina"})["errcode"] == 40058
    assert (
        demo.post(api, {"chat_type": "group", "chat_id_list": [chat(1)], "text": {"content": "x"}})["errcode"]
        == 40058
    )
    too_many = {"external_userid": [f"wm{i}" for i in range(10_001)], "text": {"content": "x"}}
    assert demo.post(api, too_many)["errcode"] == 40058
    assert demo.post("externalcontact/get_groupmsg_task", {})["errcode"] == 41046
    assert demo.post("externalcontact/get_groupmsg_task", {"msgid": "msgNope"})["errcode"] == 41047


def test_group_mass_message_to_owned_chats(demo: SimClient) -> None:
    body = {
        "chat_type": "group",
        "sender": "lina",
        "chat_id_list": [chat(1), chat(2)],
        "text": {"content": "hi groups"},
    }
    answer = demo.ok("externalcontact/add_msg_template", body)
    assert answer["fail_list"] == [chat(2)]
    demo.action("confirm_mass_msg", msgid=answer["msgid"], userid="lina")
    rows = demo.ok("externalcontact/get_groupmsg_send_result", {"msgid": answer["msgid"], "userid": "lina"})[
        "send_list"
    ]
    assert [(r["chat_id"], r["status"]) for r in rows] == [(chat(1), 1)]
    now = demo.control("GET", "/sim/clock").json()["now"]
    listed = demo.ok(
        "externalcontact/get_groupmsg_list_v2",
        {"chat_type": "group", "start_time": int(now) - 60, "end_time": int(now) + 60},
    )
    assert [m["msgid"] for m in listed["group_msg_list"]] == [answer["msgid"]]
    span = {"chat_type": "group", "start_time": 0, "end_time": 40 * 86400}
    assert demo.post("externalcontact/get_groupmsg_list_v2", span)["errcode"] == 40058


def test_remind_limit_and_cancel(demo: SimClient) -> None:
    msgid = demo.ok("externalcontact/add_msg_template", {"sender": "lina", "text": {"content": "x"}})["msgid"]
    answers = [
        demo.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})["errcode"] for _ in range(4)
    ]
    assert answers == [0, 0, 0, 41094]
    demo.advance(86401)
    demo.refresh_token()
    demo.ok("externalcontact/remind_groupmsg_send", {"msgid": msgid})
    demo.ok("externalcontact/cancel_groupmsg_send", {"msgid": msgid})
    assert demo.post("externalcontact/cancel_groupmsg_send", {"msgid": msgid})["errcode"] == 41093
    assert (
        demo.control("POST", "/sim/actions/confirm_mass_msg", {"msgid": msgid, "userid": "lina"}).status_code
        == 409
    )


def test_default_receive_quota_is_the_number_of_days_in_the_month() -> None:
    settings = Settings(callback_url="")
    february_2026 = 1770000000  # 2026-02-02 in China time
    assert period_key(february_2026, "month") == "2026-02"
    assert period_limit(february_2026, settings) == 28
    settings.mass_msg_quota_period = "week"
    assert period_limit(february_2026, settings) == 7 and period_key(february_2026, "week") == "2026-W06"
    settings.mass_msg_quota_period, settings.mass_msg_quota_limit = "day", 4
    assert period_limit(february_2026, settings) == 4


def test_tag_filter_selects_recipients(demo: SimClient) -> None:
    tags = demo.ok(
        "externalcontact/add_corp_tag", {"group_name": "Level", "tag": [{"name": "Gold"}, {"name": "Silver"}]}
    )
    gold, silver = (t["id"] for t in tags["tag_group"]["tag"] if t["name"] in ("Gold", "Silver"))
    demo.ok("externalcontact/mark_tag", {"userid": "lina", "external_userid": customer(1), "add_tag": [gold]})
    demo.ok(
        "externalcontact/mark_tag", {"userid": "lina", "external_userid": customer(6), "add_tag": [silver]}
    )
    body = {
        "sender": "lina",
        "tag_filter": {"group_list": [{"tag_list": [gold]}]},
        "text": {"content": "gold only"},
    }
    msgid = demo.ok("externalcontact/add_msg_template", body)["msgid"]
    rows = demo.ok("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": "lina"})[
        "send_list"
    ]
    assert [r["external_userid"] for r in rows] == [customer(1)]
    bad = {**body, "tag_filter": {"group_list": [{"tag_list": ["etNope"]}]}}
    assert demo.post("externalcontact/add_msg_template", bad)["errcode"] == 40068
