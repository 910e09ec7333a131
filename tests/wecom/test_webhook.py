import base64

import pytest
from django.conf import settings
from django.urls import reverse

from contacts.models import Contact
from scrm.redis import get_redis
from tests.wecom.helpers import add_contact_xml, event_xml, signed_request
from wecom import inbox, signatures
from wecom.models import CallbackEvent

URL = "/wecom/callback/"


class Enqueued:
    """What the webhook handed to the workers: ids in the Redis inbox, drains scheduled on the broker."""

    def __init__(self, drains):
        self.drains = drains

    @property
    def ids(self):
        return inbox.pending()


@pytest.fixture
def enqueued(monkeypatch):
    from wecom.tasks import callbacks_drain

    drains: list[str] = []
    monkeypatch.setattr(callbacks_drain, "apply_async", lambda queue: drains.append(queue))
    _clear_inbox()
    yield Enqueued(drains)
    _clear_inbox()


def _clear_inbox():
    get_redis().delete(*inbox._keys())


def post(client, xml, **kwargs):
    query, body = signed_request(xml, **kwargs)
    return client.post(f"{URL}?{query}", data=body, content_type="text/xml")


def test_url_resolves():
    assert reverse("wecom:callback") == URL


@pytest.mark.django_db
def test_url_verification_echoes_plaintext(client):
    key = signatures.aes_key_from_encoding(settings.WECOM_AES_KEY)
    echostr = signatures.encrypt(key=key, message=b"1616140317555161061", receive_id=settings.WECOM_CORP_ID)
    sig = signatures.signature(settings.WECOM_TOKEN, "1409659589", "263014780", echostr)
    response = client.get(URL, {"msg_signature": sig, "timestamp": "1409659589", "nonce": "263014780",
                                "echostr": echostr})
    assert response.status_code == 200
    assert response.content == b"1616140317555161061"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
def test_url_verification_with_bad_signature_is_403(client):
    response = client.get(URL, {"msg_signature": "0" * 40, "timestamp": "1", "nonce": "2", "echostr": "abc"})
    assert response.status_code == 403


@pytest.mark.django_db(transaction=True)
def test_valid_event_is_stored_once_and_enqueued(client, enqueued):
    xml = add_contact_xml(settings.WECOM_CORP_ID, userid="u1", external_userid="wmA")
    response = post(client, xml)
    assert response.status_code == 200
    assert response.content == b""
    event = CallbackEvent.objects.get()
    assert (event.event, event.change_type, event.status) == ("change_external_contact",
                                                              "add_external_contact", "pending")
    assert "wmA" in event.payload
    assert enqueued.ids == [event.pk]
    assert enqueued.drains == ["default"]


@pytest.mark.django_db(transaction=True)
def test_redelivery_is_deduplicated_but_counted(client, enqueued):
    xml = add_contact_xml(settings.WECOM_CORP_ID, userid="u1", external_userid="wmA")
    for nonce in ("1", "2", "3"):  # WeCom's retries carry new nonces and signatures
        assert post(client, xml, nonce=nonce).status_code == 200
    event = CallbackEvent.objects.get()
    assert event.deliveries == 3
    assert len(enqueued.ids) == 1


@pytest.mark.django_db(transaction=True)
def test_two_different_adds_in_the_same_second_stay_two(client, enqueued):
    for ext in ("wmA", "wmB"):
        post(client, add_contact_xml(settings.WECOM_CORP_ID, userid="u1", external_userid=ext,
                                     welcome_code=f"code-{ext}"))
    assert CallbackEvent.objects.count() == 2
    assert len(enqueued.ids) == 2
    assert enqueued.drains == ["default"]  # one drain serves the burst


@pytest.mark.django_db
def test_bad_signature_is_403_and_writes_nothing(client, enqueued):
    query, body = signed_request(add_contact_xml(settings.WECOM_CORP_ID, userid="u", external_userid="wmA"),
                                 token="not-our-token")
    response = client.post(f"{URL}?{query}", data=body, content_type="text/xml")
    assert response.status_code == 403
    assert CallbackEvent.objects.count() == 0
    assert Contact.objects.count() == 0
    assert enqueued.ids == []


@pytest.mark.django_db
def test_event_for_another_corp_is_refused(client, enqueued):
    query, body = signed_request(add_contact_xml("wwOTHER", userid="u", external_userid="wmA"),
                                 corp_id="wwOTHER")
    response = client.post(f"{URL}?{query}", data=body, content_type="text/xml")
    assert response.status_code == 400
    assert CallbackEvent.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("body", [
    b"not xml at all",
    b"<xml><ToUserName>x</ToUserName></xml>",  # no Encrypt
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
    b"<xml><Encrypt>&lol2;</Encrypt></xml>",  # entity expansion
    b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>',  # XXE
])
def test_malformed_or_hostile_xml_is_400(client, enqueued, body):
    response = client.post(f"{URL}?msg_signature=x&timestamp=1&nonce=2", data=body, content_type="text/xml")
    assert response.status_code == 400
    assert CallbackEvent.objects.count() == 0


@pytest.mark.django_db
def test_hostile_xml_inside_a_valid_envelope_is_400(client, enqueued):
    inner = '<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Event>&a;</Event></xml>'
    response = post(client, inner)
    assert response.status_code == 400
    assert CallbackEvent.objects.count() == 0


@pytest.mark.django_db
def test_body_over_64_kib_is_413(client, enqueued):
    body = b"<xml><Encrypt>" + base64.b64encode(b"a" * 70_000) + b"</Encrypt></xml>"
    response = client.post(f"{URL}?msg_signature=x&timestamp=1&nonce=2", data=body, content_type="text/xml")
    assert response.status_code == 413
    assert CallbackEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_unknown_event_type_is_stored_and_marked_ignored(client, enqueued):
    from wecom.services import callback_event_process

    post(client, event_xml(settings.WECOM_CORP_ID, CreateTime=1, Event="change_contact", ChangeType="create_user",
                           UserID="newbie"))
    event = CallbackEvent.objects.get()
    assert callback_event_process(event_id=event.pk) == CallbackEvent.Status.IGNORED
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.IGNORED


@pytest.mark.django_db
def test_other_methods_are_refused(client):
    assert client.put(URL).status_code == 405


@pytest.mark.django_db
def test_drain_fans_every_queued_id_out_and_releases_the_flag(enqueued):
    for event_id in (11, 12, 13):
        inbox.push(event_id)
    assert enqueued.drains == ["default"]
    seen = []
    assert inbox.drain(seen.append, batch=2) == 3
    assert seen == [11, 12, 13]
    inbox.push(14)  # the flag was released, so the next push schedules a new drain
    assert enqueued.drains == ["default", "default"]


@pytest.mark.django_db
def test_drain_picks_up_a_push_that_raced_its_last_look(enqueued):
    inbox.push(1)
    seen = []

    def dispatch(event_id):
        seen.append(event_id)
        if event_id == 1:
            inbox.push(2)  # arrives while the drain holds the flag: no second drain is scheduled

    inbox.drain(dispatch)
    assert seen == [1, 2]
    assert enqueued.drains == ["default"]
