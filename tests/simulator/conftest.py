"""Fixtures for the WeCom simulator tests: one in-thread simulator per session, reset before every test,
and a local HTTP receiver that records (and decrypts) the callbacks it gets."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from defusedxml import ElementTree

from wecom.simulator import SimulatorConfig, SimulatorServer, WeComCrypto

CORP_ID = "wwSIMCORP00000001"
SECRET = "sim-secret"
AGENT_ID = 1000002

# Everything a test may change through POST /sim/config, restored before each test.
BASELINE_SETTINGS: dict[str, Any] = {
    "callback_timeout": 2.0,
    "callback_retry_intervals": [0, 0],
    "token_ttl": 7200,
    "welcome_code_ttl": 20,
    "contact_way_quota": 500_000,
    "corp_tag_limit": 3000,
    "rate_limit_per_minute": 10_000,
    "rate_limit_per_hour": 150_000,
    "api_rate_limits": {},
    "mass_msg_quota_period": "month",
    "mass_msg_quota_limit": None,
    "app_msg_per_minute": 30,
    "app_msg_per_hour": 1000,
    "join_way_qr_capacity": 200,
    "group_capacity": 500,
}


def parse_event_xml(xml: str) -> dict[str, Any]:
    """Child elements as a dict; elements with <Item> children become lists."""
    root = ElementTree.fromstring(xml)
    fields: dict[str, Any] = {}
    for child in root:
        items = child.findall("Item")
        fields[child.tag] = [item.text or "" for item in items] if items else (child.text or "")
    return fields


@dataclass
class ReceivedRequest:
    method: str
    query: dict[str, str]
    body: bytes


@dataclass
class CallbackReceiver:
    """A webhook stand-in. ``status`` is what it answers to POSTs."""

    crypto: WeComCrypto
    status: int = 200
    requests: list[ReceivedRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> CallbackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._record("POST", self.path, body)
                self._answer(receiver.status, b"")

            def do_GET(self) -> None:
                query = receiver._record("GET", self.path, b"")
                plaintext = receiver.crypto.decrypt_signed(
                    query["msg_signature"], query["timestamp"], query["nonce"], query["echostr"]
                )
                self._answer(200, plaintext.encode())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/wecom/callback/"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
        self.status = 200

    def posts(self) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def events(self) -> list[dict[str, Any]]:
        """Verify, decrypt and parse every POSTed callback, in arrival order."""
        events = []
        for request in self.posts():
            envelope = parse_event_xml(request.body.decode())
            assert envelope["ToUserName"] == CORP_ID
            assert envelope["AgentID"] == str(AGENT_ID)
            plaintext = self.crypto.decrypt_signed(
                request.query["msg_signature"],
                request.query["timestamp"],
                request.query["nonce"],
                envelope["Encrypt"],
            )
            events.append(parse_event_xml(plaintext))
        return events

    def _record(self, method: str, path: str, body: bytes) -> dict[str, str]:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        with self._lock:
            self.requests.append(ReceivedRequest(method, query, body))
        return query


class SimClient:
    """A thin requests-based client for the wire protocol and the control API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.trust_env = False  # never route loopback calls through a proxy from the environment
        self._token: str | None = None

    # wire protocol
    def gettoken(self, corpid: str = CORP_ID, secret: str = SECRET) -> dict[str, Any]:
        return self.http.get(
            f"{self.base_url}/cgi-bin/gettoken", params={"corpid": corpid, "corpsecret": secret}
        ).json()

    @property
    def token(self) -> str:
        if self._token is None:
            answer = self.gettoken()
            assert answer["errcode"] == 0, answer
            self._token = answer["access_token"]
        return self._token

    def refresh_token(self) -> None:
        """Forget the cached token (e.g. after moving the clock past its expiry)."""
        self._token = None

    def get(self, api: str, **params: Any) -> dict[str, Any]:
        params.setdefault("access_token", self.token)
        response = self.http.get(f"{self.base_url}/cgi-bin/{api}", params=params)
        assert response.status_code == 200
        return response.json()

    def post(self, api: str, body: dict[str, Any] | bytes, **params: Any) -> dict[str, Any]:
        """POST like wechatpy does: UTF-8 JSON bytes and no Content-Type header."""
        params.setdefault("access_token", self.token)
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        response = self.http.post(f"{self.base_url}/cgi-bin/{api}", params=params, data=data)
        assert response.status_code == 200
        assert "Content-Type" not in response.request.headers
        return response.json()

    def ok(self, api: str, body: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        """Call (GET without a body, POST with one) and assert errcode 0."""
        answer = self.get(api, **params) if body is None else self.post(api, body, **params)
        assert answer["errcode"] == 0, answer
        return answer

    # control API
    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        return self.http.request(method, f"{self.base_url}{path}", json=body)

    def action(self, action: str, /, **body: Any) -> dict[str, Any]:
        response = self.control("POST", f"/sim/actions/{action}", body)
        assert response.status_code == 200, response.text
        return response.json()

    def configure(self, **settings: Any) -> None:
        response = self.control("POST", "/sim/config", settings)
        assert response.status_code == 200, response.text

    def advance(self, seconds: float) -> None:
        assert self.control("POST", "/sim/clock", {"advance_seconds": seconds}).status_code == 200

    def wait(self, timeout: float = 10) -> None:
        response = self.control("POST", "/sim/callbacks/wait", {"timeout": timeout})
        assert response.status_code == 200 and response.json()["idle"], response.text

    def callbacks(self) -> list[dict[str, Any]]:
        return self.control("GET", "/sim/callbacks").json()["callbacks"]


@pytest.fixture(scope="session")
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, callback_url="", callback_retry_intervals=(0, 0))


@pytest.fixture(scope="session")
def sim_server(sim_config: SimulatorConfig) -> Iterator[SimulatorServer]:
    server = SimulatorServer(sim_config).start_background()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _receiver(sim_config: SimulatorConfig) -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver(WeComCrypto(sim_config.token, sim_config.aes_key, sim_config.corp_id)).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def receiver(_receiver: CallbackReceiver) -> CallbackReceiver:
    return _receiver


@pytest.fixture
def sim(sim_server: SimulatorServer, _receiver: CallbackReceiver) -> SimClient:
    """A client on a freshly reset simulator (empty world) whose callbacks go to ``receiver``."""
    client = SimClient(sim_server.url)
    client.wait()
    assert client.control("POST", "/sim/reset", {}).status_code == 200
    client.configure(callback_url=_receiver.url, **BASELINE_SETTINGS)
    _receiver.clear()
    return client


@pytest.fixture
def demo(sim: SimClient) -> SimClient:
    """Same as ``sim`` but with the demo world loaded."""
    assert sim.control("POST", "/sim/reset", {"seed_demo": True}).status_code == 200
    return sim
