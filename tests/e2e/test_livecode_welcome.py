"""The live code's edit page in a real browser: upload welcome images, see them, remove one."""

import io

import pytest
from PIL import Image

from livecodes import services

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _png(color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 80), color).save(out, format="PNG")
    return out.getvalue()


def test_operator_uploads_and_removes_welcome_images(new_session, corp, operator_user, tmp_path):
    code = services.livecode_create(corp=corp, kind="staff", name="门店海报", welcome_text="你好")
    paths = []
    for name, color in (("海报.png", "red"), ("菜单.png", "green")):
        path = tmp_path / name
        path.write_bytes(_png(color))
        paths.append(str(path))
    bad = tmp_path / "动图.gif"
    bad.write_bytes(b"GIF89a" + b"\x00" * 32)

    operator = new_session()
    operator.login(operator_user.username)
    operator.goto(f"/livecodes/{code.pk}/edit/")
    operator.page.set_input_files("input[name=welcome_images]", [*paths, str(bad)])
    with operator.page.expect_navigation():
        operator.page.click("form.form-stacked button[type=submit]")
    assert "动图.gif" in operator.page.inner_text(".field-error")  # refused, and nothing was saved
    assert not code.welcome_images.exists()

    operator.page.set_input_files("input[name=welcome_images]", paths)
    with operator.page.expect_navigation():
        operator.page.click("form.form-stacked button[type=submit]")
    assert [i.name for i in code.welcome_images.all()] == ["海报.png", "菜单.png"]

    operator.goto(f"/livecodes/{code.pk}/edit/")
    thumbs = operator.page.locator("img.welcome-thumb")
    assert thumbs.count() == 2
    assert thumbs.first.evaluate("img => img.complete && img.naturalWidth") == 120
    operator.page.locator("input[name=welcome_image_remove]").first.check()
    with operator.page.expect_navigation():
        operator.page.click("form.form-stacked button[type=submit]")
    assert [i.name for i in code.welcome_images.all()] == ["菜单.png"]
    assert operator.csp_violations() == [] and operator.page_errors == []
