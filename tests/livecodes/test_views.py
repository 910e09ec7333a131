"""Pages and API: the public landing page, QR downloads, the operator pages (auth matrix), the stats API."""

import io

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from livecodes import hotpath, services
from livecodes.models import LiveCode
from tests.conftest import PASSWORD
from tests.livecodes.helpers import group_code, qr_png

pytestmark = pytest.mark.django_db


@pytest.fixture
def code(corp):
    return group_code(corp, images=2, cap=100, title="扫码进群", description="领取福利")


def test_landing_page_shows_the_routed_qr_and_sets_a_sticky_cookie(client, code):
    response = client.get(f"/l/{code.slug}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "扫码进群" in html and "长按识别二维码" in html
    assert "<script" not in html and "style=" not in html
    assert hotpath.COOKIE in response.cookies and response.cookies[hotpath.COOKIE]["httponly"]
    image_url = next(part.split('"')[0] for part in html.split('src="')[1:] if "/qr/" in part)
    image = client.get(image_url.replace("&amp;", "&"))
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    again = client.get(f"/l/{code.slug}")
    assert again.content.decode().count(image_url) == 1  # same group for the same visitor


def test_unknown_slug_is_a_friendly_404(client, db):
    response = client.get("/l/doesnotexist")
    assert response.status_code == 404
    assert "不存在" in response.content.decode()


def test_disabled_code_shows_a_friendly_page(client, code):
    services.livecode_update(code=code, status=LiveCode.Status.DISABLED)
    hotpath.snapshot_forget(code.slug)
    response = client.get(f"/l/{code.slug}")
    assert response.status_code == 200 and "活动已结束" in response.content.decode()


def test_image_of_another_version_is_not_served(client, code):
    target = code.targets.first()
    assert client.get(f"/l/{code.slug}/qr/{target.pk}.img?v=000000000000").status_code == 404


@pytest.fixture
def logged(operator_user):
    client = Client()
    client.login(username=operator_user.username, password=PASSWORD)
    return client


def test_permanent_qr_png_and_svg(logged, code, settings):
    import zxingcpp

    settings.LIVECODE_PUBLIC_BASE_URL = "https://scrm.example.com"
    png = logged.get(reverse("livecodes:qr", args=[code.pk, "png"]) + "?size=512")
    assert png["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.size == (512, 512)
    assert zxingcpp.read_barcodes(image)[0].text == f"https://scrm.example.com/l/{code.slug}"
    svg = logged.get(reverse("livecodes:qr", args=[code.pk, "svg"]) + "?download=1")
    assert svg["Content-Type"] == "image/svg+xml" and svg.content.startswith(b"<svg")
    assert "attachment" in svg["Content-Disposition"]


@pytest.mark.parametrize(("persona", "status"), [("admin_user", 200), ("operator_user", 200), ("guide_a", 403)])
def test_operator_pages_by_role(request, code, persona, status):
    user = request.getfixturevalue(persona)
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    assert client.get(reverse("livecodes:list")).status_code == 200
    for name in ("detail", "edit", "stats"):
        assert client.get(reverse(f"livecodes:{name}", args=[code.pk])).status_code == status
    assert client.get(reverse("livecodes:create")).status_code == status


def test_create_a_code_and_upload_its_pool_from_the_pages(logged, corp):
    response = logged.post(reverse("livecodes:create"), {
        "name": "页面创建", "kind": "group", "mode": "fill", "low_capacity": 50, "qr_fg": "#000000",
        "qr_bg": "#ffffff", "status": "active"})
    code = LiveCode.objects.get(name="页面创建")
    assert response.status_code == 302 and response["Location"] == reverse("livecodes:detail", args=[code.pk])
    good = io.BytesIO(qr_png("https://weixin.qq.com/g/page1"))
    good.name = "一群.png"
    bad = io.BytesIO(b"not an image")
    bad.name = "bad.png"
    response = logged.post(reverse("livecodes:pool_upload", args=[code.pk]), {"images": [good, bad]}, follow=True)
    html = response.content.decode()
    assert code.targets.count() == 1 and "bad.png" in html
    detail = logged.get(reverse("livecodes:detail", args=[code.pk])).content.decode()
    assert "一群" in detail


def test_stats_page_and_csv(logged, code):
    for _ in range(3):
        hotpath.scan(slug=code.slug, cookie=None)
    services.scans_flush()
    assert logged.get(reverse("livecodes:stats", args=[code.pk])).status_code == 200
    response = logged.get(reverse("livecodes:stats", args=[code.pk]) + "?format=csv")
    csv = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = csv.strip().splitlines()
    assert lines[0].startswith("day,scans,unique_visitors,adds,joins")
    assert lines[-1].split(",")[1:3] == ["3", "3"]


def test_stats_api(api_client_for, operator_user, guide_a, code):
    for _ in range(2):
        hotpath.scan(slug=code.slug, cookie=None)
    services.scans_flush()
    response = api_client_for(operator_user).get(f"/api/livecodes/{code.pk}/stats/?days=7")
    assert response.status_code == 200
    days = response.json()["days"]
    assert len(days) == 7
    assert set(days[-1]) >= {"day", "scans", "unique_visitors", "adds", "joins"}
    assert (days[-1]["scans"], days[-1]["unique_visitors"]) == (2, 2)
    assert api_client_for(guide_a).get(f"/api/livecodes/{code.pk}/stats/").status_code == 403
    assert api_client_for(operator_user).get("/api/livecodes/999999/stats/").status_code == 404


def test_api_create_and_list(api_client_for, operator_user, corp):
    client = api_client_for(operator_user)
    response = client.post("/api/livecodes/", {"kind": "staff", "name": "API 码", "state": "x" * 25}, format="json")
    assert response.status_code == 400 and "渠道参数" in response.json()["message"]
    response = client.post("/api/livecodes/", {"kind": "staff", "name": "API 码"}, format="json")
    assert response.status_code == 201 and response.json()["url"].startswith("/l/")
    assert [c["name"] for c in client.get("/api/livecodes/").json()] == ["API 码"]
    targets = client.get(f"/api/livecodes/{response.json()['id']}/targets/")
    assert targets.status_code == 200 and targets.json() == []


def test_landing_skips_session_and_auth_but_keeps_the_security_headers(client, code):
    response = client.get(f"/l/{code.slug}")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response and response["Content-Language"] == "zh-hans"
    assert response["Content-Length"] == str(len(response.content))
    assert set(response.cookies) == {hotpath.COOKIE}  # no session or CSRF cookie
    assert not hasattr(response.wsgi_request, "session") and not hasattr(response.wsgi_request, "user")
    assert client.head(f"/l/{code.slug}").status_code == 405  # anything but GET takes the normal stack
