"""Media ids as WeCom checks them: media/upload?type=image takes only JPG/PNG bytes (40005); an attachment's media id
(an image's media_id, a mini-program cover's pic_media_id, a video or file) must be a temporary media id of that
type uploaded less than 3 days ago, and the id behind a permanent media/uploadimg URL is not one (40007)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from .conftest import SimClient
from .test_sim_customers import tiny_png

DAY = 86400
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00"


def customer(i: int) -> str:
    return "wmDemo" + f"{i:026d}"


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(out, format="JPEG")
    return out.getvalue()


def upload(sim: SimClient, kind: str, data: bytes, name: str = "a.bin") -> dict[str, Any]:
    return sim.http.post(f"{sim.base_url}/cgi-bin/media/upload", params={"access_token": sim.token, "type": kind},
                         files={"media": (name, data)}).json()


def media_id(sim: SimClient, kind: str, data: bytes) -> str:
    answer = upload(sim, kind, data)
    assert answer["errcode"] == 0, answer
    return answer["media_id"]


def uploadimg_id(sim: SimClient) -> str:
    answer = sim.http.post(f"{sim.base_url}/cgi-bin/media/uploadimg", params={"access_token": sim.token},
                           files={"media": ("a.png", tiny_png())}).json()
    assert answer["errcode"] == 0, answer
    return answer["url"].rsplit("/", 1)[1]  # the simulator's URL ends with the id it keeps


def card(pic_media_id: str | None) -> list[dict[str, Any]]:
    body = {"title": "会员商城", "appid": "wx1234567890abcdef", "page": "pages/index/index"}
    if pic_media_id is not None:
        body["pic_media_id"] = pic_media_id
    return [{"msgtype": "miniprogram", "miniprogram": body}]


def mass(sim: SimClient, attachments: list[dict[str, Any]]) -> int:
    return sim.post("externalcontact/add_msg_template", {
        "sender": "zhangwei", "external_userid": [customer(5)], "text": {"content": "hi"},
        "attachments": attachments})["errcode"]


# --- (c) media/upload?type=image takes images only ----------------------------------------------------------------
@pytest.mark.parametrize(("data", "errcode"), [
    (tiny_png(), 0), (jpeg(), 0),
    (b"hello world, not an image", 40005), (GIF, 40005),  # WeCom: "图片（image）：10MB，支持JPG,PNG格式"
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 32, 40005),
])
def test_image_upload_checks_the_first_bytes(demo: SimClient, data: bytes, errcode: int) -> None:
    answer = upload(demo, "image", data, "cover.png")
    assert answer["errcode"] == errcode, answer
    assert ("media_id" in answer) == (errcode == 0)


def test_other_media_types_take_any_bytes(demo: SimClient) -> None:
    assert upload(demo, "file", b"hello world")["errcode"] == 0
    assert upload(demo, "file", tiny_png())["type"] == "file"  # an image uploaded as a file is a file


# --- (a), (b), (d) the cover of a mini-program card -----------------------------------------------------------------
def test_mass_message_mini_program_needs_an_image_media_id(demo: SimClient) -> None:
    image = media_id(demo, "image", tiny_png())
    as_file = media_id(demo, "file", tiny_png())
    voice = media_id(demo, "voice", b"#!AMR\n" + b"\x00" * 64)
    video = media_id(demo, "video", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    permanent = uploadimg_id(demo)
    assert mass(demo, card(None)) == 40058  # pic_media_id is required
    assert mass(demo, card("3nosuchmedia")) == 40007
    for wrong in (as_file, voice, video, permanent):
        assert mass(demo, card(wrong)) == 40007, wrong
    assert mass(demo, card(image)) == 0
    sent = demo.control("GET", "/sim/state").json()["world"]["mass_messages"]
    assert [m["attachments"] for m in sent.values()] == [card(image)]  # only the accepted one became a task


def test_a_cover_media_id_expires_after_three_days(demo: SimClient) -> None:
    image = media_id(demo, "image", jpeg())
    demo.advance(3 * DAY - 60)
    demo.refresh_token()  # the access token expired too
    assert mass(demo, card(image)) == 0
    demo.advance(120)
    demo.refresh_token()
    assert mass(demo, card(image)) == 40007
    assert mass(demo, card(media_id(demo, "image", jpeg()))) == 0  # a fresh upload works again


def test_welcome_mini_program_needs_an_image_media_id_and_a_refusal_keeps_the_code(demo: SimClient) -> None:
    code = demo.action("add_contact", userid="lina")["welcome_code"]
    for wrong in (media_id(demo, "file", tiny_png()), uploadimg_id(demo), "3nosuchmedia"):
        answer = demo.post("externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": card(wrong)})
        assert answer["errcode"] == 40007, answer
    image = media_id(demo, "image", tiny_png())
    demo.ok("externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": card(image)})


# --- (b) every attachment's media id has the attachment's type ------------------------------------------------------
def test_attachment_media_ids_must_have_the_attachment_type(demo: SimClient) -> None:
    image = media_id(demo, "image", tiny_png())
    as_file = media_id(demo, "file", b"a report")
    video = media_id(demo, "video", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    assert mass(demo, [{"msgtype": "image", "image": {"media_id": as_file}}]) == 40007
    assert mass(demo, [{"msgtype": "file", "file": {"media_id": image}}]) == 40007
    assert mass(demo, [{"msgtype": "video", "video": {"media_id": as_file}}]) == 40007
    assert mass(demo, [{"msgtype": "image", "image": {"media_id": uploadimg_id(demo)}}]) == 40007
    assert mass(demo, [{"msgtype": "image", "image": {"media_id": image}}, {"msgtype": "file", "file": {
        "media_id": as_file}}, {"msgtype": "video", "video": {"media_id": video}}]) == 0


def test_a_permanent_image_url_goes_in_pic_url(demo: SimClient) -> None:
    url = demo.http.post(f"{demo.base_url}/cgi-bin/media/uploadimg", params={"access_token": demo.token},
                         files={"media": ("a.png", tiny_png())}).json()["url"]
    assert mass(demo, [{"msgtype": "image", "image": {"pic_url": url}}]) == 0
    demo.advance(4 * DAY)  # a permanent URL does not expire
    demo.refresh_token()
    assert mass(demo, [{"msgtype": "image", "image": {"pic_url": url}}]) == 0


def test_remark_picture_must_be_an_image_media_id(demo: SimClient) -> None:
    body = {"userid": "lina", "external_userid": customer(0), "remark": "VIP"}
    assert demo.post("externalcontact/remark", {**body, "remark_pic_mediaid": media_id(demo, "file", b"not a pic")})[
        "errcode"] == 40007
    demo.ok("externalcontact/remark", {**body, "remark_pic_mediaid": media_id(demo, "image", tiny_png())})
