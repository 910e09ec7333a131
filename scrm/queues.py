from enum import StrEnum


class Queue(StrEnum):
    DEFAULT = "default"  # fast DB work, callback processing
    WECOM = "wecom"  # network I/O to WeCom, rate-limited
    BULK = "bulk"  # recomputes, imports, full syncs
