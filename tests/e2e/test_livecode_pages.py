"""Live codes in a real browser: create a group code, upload its group QRs, scan it as a phone would."""

import pytest

from livecodes.models import LiveCode
from tests.livecodes.helpers import qr_png

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_operator_builds_a_group_code_and_a_phone_scans_it(new_session, corp, operator_user, tmp_path):
    from django.conf import settings

    from scrm.redis import get_redis

    for key in get_redis().scan_iter(f"{settings.REDIS_KEY_PREFIX}:lc:*"):
        get_redis().delete(key)
    operator = new_session()
    operator.login(operator_user.username)
    operator.goto("/livecodes/")
    operator.page.click("text=新建群活码")
    operator.page.fill("input[name=name]", "周末福利群")
    operator.page.fill("input[name=title]", "扫码领取周末福利")
    with operator.page.expect_navigation():
        operator.page.click("form.form-stacked button[type=submit]")
    code = LiveCode.objects.get(name="周末福利群")
    files = []
    for i in range(2):
        path = tmp_path / f"福利{i}群.png"
        path.write_bytes(qr_png(f"https://weixin.qq.com/g/e2e{i}"))
        files.append(str(path))
    operator.page.set_input_files("input[name=images]", files)
    with operator.page.expect_navigation():
        operator.page.click("form[action$='/pool/upload/'] button[type=submit]")
    assert "2" in operator.page.inner_text(".messages")
    assert code.targets.count() == 2
    assert operator.page.locator("img.qr-preview").evaluate("img => img.naturalWidth") == 256

    phone = new_session()
    phone.page.set_viewport_size({"width": 390, "height": 800})
    phone.goto(f"/l/{code.slug}")
    assert phone.page.inner_text("h1") == "扫码领取周末福利"
    assert "长按识别二维码" in phone.page.inner_text("figcaption")
    qr = phone.page.locator(".lc-qr img")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    first = phone.page.inner_text(".lc-target")
    phone.page.reload()
    assert phone.page.inner_text(".lc-target") == first  # the same group on a second scan

    operator.goto(f"/livecodes/{code.pk}/stats/")
    assert operator.page.locator(".stat-value").first.is_visible()
    for session in (operator, phone):
        assert session.csp_violations() == [] and session.page_errors == []
