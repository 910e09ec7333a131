"""Customers, corp tags, contact ways, welcome codes, application messages and media."""

from __future__ import annotations

import struct
import zlib

from .conftest import SimClient

DEMO_STAFF = ["zhangwei", "lina", "wangfang", "liuyang", "chenjing"]


def demo_customer(i: int) -> str:
    return "wmDemo" + f"{i:026d}"


def tiny_png() -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


# --- demo world ---------------------------------------------------------------------------------------------


def test_demo_world_has_the_contracted_ids(demo: SimClient) -> None:
    world = demo.control("GET", "/sim/state").json()["world"]
    assert list(world["members"]) == DEMO_STAFF
    assert world["members"]["zhangwei"]["name"] == "张伟"
    customers = world["customers"]
    assert list(customers) == [demo_customer(i) for i in range(200)]
    assert demo_customer(0) == "wmDemo00000000000000000000000000" and len(demo_customer(0)) == 32
    c7 = customers[demo_customer(7)]
    assert c7["name"] == "赵杰"
    assert c7["gender"] == 1
    assert list(c7["follows"]) == ["wangfang", "liuyang"]
    follow = c7["follows"]["wangfang"]
    assert (follow["createtime"], follow["add_way"], follow["state"]) == (1767196800 + 7 * 25200, 1, "")
    assert customers[demo_customer(4)]["follows"]["chenjing"]["state"] == "demo_poster"
    groups = world["groups"]
    assert list(groups) == ["wrDemo" + f"{j:026d}" for j in range(5)]
    g2 = groups["wrDemo" + f"{2:026d}"]
    assert (g2["name"], g2["owner"], g2["create_time"]) == ("育儿交流群", "wangfang", 1767196800)
    members = g2["members"]
    assert members[0]["userid"] == "wangfang" and members[0]["type"] == 1
    assert [m["userid"] for m in members[1:]] == [demo_customer(i) for i in range(2, 150, 5)]
    assert members[1]["join_time"] == 1767196800 + 2 * 25200 + 3600 and members[1]["join_scene"] == 3


def test_demo_customer_names_follow_the_formula(demo: SimClient) -> None:
    customers = demo.control("GET", "/sim/state").json()["world"]["customers"]
    for i in (0, 1, 7, 13, 199):
        expected = "王李张刘陈杨黄赵吴周"[i % 10] + "敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"[(i * 7) % 20]
        assert customers[demo_customer(i)]["name"] == expected


# --- reading customers --------------------------------------------------------------------------------------


def test_follow_users_list_and_get(demo: SimClient) -> None:
    assert demo.ok("externalcontact/get_follow_user_list")["follow_user"] == DEMO_STAFF
    listed = demo.ok("externalcontact/list", userid="lina")["external_userid"]
    assert listed[:3] == [demo_customer(0), demo_customer(1), demo_customer(6)]
    detail = demo.ok("externalcontact/get", external_userid=demo_customer(0))
    assert detail["external_contact"]["name"] == "王敏"
    assert [f["userid"] for f in detail["follow_user"]] == ["lina", "zhangwei"]
    assert detail["follow_user"][0]["state"] == "demo_poster"
    assert demo.get("externalcontact/get", external_userid="wmUnknown")["errcode"] == 40096
    assert demo.get("externalcontact/get")["errcode"] == 41035


def test_member_without_customers_gets_84061(sim: SimClient) -> None:
    sim.control("POST", "/sim/members", {"userid": "newbie", "name": "New"})
    assert sim.get("externalcontact/list", userid="newbie")["errcode"] == 84061
    assert sim.get("externalcontact/list", userid="ghost")["errcode"] == 60111


def test_batch_get_by_user_pages_with_a_cursor(demo: SimClient) -> None:
    seen, cursor = [], ""
    while True:
        page = demo.ok(
            "externalcontact/batch/get_by_user", {"userid_list": ["lina"], "cursor": cursor, "limit": 20}
        )
        seen += [item["external_contact"]["external_userid"] for item in page["external_contact_list"]]
        assert all(item["follow_info"]["userid"] == "lina" for item in page["external_contact_list"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == demo.ok("externalcontact/list", userid="lina")["external_userid"]
    assert (
        demo.post("externalcontact/batch/get_by_user", {"userid_list": ["lina"], "limit": 101})["errcode"]
        == 40058
    )
    assert (
        demo.post("externalcontact/batch/get_by_user", {"userid_list": ["lina"], "cursor": "junk"})["errcode"]
        == 40058
    )


def test_remark_updates_only_given_fields(demo: SimClient) -> None:
    body = {
        "userid": "lina",
        "external_userid": demo_customer(1),
        "remark": "VIP",
        "remark_mobiles": ["13800000000"],
    }
    demo.ok("externalcontact/remark", body)
    follow = demo.ok("externalcontact/get", external_userid=demo_customer(1))["follow_user"][0]
    assert (follow["remark"], follow["remark_mobiles"], follow["description"]) == ("VIP", ["13800000000"], "")
    too_long = {**body, "remark": "x" * 21}
    assert demo.post("externalcontact/remark", too_long)["errcode"] == 40058
    stranger = {**body, "userid": "wangfang"}
    assert demo.post("externalcontact/remark", stranger)["errcode"] == 84061


# --- corp tags ----------------------------------------------------------------------------------------------


def test_corp_tag_lifecycle_and_errors(demo: SimClient) -> None:
    created = demo.ok(
        "externalcontact/add_corp_tag",
        {"group_name": "Level", "tag": [{"name": "Gold"}, {"name": "Gold"}, {"name": "Silver", "order": 5}]},
    )
    group = created["tag_group"]
    assert [t["name"] for t in group["tag"]] == ["Silver", "Gold"]
    gold = next(t["id"] for t in group["tag"] if t["name"] == "Gold")
    assert gold.startswith("et") and len(gold) == 32
    duplicate = demo.post(
        "externalcontact/add_corp_tag", {"group_id": group["group_id"], "tag": [{"name": "Gold"}]}
    )
    assert duplicate["errcode"] == 40071
    long_name = demo.post(
        "externalcontact/add_corp_tag", {"group_name": "Level", "tag": [{"name": "x" * 31}]}
    )
    assert long_name["errcode"] == 40058
    assert (
        demo.post("externalcontact/add_corp_tag", {"group_id": "etNope", "tag": [{"name": "a"}]})["errcode"]
        == 40068
    )
    listed = demo.ok("externalcontact/get_corp_tag_list", {"tag_id": [gold]})["tag_group"]
    assert [t["id"] for t in listed[0]["tag"]] == [gold]
    demo.ok("externalcontact/edit_corp_tag", {"id": gold, "name": "Platinum"})
    mark = {"userid": "lina", "external_userid": demo_customer(0), "add_tag": [gold]}
    demo.ok("externalcontact/mark_tag", mark)
    tags = demo.ok("externalcontact/get", external_userid=demo_customer(0))["follow_user"][0]["tags"]
    assert tags == [{"group_name": "Level", "tag_name": "Platinum", "type": 1, "tag_id": gold}]
    demo.ok("externalcontact/del_corp_tag", {"tag_id": [gold]})
    assert demo.ok("externalcontact/get", external_userid=demo_customer(0))["follow_user"][0]["tags"] == []
    assert demo.post("externalcontact/del_corp_tag", {"tag_id": [gold]})["errcode"] == 40068


def test_corp_tag_limit_answers_40126(sim: SimClient) -> None:
    sim.configure(corp_tag_limit=3)
    sim.ok("externalcontact/add_corp_tag", {"group_name": "G", "tag": [{"name": "a"}, {"name": "b"}]})
    answer = sim.post(
        "externalcontact/add_corp_tag", {"group_name": "G", "tag": [{"name": "c"}, {"name": "d"}]}
    )
    assert answer["errcode"] == 40126


def test_console_tags_cannot_be_edited_by_the_app(demo: SimClient) -> None:
    tag = demo.action("client_tag", change_type="create", group_name="Console", name="Hot")
    assert demo.post("externalcontact/edit_corp_tag", {"id": tag["id"], "name": "Cold"})["errcode"] == 301002
    assert demo.post("externalcontact/del_corp_tag", {"group_id": [tag["group_id"]]})["errcode"] == 301002
    # marking a console tag is allowed
    demo.ok(
        "externalcontact/mark_tag",
        {"userid": "lina", "external_userid": demo_customer(0), "add_tag": [tag["id"]]},
    )


def test_mark_tag_errors(demo: SimClient) -> None:
    tag = demo.ok("externalcontact/add_corp_tag", {"group_name": "G", "tag": [{"name": "t"}]})["tag_group"][
        "tag"
    ][0]["id"]
    base = {"userid": "lina", "external_userid": demo_customer(0)}
    assert demo.post("externalcontact/mark_tag", {**base, "add_tag": ["etMissing"]})["errcode"] == 40068
    assert demo.post("externalcontact/mark_tag", base)["errcode"] == 40058
    assert (
        demo.post("externalcontact/mark_tag", {**base, "userid": "wangfang", "add_tag": [tag]})["errcode"]
        == 84061
    )


# --- contact ways -------------------------------------------------------------------------------------------


def test_contact_way_validation(demo: SimClient) -> None:
    api = "externalcontact/add_contact_way"
    assert demo.post(api, {"scene": 2, "user": ["lina"]})["errcode"] == 41037
    assert demo.post(api, {"type": 1, "user": ["lina"]})["errcode"] == 41038
    assert demo.post(api, {"type": 3, "scene": 2, "user": ["lina"]})["errcode"] == 41039
    assert demo.post(api, {"type": 1, "scene": 9, "user": ["lina"]})["errcode"] == 41040
    assert demo.post(api, {"type": 1, "scene": 2})["errcode"] == 40058
    assert demo.post(api, {"type": 1, "scene": 2, "user": ["lina"], "state": "s" * 31})["errcode"] == 40058
    assert demo.post(api, {"type": 1, "scene": 2, "user": ["lina"], "remark": "r" * 31})["errcode"] == 40058
    assert demo.post(api, {"type": 1, "scene": 2, "user": ["ghost"]})["errcode"] == 60111
    assert demo.post(api, {"type": 1, "scene": 2, "user": ["lina"], "state": "s" * 30})["errcode"] == 0


def test_contact_way_crud_and_round_robin(demo: SimClient) -> None:
    created = demo.ok(
        "externalcontact/add_contact_way",
        {"type": 2, "scene": 2, "user": ["lina", "wangfang"], "state": "expo"},
    )
    config_id = created["config_id"]
    assert demo.http.get(created["qr_code"]).headers["Content-Type"] == "image/png"
    way = demo.ok("externalcontact/get_contact_way", {"config_id": config_id})["contact_way"]
    assert (way["type"], way["user"], way["state"], way["skip_verify"]) == (
        2,
        ["lina", "wangfang"],
        "expo",
        True,
    )
    picked = [demo.action("add_contact", config_id=config_id)["userid"] for _ in range(3)]
    assert picked == ["lina", "wangfang", "lina"]
    demo.ok(
        "externalcontact/update_contact_way", {"config_id": config_id, "state": "expo2", "user": ["chenjing"]}
    )
    added = demo.action("add_contact", config_id=config_id)
    assert (added["userid"], added["state"]) == ("chenjing", "expo2")
    follow = demo.ok("externalcontact/get", external_userid=added["external_userid"])["follow_user"][0]
    assert (follow["state"], follow["add_way"], follow["oper_userid"]) == (
        "expo2",
        1,
        added["external_userid"],
    )
    assert demo.ok("externalcontact/list_contact_way", {})["contact_way"] == [{"config_id": config_id}]
    demo.ok("externalcontact/del_contact_way", {"config_id": config_id})
    assert demo.post("externalcontact/get_contact_way", {"config_id": config_id})["errcode"] == 41044
    assert demo.post("externalcontact/del_contact_way", {})["errcode"] == 41043


def test_contact_way_quota_is_shared_with_join_ways(demo: SimClient) -> None:
    demo.configure(contact_way_quota=2)
    demo.ok("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["lina"]})
    demo.ok("externalcontact/groupchat/add_join_way", {"scene": 2, "chat_id_list": ["wrDemo" + "0" * 26]})
    assert (
        demo.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["lina"]})["errcode"]
        == 41045
    )
    temp = {"type": 1, "scene": 2, "user": ["lina"], "is_temp": True}
    assert (
        demo.post("externalcontact/add_contact_way", temp)["errcode"] == 0
    )  # temporary ways are not counted


# --- welcome messages ---------------------------------------------------------------------------------------


def test_welcome_code_is_single_use(demo: SimClient) -> None:
    added = demo.action("add_contact", userid="lina", name="Alice")
    body = {"welcome_code": added["welcome_code"], "text": {"content": "欢迎!"}}
    assert demo.post("externalcontact/send_welcome_msg", body)["errcode"] == 0
    assert demo.post("externalcontact/send_welcome_msg", body)["errcode"] == 41051
    sent = demo.control("GET", "/sim/welcome_messages").json()["welcome_messages"]
    assert [(m["userid"], m["external_userid"], m["text"]["content"]) for m in sent] == [
        ("lina", added["external_userid"], "欢迎!")
    ]


def test_welcome_code_expires_after_20_seconds(demo: SimClient) -> None:
    code = demo.action("add_contact", userid="lina")["welcome_code"]
    demo.advance(21)
    assert (
        demo.post("externalcontact/send_welcome_msg", {"welcome_code": code, "text": {"content": "hi"}})[
            "errcode"
        ]
        == 41050
    )


def test_welcome_code_errors(demo: SimClient) -> None:
    assert demo.post("externalcontact/send_welcome_msg", {"text": {"content": "hi"}})["errcode"] == 41049
    assert (
        demo.post("externalcontact/send_welcome_msg", {"welcome_code": "nope", "text": {"content": "hi"}})[
            "errcode"
        ]
        == 41050
    )
    code = demo.action("add_contact", userid="lina")["welcome_code"]
    ten_images = [{"msgtype": "link", "link": {"title": "t", "url": "https://x"}}] * 10
    assert (
        demo.post("externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": ten_images})[
            "errcode"
        ]
        == 41064
    )
    bad_media = [{"msgtype": "image", "image": {"media_id": "3missing"}}]
    assert (
        demo.post("externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": bad_media})[
            "errcode"
        ]
        == 40007
    )
    assert (
        demo.post("externalcontact/send_welcome_msg", {"welcome_code": code, "text": {"content": "ok"}})[
            "errcode"
        ]
        == 0
    )


# --- application messages -----------------------------------------------------------------------------------


def test_app_message_frequency_limit_drops_silently(demo: SimClient) -> None:
    body = {"touser": "lina", "msgtype": "text", "agentid": 1000002, "text": {"content": "SOP reminder"}}
    answers = [demo.post("message/send", body) for _ in range(31)]
    assert all(a["errcode"] == 0 for a in answers)
    messages = demo.control("GET", "/sim/app_messages", None).json()["app_messages"]
    assert sum(1 for m in messages if "lina" in m["delivered"]) == 30
    assert messages[-1]["dropped"] == ["lina"]
    demo.advance(61)
    demo.ok("message/send", body)
    assert demo.control("GET", "/sim/app_messages").json()["app_messages"][-1]["delivered"] == ["lina"]


def test_app_message_recipients_and_errors(demo: SimClient) -> None:
    body = {
        "touser": "lina|ghost",
        "toparty": "7",
        "msgtype": "text",
        "agentid": 1000002,
        "text": {"content": "hi"},
    }
    answer = demo.ok("message/send", body)
    assert (answer["invaliduser"], answer["invalidparty"]) == ("ghost", "7")
    assert demo.post("message/send", {**body, "touser": "ghost", "toparty": ""})["errcode"] == 81013
    assert demo.post("message/send", {**body, "agentid": 42})["errcode"] == 40056
    assert demo.post("message/send", {**body, "msgtype": "fax"})["errcode"] == 40008
    assert demo.post("message/send", {**body, "text": {"content": "x" * 2049}})["errcode"] == 45002
    everyone = demo.ok("message/send", {**body, "touser": "@all", "toparty": ""})
    assert everyone["invaliduser"] == ""
    assert demo.control("GET", "/sim/app_messages").json()["app_messages"][-1]["delivered"] == DEMO_STAFF


# --- media --------------------------------------------------------------------------------------------------


def test_media_upload_and_uploadimg(demo: SimClient) -> None:
    png = tiny_png()
    url = f"{demo.base_url}/cgi-bin/media/upload"
    answer = demo.http.post(
        url, params={"access_token": demo.token, "type": "image"}, files={"media": ("a.png", png)}
    ).json()
    assert answer["errcode"] == 0 and answer["type"] == "image" and answer["media_id"]
    attachment = [{"msgtype": "image", "image": {"media_id": answer["media_id"]}}]
    code = demo.action("add_contact", userid="lina")["welcome_code"]
    demo.ok("externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": attachment})
    uploaded = demo.http.post(
        f"{demo.base_url}/cgi-bin/media/uploadimg",
        params={"access_token": demo.token},
        files={"media": ("a.png", png)},
    ).json()
    assert demo.http.get(uploaded["url"]).content == png
    wrong_type = demo.http.post(
        url, params={"access_token": demo.token, "type": "gif"}, files={"media": ("a.png", png)}
    ).json()
    assert wrong_type["errcode"] == 40004
    missing = demo.http.post(
        url, params={"access_token": demo.token, "type": "image"}, files={"other": ("a.png", png)}
    ).json()
    assert missing["errcode"] == 41005
    not_image = demo.http.post(
        f"{demo.base_url}/cgi-bin/media/uploadimg",
        params={"access_token": demo.token},
        files={"media": ("a.txt", b"hello world")},
    ).json()
    assert not_image["errcode"] == 40005
