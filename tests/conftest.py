"""Global fixtures: fixed personas (admin, operator, two guides), the fake WeCom backend, API clients."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from tests.factories import CorpFactory, StaffFactory, UserFactory
from wecom import gateway

PASSWORD = "pw-123456"


@pytest.fixture(autouse=True)
def _fresh_gateway(settings):
    """Each test gets a new fake backend (and forgets cached credentials)."""
    gateway.reset()
    yield
    gateway.reset()


@pytest.fixture
def fake_wecom(settings):
    settings.WECOM_BACKEND = "fake"
    gateway.reset()
    return gateway.get_backend()


@pytest.fixture
def corp(db):
    return CorpFactory(corp_id="wwTESTCORP0000001")


@pytest.fixture
def staff_a(corp):
    return StaffFactory(corp=corp, userid="guide_a", name="导购甲")


@pytest.fixture
def staff_b(corp):
    return StaffFactory(corp=corp, userid="guide_b", name="导购乙")


@pytest.fixture
def admin_user(db):
    return UserFactory(username="alice", role=User.Role.ADMIN, is_superuser=True, is_staff=True)


@pytest.fixture
def operator_user(db):
    return UserFactory(username="olivia", role=User.Role.OPERATOR)


@pytest.fixture
def guide_a(staff_a):
    return UserFactory(username="gina", role=User.Role.GUIDE, staff=staff_a)


@pytest.fixture
def guide_b(staff_b):
    return UserFactory(username="george", role=User.Role.GUIDE, staff=staff_b)


@pytest.fixture
def api_client_for():
    def make(user):
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def client_for():
    """A Django test client logged in as ``user`` (a session login, as for the server-rendered pages)."""

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


class Sim:
    """A running WeCom simulator and a tiny client for its control API."""

    def __init__(self, server):
        self.server = server
        self.url = server.url
        self.config = server.config

    def control(self, path: str, body: dict | None = None, method: str = "POST") -> dict:
        import json
        import urllib.request

        data = None if method == "GET" else json.dumps(body or {}).encode()
        request = urllib.request.Request(f"{self.url}/sim/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback simulator
            return json.loads(response.read() or b"{}")


@pytest.fixture(scope="session")
def _sim_server():
    from wecom.simulator.config import SimulatorConfig
    from wecom.simulator.server import SimulatorServer

    server = SimulatorServer(SimulatorConfig(
        port=0, callback_url="", corp_id="wwTESTCORP0000001", secret="test-secret", agent_id=1000002,
        token="testtoken", aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        callback_retry_intervals=(0.05, 0.05), callback_timeout=5.0,
    )).start_background()
    yield server
    server.stop()


@pytest.fixture
def wecom_sim(_sim_server, settings):
    """The http backend (wechatpy) pointed at a fresh simulator world."""
    from scrm.redis import get_redis

    sim = Sim(_sim_server)
    sim.control("reset", {"seed_demo": False})
    sim.control("faults", {"clear": True})
    sim.control("config", {"callback_url": ""})
    settings.WECOM_BACKEND = "http"
    settings.WECOM_API_BASE = f"{sim.url}/cgi-bin/"
    settings.WECOM_CORP_ID = "wwTESTCORP0000001"
    settings.WECOM_SECRET = "test-secret"
    settings.WECOM_AGENT_ID = "1000002"
    settings.WECOM_TIMEOUT = 5.0
    redis = get_redis()
    for key in redis.scan_iter(f"{settings.REDIS_KEY_PREFIX}:wecom:*"):
        redis.delete(key)
    gateway.reset()
    yield sim
    gateway.reset()
