"""Simulator configuration: start-up options (CLI flags with environment fallbacks) and runtime settings.

``SimulatorConfig`` is fixed for the life of the process (identity of the fake corp, where to listen).
``Settings`` holds the knobs the control API may change while running (``POST /sim/config``): callback
URL and retry policy, quotas and limits. Many limits are **[unconfirmed]** in API.md, hence configurable.
"""

from __future__ import annotations

import argparse
import copy
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .crypto import InvalidAESKeyError, decode_aes_key
from .errors import bad_request
from .params import Params

DEFAULT_AES_KEY = "d2Vjb20tc2ltdWxhdG9yLWZpeGVkLWFlcy1rZXktMzI"
MASS_QUOTA_PERIODS = ("month", "week", "day")


@dataclass(frozen=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8900
    public_url: str = ""
    callback_url: str = "http://127.0.0.1:8000/wecom/callback/"
    corp_id: str = "wwSIMCORP00000001"
    secret: str = "sim-secret"
    agent_id: int = 1000002
    oa_appid: str = "wxSIMOA0000000001"  # a WeChat official account for landing-page OAuth (API.md §8)
    oa_secret: str = "sim-oa-secret"
    token: str = "simtoken"
    aes_key: str = DEFAULT_AES_KEY
    state_file: str = ""
    seed_demo: bool = False
    callback_timeout: float = 5.0
    callback_retry_intervals: tuple[float, ...] = (5.0, 10.0)

    def __post_init__(self) -> None:
        try:
            decode_aes_key(self.aes_key)
        except InvalidAESKeyError as exc:
            raise ValueError(f"--aes-key: {exc}") from exc
        if not self.token or len(self.token) > 32 or not self.token.isalnum():
            raise ValueError("--token must be 1-32 letters or digits")
        if self.callback_url and not self.callback_url.startswith(("http://", "https://")):
            raise ValueError("--callback-url must be an http(s) URL or empty (delivery disabled)")
        if not 0 <= self.port <= 65535:
            raise ValueError("--port must be between 0 and 65535")


@dataclass
class Settings:
    """Runtime-changeable knobs. Reads are plain attribute reads; updates swap values under a lock."""

    callback_url: str
    callback_timeout: float = 5.0
    callback_retry_intervals: list[float] = field(default_factory=lambda: [5.0, 10.0])
    token_ttl: int = 7200
    welcome_code_ttl: int = 20
    contact_way_quota: int = 500_000
    corp_tag_limit: int = 3000
    rate_limit_per_minute: int = 10_000
    rate_limit_per_hour: int = 150_000
    api_rate_limits: dict[str, int] = field(default_factory=dict)
    mass_msg_quota_period: str = "month"
    mass_msg_quota_limit: int | None = None
    app_msg_per_minute: int = 30
    app_msg_per_hour: int = 1000
    join_way_qr_capacity: int = 200
    group_capacity: int = 500
    media_ttl: int = 3 * 86400
    callback_ips: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: SimulatorConfig) -> Settings:
        return cls(
            callback_url=config.callback_url,
            callback_timeout=config.callback_timeout,
            callback_retry_intervals=list(config.callback_retry_intervals),
        )

    @property
    def callback_attempts(self) -> int:
        """Total delivery attempts: the first try plus one per retry interval."""
        return 1 + len(self.callback_retry_intervals)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                f.name: copy.deepcopy(getattr(self, f.name))
                for f in fields(self)
                if not f.name.startswith("_")
            }

    def update(self, params: Params) -> None:
        """Validate every given field first, then apply them all (all-or-nothing)."""
        changes = _parse_setting_changes(params)
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)


def _parse_setting_changes(p: Params) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "callback_url" in p.raw:
        url = p.text("callback_url").strip()
        if url and not url.startswith(("http://", "https://")):
            raise bad_request("callback_url must be an http(s) URL or empty (delivery disabled)")
        changes["callback_url"] = url
    if p.has("callback_timeout"):
        changes["callback_timeout"] = p.number("callback_timeout", minimum=0.05)
    if "callback_retry_intervals" in p.raw:
        raw = p.raw["callback_retry_intervals"]
        if not isinstance(raw, list) or not all(
            isinstance(item, int | float) and not isinstance(item, bool) and item >= 0 for item in raw
        ):
            raise bad_request("callback_retry_intervals must be a list of non-negative seconds")
        changes["callback_retry_intervals"] = [float(item) for item in raw]
    for name in (
        "token_ttl",
        "welcome_code_ttl",
        "contact_way_quota",
        "corp_tag_limit",
        "rate_limit_per_minute",
        "rate_limit_per_hour",
        "app_msg_per_minute",
        "app_msg_per_hour",
        "join_way_qr_capacity",
        "group_capacity",
        "media_ttl",
    ):
        if p.has(name):
            changes[name] = p.integer(name, minimum=1)
    if "api_rate_limits" in p.raw:
        limits = p.obj("api_rate_limits")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in limits.values()):
            raise bad_request("api_rate_limits values must be positive integers (calls per minute)")
        changes["api_rate_limits"] = dict(limits)
    if p.has("mass_msg_quota_period"):
        period = p.text("mass_msg_quota_period")
        if period not in MASS_QUOTA_PERIODS:
            raise bad_request(f"mass_msg_quota_period must be one of {', '.join(MASS_QUOTA_PERIODS)}")
        changes["mass_msg_quota_period"] = period
    if "mass_msg_quota_limit" in p.raw:
        changes["mass_msg_quota_limit"] = p.integer("mass_msg_quota_limit", minimum=0)
    if "callback_ips" in p.raw:
        changes["callback_ips"] = p.text_list("callback_ips")
    return changes


# --- command line -----------------------------------------------------------------------------------------


def build_arg_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    def env(name: str, default: str) -> str:
        return environ.get(name) or default

    parser = argparse.ArgumentParser(
        prog="python -m wecom.simulator",
        description="WeCom stand-in server: speaks the /cgi-bin/ wire protocol and fires encrypted callbacks.",
    )
    parser.add_argument("--host", default=env("SIM_HOST", "127.0.0.1"), help="bind address (SIM_HOST)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(env("SIM_PORT", "8900")),
        help="bind port, 0 = any free port (SIM_PORT)",
    )
    parser.add_argument(
        "--public-url",
        default=env("SIM_PUBLIC_URL", ""),
        help="base URL used in qr_code and image URLs (SIM_PUBLIC_URL; default: the listening URL)",
    )
    parser.add_argument(
        "--callback-url",
        default=env("SIM_CALLBACK_URL", "http://127.0.0.1:8000/wecom/callback/"),
        help="where encrypted callbacks are POSTed (SIM_CALLBACK_URL); empty disables delivery",
    )
    parser.add_argument(
        "--corp-id", default=env("WECOM_CORP_ID", "wwSIMCORP00000001"), help="(WECOM_CORP_ID)"
    )
    parser.add_argument(
        "--secret", default=env("WECOM_SECRET", "sim-secret"), help="app secret (WECOM_SECRET)"
    )
    parser.add_argument(
        "--agent-id", type=int, default=int(env("WECOM_AGENT_ID", "1000002")), help="(WECOM_AGENT_ID)"
    )
    parser.add_argument(
        "--token", default=env("WECOM_TOKEN", "simtoken"), help="callback token (WECOM_TOKEN)"
    )
    parser.add_argument(
        "--oa-appid", default=env("LIVECODE_OA_APPID", "wxSIMOA0000000001"),
        help="official account appid for sns/oauth2 (LIVECODE_OA_APPID)",
    )
    parser.add_argument(
        "--oa-secret", default=env("LIVECODE_OA_SECRET", "sim-oa-secret"),
        help="official account secret (LIVECODE_OA_SECRET)",
    )
    parser.add_argument(
        "--aes-key",
        default=env("WECOM_AES_KEY", DEFAULT_AES_KEY),
        help="43-char EncodingAESKey (WECOM_AES_KEY)",
    )
    parser.add_argument(
        "--state-file", default=env("SIM_STATE_FILE", ""), help="persist the world to this JSON file"
    )
    parser.add_argument(
        "--seed-demo", action="store_true", help="load the demo world when the state is empty"
    )
    return parser


def config_from_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> SimulatorConfig:
    parser = build_arg_parser(environ)
    args = parser.parse_args(argv)
    try:
        return SimulatorConfig(
            host=args.host,
            port=args.port,
            public_url=args.public_url.rstrip("/"),
            callback_url=args.callback_url,
            corp_id=args.corp_id,
            secret=args.secret,
            agent_id=args.agent_id,
            oa_appid=args.oa_appid,
            oa_secret=args.oa_secret,
            token=args.token,
            aes_key=args.aes_key,
            state_file=args.state_file,
            seed_demo=args.seed_demo,
        )
    except ValueError as exc:
        parser.error(str(exc))
