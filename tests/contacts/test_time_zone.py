"""A contact's own time zone: set through the API (scoped like every contact read), the admin and the CSV import;
an unknown zone is refused everywhere with a reason and changes nothing."""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts import services
from contacts.models import Contact
from contacts.timezones import time_zone_clean
from tagging import bulk
from tests.factories import ContactFactory, FollowRelationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(corp, staff_a, staff_b):
    mine = ContactFactory(corp=corp, external_userid="wmMine", name="甲的客户")
    FollowRelationFactory(contact=mine, staff=staff_a)
    theirs = ContactFactory(corp=corp, external_userid="wmTheirs", name="乙的客户", time_zone="Europe/Berlin")
    FollowRelationFactory(contact=theirs, staff=staff_b)
    lost = ContactFactory(corp=corp, external_userid="wmLost", name="甲的流失客户")
    FollowRelationFactory(contact=lost, staff=staff_a, is_active=False)
    return {"mine": mine, "theirs": theirs, "lost": lost}


def _zone(contact) -> str:
    return Contact.objects.values_list("time_zone", flat=True).get(pk=contact.pk)


# --- the one check --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("Asia/Tokyo", "Asia/Tokyo"), ("  asia/tokyo ", "Asia/Tokyo"), ("UTC", "UTC"), ("", ""), (None, ""),
])
def test_known_zones_are_cleaned_to_their_iana_name(value, expected):
    assert time_zone_clean(value) == expected


@pytest.mark.parametrize("value", ["Mars/Olympus", "Asia", "../etc/passwd", "localtime", "+08:00", "Asia/Tokyo" * 10])
def test_unknown_zones_are_refused(value):
    with pytest.raises(ValidationError) as caught:
        time_zone_clean(value)
    assert caught.value.code == "invalid_time_zone"


def test_service_refuses_an_unknown_zone_and_keeps_the_old_one(world):
    with pytest.raises(ValidationError):
        services.contact_time_zone_set(contact=world["theirs"], time_zone="Europe/Atlantis")
    assert _zone(world["theirs"]) == "Europe/Berlin"
    services.contact_time_zone_set(contact=world["theirs"], time_zone="")
    assert _zone(world["theirs"]) == ""


# --- API -------------------------------------------------------------------------------------------------------------
def test_operator_sets_and_clears_a_contact_zone(world, operator_user, api_client_for):
    client = api_client_for(operator_user)
    url = f"/api/contacts/{world['theirs'].pk}/"
    response = client.patch(url, {"time_zone": "asia/tokyo"}, format="json")
    assert response.status_code == 200
    assert response.json()["time_zone"] == "Asia/Tokyo" and _zone(world["theirs"]) == "Asia/Tokyo"
    assert client.get(url).json()["time_zone"] == "Asia/Tokyo"
    assert client.patch(url, {"time_zone": ""}, format="json").json()["time_zone"] == ""
    assert _zone(world["theirs"]) == ""


def test_invalid_zone_is_a_clear_400_and_nothing_is_saved(world, operator_user, api_client_for):
    client = api_client_for(operator_user)
    url = f"/api/contacts/{world['theirs'].pk}/"
    response = client.patch(url, {"time_zone": "Asia/Atlantis"}, format="json")
    assert response.status_code == 400
    [message] = response.json()["extra"]["fields"]["time_zone"]
    assert "Asia/Atlantis" in message and "Asia/Tokyo" in message  # names the bad value and shows a good one
    missing = client.patch(url, {}, format="json")
    assert missing.status_code == 400 and "time_zone" in missing.json()["extra"]["fields"]
    assert _zone(world["theirs"]) == "Europe/Berlin"


def test_only_time_zone_is_writable(world, operator_user, api_client_for):
    client = api_client_for(operator_user)
    url = f"/api/contacts/{world['mine'].pk}/"
    response = client.patch(url, {"time_zone": "Asia/Tokyo", "name": "改名", "external_userid": "wmX"}, format="json")
    assert response.status_code == 200
    assert Contact.objects.filter(pk=world["mine"].pk, name="甲的客户", external_userid="wmMine").exists()
    assert client.put(url, {"time_zone": "Asia/Tokyo"}, format="json").status_code == 405


def test_guide_sets_the_zone_of_their_own_customer(world, guide_a, api_client_for):
    response = api_client_for(guide_a).patch(f"/api/contacts/{world['mine'].pk}/", {"time_zone": "Asia/Tokyo"},
                                             format="json")
    assert response.status_code == 200 and _zone(world["mine"]) == "Asia/Tokyo"


@pytest.mark.parametrize("target", ["theirs", "lost"])
def test_guide_cannot_set_the_zone_of_someone_elses_customer(world, guide_a, api_client_for, target):
    response = api_client_for(guide_a).patch(f"/api/contacts/{world[target].pk}/", {"time_zone": "Asia/Tokyo"},
                                             format="json")
    assert response.status_code == 404
    assert _zone(world[target]) == ("Europe/Berlin" if target == "theirs" else "")


def test_anonymous_cannot_patch(world):
    from rest_framework.test import APIClient

    response = APIClient().patch(f"/api/contacts/{world['mine'].pk}/", {"time_zone": "Asia/Tokyo"}, format="json")
    assert response.status_code in (401, 403) and _zone(world["mine"]) == ""


# --- admin -----------------------------------------------------------------------------------------------------------
def admin_zone_post(client, contact, time_zone: str):
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    form = {"corp": contact.corp_id, "external_userid": contact.external_userid, "name": contact.name, "avatar": "",
            "type": contact.type, "gender": contact.gender, "unionid": "", "position": "", "corp_name": "",
            "corp_full_name": "", "time_zone": time_zone,
            "relations-TOTAL_FORMS": "0", "relations-INITIAL_FORMS": "0", "relations-MIN_NUM_FORMS": "0",
            "relations-MAX_NUM_FORMS": "1000"}
    return client.post(url, form)


def test_admin_saves_a_zone_and_refuses_an_unknown_one(world, client, admin_user):
    client.force_login(admin_user)
    contact = world["mine"]
    refused = admin_zone_post(client, contact, "Mars/Olympus")
    assert refused.status_code == 200
    assert [e.code for e in refused.context["adminform"].form.errors.as_data()["time_zone"]] == ["invalid_time_zone"]
    assert _zone(contact) == ""
    assert admin_zone_post(client, contact, "asia/tokyo").status_code == 302
    assert _zone(contact) == "Asia/Tokyo"


# --- CSV import ------------------------------------------------------------------------------------------------------
@pytest.fixture
def _import_dir(settings, tmp_path):
    settings.TAGGING_IMPORT_DIR = tmp_path


def _import(user, text: str):
    upload = SimpleUploadedFile("x.csv", text.encode(), content_type="text/csv")
    job = bulk.import_start(user=user, kind="contacts", upload=upload)
    assert bulk.bulk_job_run(job_id=job.pk) == "done"
    job.refresh_from_db()
    return job, {int(r[0]): r[1] for r in list(bulk.job_report_rows(job=job))[1:]}


@pytest.mark.usefixtures("_import_dir")
def test_import_sets_zones_and_reports_a_bad_one(corp, operator_user):
    ContactFactory(corp=corp, external_userid="wmKnown", time_zone="Europe/Berlin")
    ContactFactory(corp=corp, external_userid="wmCleared", time_zone="Europe/Berlin")
    job, reasons = _import(operator_user, "external_userid,name,time_zone\n"
                                          "wmNew,新,asia/tokyo\n"
                                          "wmKnown,旧,America/New_York\n"
                                          "wmBad,坏,Mars/Olympus\n"
                                          "wmCleared,清,\n")
    assert (job.processed, job.accepted, job.rejected) == (4, 3, 1)
    assert set(reasons) == {4} and "Mars/Olympus" in reasons[4] and "time_zone" in reasons[4]
    zones = dict(Contact.objects.values_list("external_userid", "time_zone"))
    assert zones == {"wmNew": "Asia/Tokyo", "wmKnown": "America/New_York", "wmCleared": ""}  # wmBad not created


@pytest.mark.usefixtures("_import_dir")
def test_import_without_the_column_keeps_zones(corp, operator_user):
    ContactFactory(corp=corp, external_userid="wmKnown", time_zone="Europe/Berlin")
    job, reasons = _import(operator_user, "external_userid,name\nwmKnown,旧\nwmNew,新\n")
    assert (job.accepted, reasons) == (2, {})
    assert dict(Contact.objects.values_list("external_userid", "time_zone")) == {"wmKnown": "Europe/Berlin",
                                                                                 "wmNew": ""}


# --- contact page ----------------------------------------------------------------------------------------------------
def test_contact_page_shows_the_zone_only_when_set(world, client, operator_user):
    from django.utils.translation import gettext, override

    client.force_login(operator_user)
    with override("zh-hans"):
        label = f"<dt>{gettext('Time zone')}</dt>"
    page = client.get(reverse("web:contact_detail", args=[world["theirs"].pk])).content.decode()
    assert label in page and "Europe/Berlin" in page
    page = client.get(reverse("web:contact_detail", args=[world["mine"].pk])).content.decode()
    assert label not in page
