import subprocess
import sys

import pytest


@pytest.mark.django_db
def test_healthz_reports_each_dependency(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_healthz_says_which_dependency_failed(client, monkeypatch):
    from scrm import views

    def broken():
        raise ConnectionError("down")

    monkeypatch.setattr(views, "get_redis", lambda: type("R", (), {"ping": staticmethod(broken)})())
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail" and body["redis"].startswith("fail") and body["database"] == "ok"


def _settings_error(**env) -> str:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SECRET_KEY": "x", "PYTHONPATH": "."}
    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='scrm.settings'; django.setup()"
    result = subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True, text=True,
                            timeout=60)
    return result.stderr


@pytest.mark.parametrize(("env", "message"), [
    ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG='maybe' is not a boolean"),
    ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must be a postgres:// URL"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL must be a redis://"),
    ({"WECOM_API_BASE": "https://qyapi.weixin.qq.com/"}, "must end in /cgi-bin/"),
    ({"WECOM_AES_KEY": "short"}, "WECOM_AES_KEY must be exactly 43 characters"),
    ({"WECOM_TIMEOUT": "soon"}, "WECOM_TIMEOUT='soon' is not a number"),
    ({"CORP_TIME_ZONE": "Mars/Base"}, "CORP_TIME_ZONE='Mars/Base' is not a known time zone"),
    ({"WECOM_BACKEND": "smoke"}, "WECOM_BACKEND='smoke' must be 'http' or 'fake'"),
    ({"LIVECODE_OA_APPID": "wxONLYAPPID"}, "LIVECODE_OA_APPID and LIVECODE_OA_SECRET are set together"),
    ({"WECHAT_OA_API_BASE": "https://api.weixin.qq.com"}, "WECHAT_OA_API_BASE='https://api.weixin.qq.com' must end in /"),
])
def test_bad_settings_fail_loudly_at_startup(env, message):
    assert message in _settings_error(**env)


def test_missing_secret_key_fails_outside_debug():
    result = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='scrm.settings';"
                               " django.setup()"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}, capture_output=True, text=True, timeout=60,
    )
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='scrm.settings'; django.setup();"
            "from django.conf import settings; print(settings.SECRET_KEY)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ".", "DJANGO_SECRET_KEY_FILE": str(secret)})
    assert result.stdout.strip() == "from-a-file"
