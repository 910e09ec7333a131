"""Daily figures are days of the corp's zone (Asia/Shanghai), also in the hours when UTC is still on yesterday."""

from datetime import UTC, datetime

import pytest
import time_machine

from contacts import services as contact_services
from livecodes import selectors, services
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_code(corp, staff_a, fake_wecom):
    code = services.livecode_create(corp=corp, kind="staff", name="门店海报")
    services.target_add_staff(code=code, staff=staff_a)
    return code


@pytest.mark.parametrize("utc_hour", [1, 17])  # 09:00 and 01:00 (next day) in Shanghai
def test_todays_row_holds_what_happened_today_in_the_corp_zone(staff_code, corp, staff_a, utc_hour):
    with time_machine.travel(datetime(2026, 11, 23, utc_hour, 30, tzinfo=UTC), tick=False):
        contact = ContactFactory(corp=corp)
        state = services.target_state(staff_code.targets.get(staff=staff_a))
        contact_services.record_event(corp=corp, kind="added", occurred_at=datetime.now(UTC), contact=contact,
                                      staff=staff_a, data={"state": state}, dedup_key="local-day",
                                      context={"welcome_code": "WC", "state": state})
        [today] = selectors.stats_by_day(code=staff_code, days=1)
        assert today.day.isoformat() == ("2026-11-23" if utc_hour == 1 else "2026-11-24")
        assert today.adds == 1
