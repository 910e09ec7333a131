"""The run/deploy plumbing stays true: docker-compose.yml, Dockerfile, .env.example, Makefile, .ci/run,
and the pure helpers of scrm/devrun.py. No container, database server or network is started here."""

import ast
import importlib.util
import os
import re
import shlex
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scrm import devrun

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
APP_SERVICES = ("web", "worker", "worker-bulk", "beat")
REQUIRED_SERVICES = ("postgres", "redis", *APP_SERVICES)
# Executables the app image provides (python:3.13-slim + our dependencies).
IMAGE_EXECUTABLES = {"python", "gunicorn", "celery"}
# Read by Django itself (createsuperuser --noinput), by gunicorn, or by docker compose / make run.
EXTRA_DOCUMENTED = {
    "DJANGO_SUPERUSER_USERNAME",
    "DJANGO_SUPERUSER_PASSWORD",
    "DJANGO_SUPERUSER_EMAIL",
    "WEB_CONCURRENCY",
    "PORT",
    "SIMULATOR_PORT",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _argv(command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _healthcheck_argv(test) -> list[str]:
    if isinstance(test, str):
        return shlex.split(test)
    kind, *rest = test
    if kind == "CMD-SHELL":
        return shlex.split(rest[0].replace("$$", "$"))
    assert kind == "CMD", f"unexpected healthcheck form {kind!r}"
    return [str(part) for part in rest]


def assert_app_command_resolves(argv: list[str]) -> None:
    """The executable exists in the venv (the image installs the same dependencies) and every Python
    module or file it would load exists in this checkout."""
    exe, *args = argv
    assert exe in IMAGE_EXECUTABLES, f"{exe!r} is not something the app image provides"
    assert (VENV_BIN / exe).exists(), f"{exe} is not installed in {VENV_BIN}"
    if exe == "python":
        if args[0] == "-c":
            compile(args[1], "<healthcheck>", "exec")
        elif args[0] == "-m":
            assert importlib.util.find_spec(args[1]) is not None, f"python -m {args[1]}: no such module"
        else:
            assert (ROOT / args[0]).is_file(), f"python {args[0]}: no such file"
    elif exe == "gunicorn":
        module = next(a for a in args if ":" in a and not a.startswith("-")).split(":")[0]
        assert importlib.util.find_spec(module) is not None, f"gunicorn app module {module} is missing"
    elif exe == "celery":
        app_module = args[args.index("-A") + 1]
        assert importlib.util.find_spec(f"{app_module}.celery") is not None


def test_compose_has_the_five_services_each_with_a_healthcheck(compose):
    services = compose["services"]
    for name in REQUIRED_SERVICES:
        assert name in services, f"service {name} is missing"
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"service {name} has no healthcheck"


def test_compose_app_commands_and_healthchecks_resolve(compose):
    services = compose["services"]
    for name in (*APP_SERVICES, "migrate"):
        service = services[name]
        assert service.get("build") or service.get("image", "").startswith("scrm"), name
        for key in ("entrypoint", "command"):
            if service.get(key):
                assert_app_command_resolves(_argv(service[key]))
        if name in APP_SERVICES:
            assert_app_command_resolves(_healthcheck_argv(service["healthcheck"]["test"]))


def test_compose_postgres_runs_with_the_settings_the_benchmarks_assume(compose):
    from scrm.pgconfig import server_args

    command = _argv(compose["services"]["postgres"]["command"])
    assert command[0] == "postgres" and command[1:] == server_args()
    assert {"fsync=on", "synchronous_commit=on", "full_page_writes=on"} <= set(command)  # durable


def test_compose_runs_the_expected_processes(compose):
    services = compose["services"]
    assert "scrm.wsgi:application" in _argv(services["web"]["command"])
    worker = _argv(services["worker"]["command"])
    assert worker[:4] == ["celery", "-A", "scrm", "worker"]
    assert set(worker[worker.index("-Q") + 1].split(",")) == {"default", "wecom"}
    bulk = _argv(services["worker-bulk"]["command"])
    assert bulk[:4] == ["celery", "-A", "scrm", "worker"]
    assert bulk[bulk.index("-Q") + 1] == "bulk"  # long jobs never hold up callbacks and welcome messages
    assert _argv(services["beat"]["command"])[:4] == ["celery", "-A", "scrm", "beat"]
    assert "migrate" in _argv(services["migrate"]["command"])
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["env_file"] in (".env", [".env"])


def test_dockerfile_references_existing_files_and_runs_as_non_root():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.13-slim", text, re.M)
    for line in re.findall(r"^COPY\s+(.+)$", text, re.M):
        *sources, _dest = line.split()
        for source in sources:
            if source.startswith("--"):
                continue
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    assert (ROOT / "manage.py").is_file() and "manage.py collectstatic" in text
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1] not in {"root", "0"}
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    assert cmd
    assert_app_command_resolves(ast.literal_eval(cmd.group(1)))
    ignored = (ROOT / ".dockerignore").read_text().split()
    for private in (".venv", ".data", ".env", ".git"):
        assert private in ignored, f".dockerignore must keep {private} out of the image"


def _documented_variables() -> dict[str, str]:
    """NAME -> the comment above it, for `NAME=value` and optional `# NAME=value` lines."""
    documented: dict[str, str] = {}
    comment = ""
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            documented[match.group(1)] = comment
        elif line.startswith("#"):
            comment = line.lstrip("# ").strip()
        else:
            comment = ""
    return documented


def _variables_read_by_settings() -> set[str]:
    """Every env_*("NAME"), os.environ.get("NAME") and os.getenv("NAME") in scrm/settings.py."""
    tree = ast.parse((ROOT / "scrm" / "settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        func = node.func
        called = (
            func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        )
        if (
            called.startswith("env_")
            or called == "getenv"
            or (called == "get" and "environ" in ast.unparse(func))
        ):
            names.add(first.value)
    return names


def test_env_example_documents_every_variable():
    documented = _documented_variables()
    read = _variables_read_by_settings()
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "WECOM_CORP_ID"} <= read  # the scan works
    compose_vars = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    missing = (read | compose_vars | EXTRA_DOCUMENTED) - documented.keys()
    assert not missing, f".env.example does not document {sorted(missing)}"
    undocumented = sorted(name for name, comment in documented.items() if not comment)
    assert not undocumented, f"these .env.example variables have no comment above them: {undocumented}"


def test_makefile_targets_have_descriptions():
    text = (ROOT / "Makefile").read_text()
    described = set(re.findall(r"^([a-z][a-zA-Z0-9_-]*):[^\n]*## ", text, re.M))
    expected = {"help", "install", "run", "test", "e2e", "bench", "lint", "migrations-check", "simulator"}
    assert expected <= described, f"targets without a `## description`: {sorted(expected - described)}"
    assert "pytest -n 2" in text


def test_ci_script_is_executable_bash_that_runs_make_test():
    script = ROOT / ".ci" / "run"
    assert script.stat().st_mode & stat.S_IXUSR
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -Eeuo pipefail" in text
    assert "apt-get install -y" in text and "chromium" in text
    commands = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "playwright install" not in commands
    assert re.search(r"^make test\b", text, re.M)
    subprocess.run(["bash", "-n", str(script)], check=True)


# --- scrm/devrun.py helpers -------------------------------------------------------------------------


def test_pick_port_prefers_the_given_port_when_free():
    port = devrun.free_port()
    assert devrun.pick_port(port) == port


def test_pick_port_falls_back_when_the_port_is_taken():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not devrun.port_is_free(port)
        other = devrun.pick_port(port)
        assert other != port and devrun.port_is_free(other)


def test_dev_env_is_created_once_and_reused(tmp_path):
    path = tmp_path / ".data" / "dev.env"
    first = devrun.load_or_create_dev_env(path)
    content = path.read_text()
    second = devrun.load_or_create_dev_env(path)
    assert first == second
    assert path.read_text() == content
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(devrun.DEV_ENV_KEYS) <= first.keys()
    # Shapes scrm/settings.py validates.
    assert len(first["WECOM_AES_KEY"]) == 43 and first["WECOM_AES_KEY"].isalnum()
    assert len(first["WECOM_TOKEN"]) <= 32
    assert first["WECOM_AGENT_ID"].isdigit()
    assert first["WECOM_CORP_ID"].startswith("ww")


def test_dev_env_keeps_existing_values_and_adds_missing_ones(tmp_path):
    path = tmp_path / "dev.env"
    path.write_text("# mine\nDJANGO_SECRET_KEY='kept'\n")
    values = devrun.load_or_create_dev_env(path)
    assert values["DJANGO_SECRET_KEY"] == "kept"
    assert set(devrun.DEV_ENV_KEYS) <= values.keys()
    assert devrun.load_or_create_dev_env(path) == values
    assert path.read_text().count("DJANGO_SECRET_KEY") == 1


def test_parse_env_file():
    text = "# comment\n\nA=1\nexport B = two words \nC=\"quoted\"\nD='x=y'\nnot a pair\n"
    assert devrun.parse_env_file(text) == {"A": "1", "B": "two words", "C": "quoted", "D": "x=y"}


def test_export_lines_survive_the_shell():
    values = {"DATABASE_URL": "postgres://u:p@h:5432/db", "WEIRD": "a b'c$d"}
    script = devrun.export_lines(values) + 'printf "%s\\n%s" "$DATABASE_URL" "$WEIRD"'
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout
    assert out.split("\n") == list(values.values())


def test_build_env_lets_the_user_win_and_fills_simulator_credentials():
    dev_env = devrun.generate_dev_env()
    env = devrun.build_env(dev_env, {"WECOM_CORP_ID": "wwmine", "PATH": "/bin"})
    assert env["WECOM_CORP_ID"] == "wwmine"
    assert env["WECOM_SECRET"] == dev_env["WECOM_SECRET"]
    assert env["DJANGO_SECRET_KEY"] == dev_env["DJANGO_SECRET_KEY"]
    assert env["DJANGO_DEBUG"] == "1" and env["DEMO_PASSWORD"] == dev_env["DEMO_PASSWORD"]


def test_build_env_with_a_real_wecom_does_not_inject_simulator_credentials():
    dev_env = devrun.generate_dev_env()
    real = {"WECOM_API_BASE": "https://qyapi.weixin.qq.com/cgi-bin/", "WECOM_CORP_ID": "wwreal"}
    assert not devrun.simulator_enabled(real)
    env = devrun.build_env(dev_env, real)
    assert env["WECOM_CORP_ID"] == "wwreal"
    assert "WECOM_SECRET" not in env


def test_read_postmaster_pid(tmp_path):
    assert devrun.read_postmaster_pid(tmp_path) is None
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n{tmp_path}\n1712346200\n54329\n\n127.0.0.1\n")
    assert devrun.read_postmaster_pid(tmp_path) == (os.getpid(), 54329)
    (tmp_path / "postmaster.pid").write_text("garbage\n")
    assert devrun.read_postmaster_pid(tmp_path) is None


def test_server_argv_listen_on_loopback_only(tmp_path):
    pg = devrun.postgres_argv(Path("/pg/bin"), tmp_path, 54329)
    assert pg[pg.index("-h") + 1] == "127.0.0.1" and pg[pg.index("-p") + 1] == "54329"
    redis = devrun.redis_argv(tmp_path, 63790)
    assert redis[redis.index("--bind") + 1] == "127.0.0.1" and redis[redis.index("--port") + 1] == "63790"
