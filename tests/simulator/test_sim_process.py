"""The simulator as a process: CLI start-up line, signals, state file, and import hygiene."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import requests

from wecom.simulator import SimulatorConfig, SimulatorServer

from .conftest import CORP_ID, SECRET

REPO_ROOT = Path(__file__).resolve().parents[2]


def _clean_env() -> dict[str, str]:
    """The parent environment minus simulator settings (Django test settings export WECOM_* variables)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("WECOM_", "SIM_"))}


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """Read one stdout line without risking a hang if the process never prints."""
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.append(process.stdout.readline() if process.stdout else "")
    )
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""


def test_cli_prints_the_listening_line_and_serves(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wecom.simulator",
            "--port",
            "0",
            "--callback-url",
            "",
            "--seed-demo",
            "--state-file",
            str(state_file),
        ],
        cwd=REPO_ROOT,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(process, timeout=15)
        assert line.startswith("SIMULATOR LISTENING http://127.0.0.1:"), line
        url = line.split()[-1]
        session = requests.Session()
        session.trust_env = False
        token = session.get(
            f"{url}/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": SECRET}
        ).json()
        assert token["errcode"] == 0 and token["access_token"]
        users = session.get(
            f"{url}/cgi-bin/externalcontact/get_follow_user_list",
            params={"access_token": token["access_token"]},
        )
        assert users.json()["follow_user"][0] == "zhangwei"
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert stdout == ""  # exactly one line was printed (read above)
    saved = json.loads(state_file.read_text())
    assert len(saved["world"]["customers"]) == 200


def test_cli_rejects_an_invalid_aes_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wecom.simulator", "--port", "0", "--aes-key", "tooshort"],
        cwd=REPO_ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert result.returncode == 2 and "aes-key" in result.stderr


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    config = SimulatorConfig(port=0, callback_url="", state_file=str(tmp_path / "sim.json"))
    session = requests.Session()
    session.trust_env = False
    with SimulatorServer(config) as server:
        assert (
            session.post(f"{server.url}/sim/members", json={"userid": "amy", "name": "Amy"}).status_code
            == 200
        )
        token = session.get(
            f"{server.url}/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": SECRET}
        ).json()["access_token"]
        tag = session.post(
            f"{server.url}/cgi-bin/externalcontact/add_corp_tag",
            params={"access_token": token},
            data=json.dumps({"group_name": "G", "tag": [{"name": "t"}]}),
        ).json()
        assert tag["errcode"] == 0
    with SimulatorServer(config) as server:
        answer = session.get(
            f"{server.url}/cgi-bin/user/get", params={"access_token": token, "userid": "amy"}
        ).json()
        assert answer["errcode"] == 0 and answer["name"] == "Amy"  # the token survived too
        tags = session.post(
            f"{server.url}/cgi-bin/externalcontact/get_corp_tag_list",
            params={"access_token": token},
            data=b"{}",
        ).json()["tag_group"]
        assert tags[0]["group_id"] == tag["tag_group"]["group_id"]


def test_corrupt_state_file_is_reported(tmp_path: Path) -> None:
    state_file = tmp_path / "broken.json"
    state_file.write_text("{not json")
    result = subprocess.run(
        [sys.executable, "-m", "wecom.simulator", "--port", "0", "--state-file", str(state_file)],
        cwd=REPO_ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert result.returncode == 1 and "cannot read state file" in result.stderr


def test_simulator_imports_no_django_wechatpy_or_product_code() -> None:
    probe = (
        "import sys, wecom.simulator.server\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'wechatpy', 'rest_framework', 'celery')"
        " or (m.startswith('wecom.') and not m.startswith('wecom.simulator')))\n"
        "print(bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
