"""Run every benchmark once at tiny scale so they cannot rot. Speed is printed by `make bench`, never asserted."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def test_benchmarks_run_at_tiny_scale_and_verify_correctness():
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/postgres"
    env["REDIS_URL"] = settings.REDIS_URL
    result = subprocess.run([sys.executable, "-m", "bench", "--tiny"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bare Django view" in result.stdout
    assert "ratio callbacks/bare" in result.stdout
    assert "correctness            PASS" in result.stdout
    assert "(A OR B) AND NOT C" in result.stdout
    assert "contact list correctness PASS" in result.stdout and "imports correctness     PASS" in result.stdout
    assert "journeys correctness   PASS" in result.stdout and "ratio pipeline/enqueue-only" in result.stdout
    assert "analytics correctness  PASS" in result.stdout and "incremental:" in result.stdout
    assert "predictive correctness PASS" in result.stdout and "ratio naive/set-based" in result.stdout
    assert "ratio landing/bare" in result.stdout and "sequential switching     exact" in result.stdout  # segments: index counts beside the naive join-table query


def test_unknown_benchmark_name_is_refused():
    result = subprocess.run([sys.executable, "-m", "bench", "nope"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "unknown benchmark" in result.stderr
