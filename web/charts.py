"""Bar heights for the CSS bar charts: each value becomes a level 0–20 (5% steps), styled by a class.

The strict CSP forbids inline ``style`` attributes, so a bar cannot carry its own height; the classes
``bar-h0``…``bar-h20`` in app.css do. A non-zero value always gets at least level 1 so that it stays visible.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

LEVELS = 20


@dataclass(frozen=True)
class DayBars:
    day: date
    joined: int
    left: int
    joined_level: int
    left_level: int


def level(value: int, peak: int) -> int:
    if value <= 0 or peak <= 0:
        return 0
    return max(1, math.ceil(value * LEVELS / peak))


def growth_bars(rows: Sequence[dict]) -> list[DayBars]:
    """``rows`` as selectors.group_growth returns them: ``{"day", "joined", "left"}`` per day."""
    peak = max((max(r["joined"], r["left"]) for r in rows), default=0)
    return [
        DayBars(day=r["day"], joined=r["joined"], left=r["left"], joined_level=level(r["joined"], peak),
                left_level=level(r["left"], peak))
        for r in rows
    ]
