"""Drive Debian's ``wrk`` (a C load generator) when it is installed: less client CPU than Python on 2 cores.

Only loopback targets; bounded by ``seconds``.
"""

import re
import shutil
import subprocess
from dataclasses import dataclass

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class WrkResult:
    rate: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def parse(output: str) -> WrkResult:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return WrkResult(rate=rate, p50_ms=p50, p99_ms=p99, non_2xx=int(bad.group(1)) if bad else 0)


def run(url: str, *, seconds: int = 5, connections: int = 32, threads: int = 1) -> WrkResult:
    if not url.startswith(("http://127.0.0.1", "http://localhost")):
        raise ValueError("wrk only targets loopback")
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 30, check=True)
    return parse(out.stdout)
