"""Callback delivery: encryption on the wire, retries, fault knobs, and which operations fire events."""

from __future__ import annotations

import time

from .conftest import CallbackReceiver, SimClient


def customer(i: int) -> str:
    return "wmDemo" + f"{i:026d}"


def test_add_contact_delivers_an_encrypted_signed_callback(
    demo: SimClient, receiver: CallbackReceiver
) -> None:
    added = demo.action("add_contact", userid="lina", state="expo_booth7", unionid="oUnion123")
    assert added["external_userid"].startswith("wm") and len(added["external_userid"]) == 32
    demo.wait()
    (event,) = receiver.events()
    assert event == {
        "ToUserName": "wwSIMCORP00000001",
        "FromUserName": "sys",
        "CreateTime": event["CreateTime"],
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": "add_external_contact",
        "UserID": "lina",
        "ExternalUserID": added["external_userid"],
        "State": "expo_booth7",
        "WelcomeCode": added["welcome_code"],
    }
    assert abs(int(event["CreateTime"]) - time.time()) < 60
    (record,) = demo.callbacks()
    assert record["status"] == "delivered"
    assert record["attempts"][0]["attempt"] == 1 and record["attempts"][0]["status_code"] == 200


def test_half_add_and_deletions(demo: SimClient, receiver: CallbackReceiver) -> None:
    added = demo.action("add_contact", userid="lina", half=True, no_welcome_code=True)
    assert added["welcome_code"] == ""
    demo.action("customer_deletes_member", userid="zhangwei", external_userid=customer(5))
    demo.action(
        "member_deletes_customer", userid="lina", external_userid=customer(1), source="DELETE_BY_TRANSFER"
    )
    demo.wait()
    events = receiver.events()
    assert [e["ChangeType"] for e in events] == [
        "add_half_external_contact",
        "del_follow_user",
        "del_external_contact",
    ]
    assert "WelcomeCode" not in events[0] and "State" not in events[0]
    assert events[2]["Source"] == "DELETE_BY_TRANSFER"
    assert demo.get("externalcontact/get", external_userid=customer(5))["errcode"] == 84061
    assert (
        demo.control(
            "POST",
            "/sim/actions/customer_deletes_member",
            {"userid": "zhangwei", "external_userid": customer(5)},
        ).status_code
        == 404
    )


def test_edit_in_client_fires_except_for_phone_only_edits(
    demo: SimClient, receiver: CallbackReceiver
) -> None:
    tag = demo.action("client_tag", change_type="create", group_name="Level", name="Gold")
    demo.action(
        "edit_contact_in_client",
        userid="lina",
        external_userid=customer(1),
        remark="VIP",
        add_tag=[tag["id"]],
    )
    quiet = demo.action(
        "edit_contact_in_client", userid="lina", external_userid=customer(1), remark_mobiles=["13900000000"]
    )
    assert quiet["callback"] is False
    demo.wait()
    events = receiver.events()
    assert [(e["Event"], e["ChangeType"], e.get("TagType")) for e in events] == [
        ("change_external_tag", "create", "tag_group"),
        ("change_external_tag", "create", "tag"),
        ("change_external_contact", "edit_external_contact", None),
    ]
    follow = demo.ok("externalcontact/get", external_userid=customer(1))["follow_user"][0]
    assert (follow["remark"], follow["remark_mobiles"], follow["tags"][0]["tag_id"]) == (
        "VIP",
        ["13900000000"],
        tag["id"],
    )


def test_group_member_events_chain_member_versions(demo: SimClient, receiver: CallbackReceiver) -> None:
    chat_id = "wrDemo" + f"{0:026d}"
    before = demo.ok("externalcontact/groupchat/get", {"chat_id": chat_id})["group_chat"]["member_version"]
    demo.action("join_group", chat_id=chat_id, external_userids=[customer(1), customer(2)])
    demo.action("leave_group", chat_id=chat_id, external_userids=[customer(1)], quit_scene=1)
    demo.action("rename_group", chat_id=chat_id, name="新名字")
    demo.action("dismiss_group", chat_id=chat_id)
    demo.wait()
    join, leave, rename, dismiss = receiver.events()
    assert (join["UpdateDetail"], join["JoinScene"], join["MemChangeCnt"]) == ("add_member", "3", "2")
    assert join["MemChangeList"] == [customer(1), customer(2)]
    assert join["LastMemVer"] == before and join["CurMemVer"] != before
    assert (leave["UpdateDetail"], leave["QuitScene"], leave["MemChangeList"]) == (
        "del_member",
        "1",
        [customer(1)],
    )
    assert leave["LastMemVer"] == join["CurMemVer"]
    assert (rename["ChangeType"], rename["UpdateDetail"]) == ("update", "change_name")
    assert dismiss["ChangeType"] == "dismiss" and dismiss["ChatId"] == chat_id
    assert demo.post("externalcontact/groupchat/get", {"chat_id": chat_id})["errcode"] == 40050


def test_receiver_answering_500_gets_exactly_three_attempts(
    demo: SimClient, receiver: CallbackReceiver
) -> None:
    receiver.status = 500
    demo.action("add_contact", userid="lina")
    demo.wait()
    assert len(receiver.posts()) == 3
    (record,) = demo.callbacks()
    assert record["status"] == "failed"
    assert [(a["attempt"], a["status_code"], a["error"]) for a in record["attempts"]] == [
        (1, 500, "HTTP 500"),
        (2, 500, "HTTP 500"),
        (3, 500, "HTTP 500"),
    ]


def test_unreachable_callback_url_is_logged(demo: SimClient) -> None:
    demo.configure(callback_url="http://127.0.0.1:9/unreachable", callback_retry_intervals=[0])
    demo.action("add_contact", userid="lina")
    demo.wait()
    (record,) = demo.callbacks()
    assert record["status"] == "failed" and len(record["attempts"]) == 2
    assert record["attempts"][0]["status_code"] is None and record["attempts"][0]["error"]


def test_duplicate_knob_delivers_every_callback_twice(demo: SimClient, receiver: CallbackReceiver) -> None:
    demo.control("POST", "/sim/faults", {"callback_duplicate": True})
    demo.action("add_contact", userid="lina")
    demo.wait()
    first, second = receiver.events()
    assert first == second
    records = demo.callbacks()
    assert records[1]["duplicate_of"] == records[0]["id"]


def test_out_of_order_knob_holds_and_reverses(demo: SimClient, receiver: CallbackReceiver) -> None:
    demo.control("POST", "/sim/faults", {"callback_reorder": 3})
    ids = [demo.action("add_contact", userid="lina")["external_userid"] for _ in range(2)]
    assert [r["status"] for r in demo.callbacks()] == ["held", "held"]
    assert receiver.posts() == []
    ids.append(
        demo.action("add_contact", userid="lina")["external_userid"]
    )  # the third one releases the batch
    demo.wait()
    assert [e["ExternalUserID"] for e in receiver.events()] == ids[::-1]


def test_wait_releases_a_partial_held_batch(demo: SimClient, receiver: CallbackReceiver) -> None:
    demo.control("POST", "/sim/faults", {"callback_reorder": 5})
    ids = [demo.action("add_contact", userid="lina")["external_userid"] for _ in range(2)]
    demo.wait()
    assert [e["ExternalUserID"] for e in receiver.events()] == ids[::-1]


def test_delay_knob_postpones_delivery(demo: SimClient, receiver: CallbackReceiver) -> None:
    demo.control("POST", "/sim/faults", {"callback_delay_ms": 200})
    demo.action("add_contact", userid="lina")
    demo.wait()
    (record,) = demo.callbacks()
    assert record["attempts"][0]["at"] - record["created_at"] >= 0.2


def test_api_calls_never_fire_callbacks(demo: SimClient, receiver: CallbackReceiver) -> None:
    tag = demo.ok("externalcontact/add_corp_tag", {"group_name": "G", "tag": [{"name": "t"}]})["tag_group"][
        "tag"
    ][0]["id"]
    demo.ok("externalcontact/edit_corp_tag", {"id": tag, "name": "t2"})
    demo.ok("externalcontact/mark_tag", {"userid": "lina", "external_userid": customer(1), "add_tag": [tag]})
    demo.ok("externalcontact/remark", {"userid": "lina", "external_userid": customer(1), "remark": "r"})
    demo.ok("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["lina"]})
    demo.ok("externalcontact/groupchat/add_join_way", {"scene": 2, "chat_id_list": ["wrDemo" + "0" * 26]})
    demo.ok("externalcontact/add_msg_template", {"sender": "lina", "text": {"content": "x"}})
    demo.ok(
        "message/send", {"touser": "lina", "msgtype": "text", "agentid": 1000002, "text": {"content": "x"}}
    )
    demo.ok("externalcontact/del_corp_tag", {"tag_id": [tag]})
    demo.wait()
    assert demo.callbacks() == []
    assert receiver.posts() == []


def test_disabled_callback_url_records_without_delivering(
    demo: SimClient, receiver: CallbackReceiver
) -> None:
    demo.configure(callback_url="")
    demo.action("add_contact", userid="lina")
    demo.wait()
    assert [r["status"] for r in demo.callbacks()] == ["disabled"]
    assert receiver.posts() == []


def test_verify_url_performs_the_echostr_handshake(demo: SimClient, receiver: CallbackReceiver) -> None:
    result = demo.control("POST", "/sim/callbacks/verify_url", {}).json()
    assert result["ok"] is True and result["body"] == result["expected"]
    (request,) = [r for r in receiver.requests if r.method == "GET"]
    assert set(request.query) == {"msg_signature", "timestamp", "nonce", "echostr"}


def test_console_form_posts_redirect_back(demo: SimClient, receiver: CallbackReceiver) -> None:
    response = demo.http.post(
        f"{demo.base_url}/sim/actions/add_contact",
        data={"userid": "lina", "name": "Form", "state": ""},
        allow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["Location"].startswith("/sim/?ok=")
    failed = demo.http.post(
        f"{demo.base_url}/sim/actions/add_contact", data={"userid": "ghost"}, allow_redirects=False
    )
    assert failed.status_code == 303 and "error=" in failed.headers["Location"]
    page = demo.http.get(f"{demo.base_url}/sim/?ok=%3Cscript%3E")
    assert page.status_code == 200 and "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert "wmDemo00000000000000000000000000" in page.text and "新品体验群" in page.text
    demo.wait()
    assert receiver.events()[0]["ChangeType"] == "add_external_contact"


def test_console_tag_changes_fire_change_external_tag(demo: SimClient, receiver: CallbackReceiver) -> None:
    gold = demo.action("client_tag", change_type="create", group_name="Level", name="Gold")
    silver = demo.action("client_tag", change_type="create", group_name="Level", name="Silver")
    demo.action("client_tag", change_type="update", id=gold["id"], name="Platinum")
    demo.action("client_tag", change_type="shuffle", id=gold["group_id"])
    demo.action("client_tag", change_type="delete", id=silver["id"])
    demo.action("client_tag", change_type="delete", id=gold["group_id"])
    assert demo.control("POST", "/sim/actions/client_tag", {"change_type": "rename"}).status_code == 400
    assert (
        demo.control("POST", "/sim/actions/client_tag", {"change_type": "delete", "id": "etNope"}).status_code
        == 404
    )
    demo.wait()
    events = [(e["ChangeType"], e["Id"], e.get("TagType")) for e in receiver.events()]
    assert events == [
        ("create", gold["group_id"], "tag_group"),
        ("create", gold["id"], "tag"),
        ("create", silver["id"], "tag"),
        ("update", gold["id"], "tag"),
        ("shuffle", gold["group_id"], None),
        ("delete", silver["id"], "tag"),
        ("delete", gold["group_id"], "tag_group"),
    ]
    assert demo.ok("externalcontact/get_corp_tag_list", {})["tag_group"] == []


def test_group_owner_and_notice_changes(demo: SimClient, receiver: CallbackReceiver) -> None:
    chat_id = "wrDemo" + f"{0:026d}"
    assert (
        demo.control(
            "POST", "/sim/actions/change_group_owner", {"chat_id": chat_id, "new_owner": "lina"}
        ).status_code
        == 409
    )
    demo.action("join_group", chat_id=chat_id, external_userids=["lina"], join_scene=1)
    demo.action("change_group_owner", chat_id=chat_id, new_owner="lina")
    demo.action("change_group_notice", chat_id=chat_id, notice="No ads")
    demo.wait()
    join, owner, notice = receiver.events()
    assert (join["UpdateDetail"], join["JoinScene"]) == ("add_member", "0")
    assert (owner["UpdateDetail"], notice["UpdateDetail"]) == ("change_owner", "change_notice")
    group = demo.ok("externalcontact/groupchat/get", {"chat_id": chat_id})["group_chat"]
    assert (group["owner"], group["notice"]) == ("lina", "No ads")
    lina = next(m for m in group["member_list"] if m["userid"] == "lina")
    assert (lina["type"], lina["join_scene"], lina["invitor"]) == (1, 1, {"userid": "zhangwei"})
