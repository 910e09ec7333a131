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


def _submit(operator) -> None:
    with operator.page.expect_navigation():
        operator.page.click("form.form-stacked button[type=submit]")


def test_operator_adds_a_mini_program_with_its_cover(new_session, corp, operator_user, tmp_path):
    code = services.livecode_create(corp=corp, kind="staff", name="会员码", welcome_text="欢迎")
    good = tmp_path / "封面.png"
    good.write_bytes(_png("orange"))
    bad = tmp_path / "封面.txt"
    bad.write_bytes(b"this is not an image")

    operator = new_session()
    operator.login(operator_user.username)
    operator.goto(f"/livecodes/{code.pk}/edit/")
    page = operator.page
    # Missing appid: the field says so, nothing is saved.
    page.fill("input[name=mp-title]", "会员商城")
    page.fill("input[name=mp-page]", "pages/index/index")
    page.set_input_files("input[name=mp-cover]", str(good))
    _submit(operator)
    assert page.locator("#id_mp-appid + .field-error, #id_mp-appid ~ .field-error").count() == 1
    assert not code.welcome_miniprograms.exists()

    # A cover that is not an image: refused with the file's name, nothing saved.
    page.fill("input[name=mp-appid]", "wx1234567890abcdef")
    page.set_input_files("input[name=mp-cover]", str(bad))
    _submit(operator)
    assert "封面.txt" in page.inner_text(".miniprogram-error")
    assert not code.welcome_miniprograms.exists()

    # Everything given (the typed values survived the refused attempts).
    assert page.input_value("input[name=mp-appid]") == "wx1234567890abcdef"
    page.set_input_files("input[name=mp-cover]", str(good))
    _submit(operator)
    program = code.welcome_miniprograms.get()
    assert (program.title, program.appid, program.page, program.name) == (
        "会员商城", "wx1234567890abcdef", "pages/index/index", "封面.png")
    assert bytes(program.image) == _png("orange")

    operator.goto(f"/livecodes/{code.pk}/edit/")
    thumb = page.locator("img.miniprogram-thumb")
    assert thumb.count() == 1 and thumb.evaluate("img => img.complete && img.naturalWidth") == 120
    assert "会员商城" in page.inner_text(".welcome-miniprograms")
    page.locator("input[name=welcome_miniprogram_remove]").check()
    _submit(operator)
    assert not code.welcome_miniprograms.exists()
    assert operator.csp_violations() == [] and operator.page_errors == []
