"""A small keep-alive HTTP/1.1 load generator (asyncio, no dependencies), bounded in count and time.

It only ever connects to the loopback address it is given.
"""

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def _worker(host: str, port: int, queue: asyncio.Queue, result: Result, deadline: float) -> None:
    reader = writer = None
    while time.monotonic() < deadline:
        try:
            request = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        for _attempt in range(2):
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                break
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                if writer is not None:
                    writer.close()
                reader = writer = None
        else:
            result.errors += 1
    if writer is not None:
        writer.close()


def build_request(method: str, host: str, port: int, path: str, body: bytes = b"") -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + body


def run(host: str, port: int, requests: list[bytes], *, concurrency: int, max_seconds: float) -> Result:
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the load generator only targets loopback")

    async def main() -> Result:
        queue: asyncio.Queue = asyncio.Queue()
        for request in requests:
            queue.put_nowait(request)
        result = Result()
        started = time.perf_counter()
        deadline = time.monotonic() + max_seconds
        await asyncio.gather(*(_worker(host, port, queue, result, deadline) for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - started
        return result

    return asyncio.run(main())
