"""The PostgreSQL server settings this project is sized for (docker-compose.yml passes them to its server, and the
journeys benchmark runs its private server with them; ``tests/test_deploy_files.py`` keeps the two equal).

Durability is untouched: ``fsync``, ``synchronous_commit`` and ``full_page_writes`` stay on. What changes is
memory and checkpoint spacing. With the stock ``shared_buffers`` (128 MB), a write-heavy sweep evicts dirty pages
from the backends themselves, each eviction first flushing WAL; with the stock ``max_wal_size`` (1 GB), a
million-row sweep checkpoints twice and writes every page it touches again in full after each checkpoint.
Size ``shared_buffers`` at about a quarter of the machine's memory.
"""

SERVER_SETTINGS: dict[str, str] = {
    "shared_buffers": "2GB",
    "max_wal_size": "8GB",
    "min_wal_size": "1GB",
    "checkpoint_timeout": "15min",
    "checkpoint_completion_target": "0.9",
    "wal_buffers": "64MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}


def server_args() -> list[str]:
    """``-c name=value`` arguments for the ``postgres`` command line."""
    return [arg for name, value in SERVER_SETTINGS.items() for arg in ("-c", f"{name}={value}")]
