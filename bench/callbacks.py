"""Callback ingestion: verify, decrypt, durable insert with dedup, enqueue — against a bare Django view.

Targets (issue: foundation): ≥ 1,000 callbacks/s with p99 ≤ 200 ms on this 2-core machine; the same body
replayed 3× causes no extra effect; 0 accepted callbacks missing afterwards.
"""

import os
import uuid
from dataclasses import dataclass

import redis

from bench import loadgen, server
from wecom import signatures


@dataclass(frozen=True)
class Scale:
    callbacks: int
    bare: int
    replayed: int
    concurrency: int
    max_seconds: float


FULL = Scale(callbacks=20_000, bare=20_000, replayed=500, concurrency=32, max_seconds=120)
TINY = Scale(callbacks=200, bare=200, replayed=20, concurrency=4, max_seconds=60)


def _callback_request(port: int, key: bytes, i: int, nonce: str) -> bytes:
    xml = (
        f"<xml><ToUserName><![CDATA[{server.BENCH_CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>1718000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
        f"<UserID><![CDATA[sales_li]]></UserID><ExternalUserID><![CDATA[wmBench{i:025d}]]></ExternalUserID>"
        f"<State><![CDATA[bench]]></State><WelcomeCode><![CDATA[wc{i}]]></WelcomeCode></xml>"
    )
    encrypted = signatures.encrypt(key=key, message=xml.encode(), receive_id=server.BENCH_CORP)
    sig = signatures.signature(server.BENCH_TOKEN, "1718000000", nonce, encrypted)
    body = (f"<xml><ToUserName><![CDATA[{server.BENCH_CORP}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>").encode()
    path = f"/wecom/callback/?msg_signature={sig}&timestamp=1718000000&nonce={nonce}"
    return loadgen.build_request("POST", "127.0.0.1", port, path, body)


def _line(name: str, r: loadgen.Result) -> str:
    statuses = ",".join(f"{k}:{v}" for k, v in sorted(r.statuses.items()))
    return (f"  {name:<22} {r.count:>7} req  {r.rate:>8.0f} req/s  p50 {r.percentile(0.5):>6.1f} ms  "
            f"p99 {r.percentile(0.99):>6.1f} ms  status {statuses}  errors {r.errors}")


def run(*, tiny: bool) -> bool:
    scale = TINY if tiny else FULL
    base_db = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    base_redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    db_name = f"scrm_bench_{uuid.uuid4().hex[:8]}"
    database_url = server.fresh_database(base_db, db_name)
    redis_url = base_redis
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    r = redis.Redis.from_url(redis_url)
    env = server.bench_env(database_url, redis_url, key_prefix=prefix)
    try:
        server.migrate(env)
        key = signatures.aes_key_from_encoding(server.BENCH_AES_KEY)
        with server.gunicorn(env) as port:
            bare_reqs = [loadgen.build_request("GET", "127.0.0.1", port, "/bench/bare")] * scale.bare
            callback_reqs = [_callback_request(port, key, i, "1") for i in range(scale.callbacks)]
            replays = [_callback_request(port, key, i, str(n)) for n in (2, 3, 4) for i in range(scale.replayed)]
            # warm-up: connections, imports, first queries
            loadgen.run("127.0.0.1", port, bare_reqs[:50], concurrency=scale.concurrency, max_seconds=30)
            bare = loadgen.run("127.0.0.1", port, bare_reqs, concurrency=scale.concurrency,
                               max_seconds=scale.max_seconds)
            ingest = loadgen.run("127.0.0.1", port, callback_reqs, concurrency=scale.concurrency,
                                 max_seconds=scale.max_seconds)
            replay = loadgen.run("127.0.0.1", port, replays, concurrency=scale.concurrency,
                                 max_seconds=scale.max_seconds)
        stored, deliveries = _stored(database_url)
        queued = r.llen(f"{prefix}:wecom:callback_inbox")  # no worker runs: every accepted id waits here
    finally:
        server.drop_database(base_db, db_name)
        for key in r.scan_iter(f"{prefix}:*"):
            r.delete(key)
    accepted = ingest.statuses.get(200, 0)
    ratio = ingest.rate / bare.rate if bare.rate else 0.0
    print(f"callback ingestion ({'tiny' if tiny else 'full'} scale, gunicorn {server.gunicorn_shape()}, "
          f"{scale.concurrency} keep-alive connections, loopback)")
    print(_line("bare Django view", bare))
    print(_line("callbacks (distinct)", ingest))
    print(_line("replays (3x same)", replay))
    print(f"  ratio callbacks/bare   {ratio:.2f}")
    print(f"  stored events          {stored} (accepted {accepted}); deliveries counted {deliveries}; "
          f"enqueued {queued}")
    correct = (
        accepted == scale.callbacks and stored == accepted and queued == accepted
        and replay.statuses.get(200, 0) == len(replays)
        and deliveries == accepted + len(replays)
    )
    fast = ingest.rate >= 1000 and ingest.percentile(0.99) <= 200
    print(f"  correctness            {'PASS' if correct else 'FAIL'} (no accepted callback missing, "
          f"replays had no extra effect)")
    print(f"  target >=1000/s p99<=200ms  {'MET' if fast else 'NOT MET'}")
    return correct


def _stored(database_url: str) -> tuple[int, int]:
    conn = server.connect(database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(sum(deliveries), 0) FROM wecom_callbackevent")
        count, deliveries = cur.fetchone()
    conn.close()
    return int(count), int(deliveries)
