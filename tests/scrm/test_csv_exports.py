"""The journey report and live-code stats CSV exports go through ``scrm.csvexport.csv_response``: streamed,
UTF-8 with a BOM, the same file names and bytes as before (header + rows, CRLF line ends, csv quoting)."""

from datetime import date, timedelta

import pytest
import time_machine
from django.urls import reverse

from journeys import services as journey_services
from journeys.models import Journey, JourneyStep, MessageTemplate
from livecodes import services
from livecodes.models import DailyStat

pytestmark = pytest.mark.django_db


def body(response) -> bytes:
    assert response.streaming, "expected a streamed CSV"
    return b"".join(response.streaming_content)


def test_journey_report_csv_is_streamed_with_the_same_name_and_content(client_for, operator_user, guide_a, corp):
    template = MessageTemplate.objects.create(name="welcome", text="hi")
    journey = Journey.objects.create(corp=corp, name="manual", trigger="manual")
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template, label='欢迎, "新人"')
    journey = journey_services.journey_go_live(journey=journey)
    url = reverse("web:journey_report_csv", args=[journey.pk])

    response = client_for(operator_user).get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="journey-{journey.pk}-report.csv"'
    step = journey.steps.get()
    assert body(response).decode("utf-8") == (
        "\ufeffposition,kind,label,channel,messages,reached,tasks_created,staff_confirmation_rate,"
        "median_confirm_delay_s,runs\r\n"
        f'1,send,"欢迎, ""新人""",{step.channel},0,0,0,,,\r\n')
    assert client_for(guide_a).get(url).status_code == 403


def test_livecode_stats_csv_is_streamed_with_the_same_name_and_content(client_for, operator_user, guide_a, corp):
    code = services.livecode_create(corp=corp, kind="group", name="新品群")
    with time_machine.travel(date(2026, 3, 5), tick=False):
        DailyStat.objects.create(code=code, day=date(2026, 3, 4), scans=7, visitors=5)
        response = client_for(operator_user).get(reverse("livecodes:stats", args=[code.pk]) + "?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="livecode-{code.slug}-stats.csv"'
    lines = body(response).decode("utf-8").split("\r\n")
    assert lines[0] == "\ufeffday,scans,unique_visitors,adds,joins,lost_within_1d,lost_within_7d"
    days = [date(2026, 2, 4) + timedelta(days=i) for i in range(30)]  # the last 30 days, corp zone
    assert lines[1:] == [f"{d.isoformat()},{'7,5' if d == date(2026, 3, 4) else '0,0'},0,0,0,0" for d in days] + [""]
    assert client_for(guide_a).get(reverse("livecodes:stats", args=[code.pk]) + "?format=csv").status_code == 403
