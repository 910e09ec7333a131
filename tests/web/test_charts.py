from datetime import date

from web.charts import growth_bars, level


def test_levels_scale_to_the_peak_and_keep_small_values_visible():
    assert level(0, 10) == 0
    assert level(10, 10) == 20
    assert level(5, 10) == 10
    assert level(1, 1000) == 1  # rounds up: a single join is still a bar
    assert level(3, 0) == 0


def test_growth_bars_share_one_scale_for_joins_and_leaves():
    bars = growth_bars([
        {"day": date(2026, 3, 1), "joined": 4, "left": 0},
        {"day": date(2026, 3, 2), "joined": 1, "left": 2},
    ])
    assert [(b.joined_level, b.left_level) for b in bars] == [(20, 0), (5, 10)]
    assert growth_bars([]) == []
