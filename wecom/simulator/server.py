"""HTTP front of the simulator: ``/cgi-bin/*`` (WeCom wire protocol) and ``/sim/*`` (control API, console).

``SimulatorServer`` runs in-process (tests) or from ``python -m wecom.simulator`` (``main``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType

from .app import Simulator
from .config import SimulatorConfig, config_from_args
from .control import handle_control
from .persistence import StateFileError
from .transport import Request, Response
from .wire.dispatch import API_PREFIX, handle_api
from .wire.official_account import OA_OAUTH_PATH, handle_oa_oauth

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        super().__init__(address, _Handler)
        self.simulator = simulator


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "WeComSimulator/1.0"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK adds ~40 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._send(Response.json({"error": str(exc)}, exc.status))
            return
        request = Request(
            method=method,
            path=url.path,
            query=dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)),
            body=body,
            content_type=self.headers.get("Content-Type", ""),
            client_ip=self.client_address[0],
        )
        self._send(self._route(request))

    def _route(self, request: Request) -> Response:
        simulator = self.server.simulator
        if request.path.startswith(API_PREFIX):
            return handle_api(simulator, request)
        if request.path == OA_OAUTH_PATH:
            return handle_oa_oauth(simulator, request)
        if request.path == "/":
            return Response.redirect("/sim/")
        if request.path == "/sim" or request.path.startswith("/sim/"):
            return handle_control(simulator, request)
        return Response.json({"error": f"not found: {request.path}"}, 404)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length") or "0"
        if not raw_length.isdigit():
            raise _BodyError(400, "invalid Content-Length")
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            raise _BodyError(413, f"body larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise _BodyError(400, "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(413, f"body larger than {MAX_BODY_BYTES} bytes")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)


class SimulatorServer:
    """The simulator on a socket. ``start_background()`` binds and serves from a thread; ``stop()`` ends it."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.simulator = Simulator(self.config)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{_url_host(str(host))}:{port}"

    def start_background(self) -> SimulatorServer:
        self._httpd = _HTTPServer((self.config.host, self.config.port), self.simulator)
        if not self.simulator.public_url:
            self.simulator.public_url = self.url
        try:
            self.simulator.start()
        except BaseException:
            self._httpd.server_close()
            self._httpd = None
            raise
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="sim-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.simulator.stop()
        self._httpd = None

    def __enter__(self) -> SimulatorServer:
        return self.start_background()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: prints ``SIMULATOR LISTENING http://HOST:PORT`` once bound; SIGINT/SIGTERM stop it."""
    logging.basicConfig(
        level=os.environ.get("SIM_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = config_from_args(argv, os.environ)
    server = SimulatorServer(config)
    try:
        server.start_background()
    except (OSError, StateFileError) as exc:
        print(f"simulator failed to start: {exc}", file=sys.stderr)
        return 1
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"SIMULATOR LISTENING {server.url}", flush=True)
    try:
        while not stop_requested.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
