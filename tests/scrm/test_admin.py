import pytest
from django.contrib import admin
from django.urls import reverse


@pytest.mark.django_db
def test_every_model_is_registered_and_its_changelist_loads(client, admin_user):
    from django.apps import apps

    client.force_login(admin_user)
    ours = [m for m in apps.get_models() if m._meta.app_label in {"accounts", "contacts", "wecom"}]
    for model in ours:
        assert model in admin.site._registry, f"{model.__name__} is not in the admin"
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url


@pytest.mark.django_db
def test_replay_action_processes_a_failed_event(client, admin_user, fake_wecom):
    from tests.wecom.test_callback_processing import contact_event, known_customer
    from wecom.models import CallbackEvent

    known_customer(fake_wecom)
    event = contact_event("add_external_contact")
    CallbackEvent.objects.filter(pk=event.pk).update(status="failed", last_error="boom")
    client.force_login(admin_user)
    response = client.post(reverse("admin:wecom_callbackevent_changelist"),
                           {"action": "replay", "_selected_action": [event.pk]}, follow=True)
    assert response.status_code == 200
    event.refresh_from_db()
    assert event.status == "processed" and event.last_error == ""


@pytest.mark.django_db
def test_guides_and_operators_cannot_enter_admin(client, guide_a, operator_user):
    for user in (guide_a, operator_user):
        client.force_login(user)
        assert client.get("/admin/").status_code == 302
