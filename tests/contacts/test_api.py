import pytest

from tests.factories import ContactFactory, FollowRelationFactory, GroupChatFactory, GroupMemberFactory


@pytest.fixture
def world(corp, staff_a, staff_b):
    mine = ContactFactory(corp=corp, external_userid="wmMine", name="甲的客户")
    FollowRelationFactory(contact=mine, staff=staff_a, remark_mobiles=["13812345678"])
    theirs = ContactFactory(corp=corp, external_userid="wmTheirs", name="乙的客户")
    FollowRelationFactory(contact=theirs, staff=staff_b)
    lost = ContactFactory(corp=corp, external_userid="wmLost", name="甲的流失客户")
    FollowRelationFactory(contact=lost, staff=staff_a, is_active=False)
    chat = GroupChatFactory(corp=corp, owner=staff_a, chat_id="wrA")
    GroupMemberFactory(chat=chat, contact=mine)
    GroupMemberFactory(chat=chat, contact=theirs)
    other_chat = GroupChatFactory(corp=corp, owner=staff_b, chat_id="wrB")
    return {"mine": mine, "theirs": theirs, "lost": lost, "chat": chat, "other_chat": other_chat}


@pytest.mark.django_db
def test_lookup_by_external_userid_returns_contact_with_relations(world, operator_user, api_client_for):
    response = api_client_for(operator_user).get("/api/contacts/", {"external_userid": "wmMine"})
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["external_userid"] == "wmMine"
    [relation] = row["follow_relations"]
    assert relation["staff"]["userid"] == "guide_a"
    assert relation["is_active"] is True
    assert relation["remark_mobiles"] == ["13812345678"]


@pytest.mark.django_db
@pytest.mark.parametrize(("persona", "expected"), [
    ("admin_user", {"wmMine", "wmTheirs", "wmLost"}),
    ("operator_user", {"wmMine", "wmTheirs", "wmLost"}),
    ("guide_a", {"wmMine"}),
    ("guide_b", {"wmTheirs"}),
])
def test_contact_list_scoping_matrix(world, request, api_client_for, persona, expected):
    user = request.getfixturevalue(persona)
    response = api_client_for(user).get("/api/contacts/")
    assert {r["external_userid"] for r in response.json()["results"]} == expected


@pytest.mark.django_db
@pytest.mark.parametrize(("persona", "target", "status"), [
    ("operator_user", "theirs", 200), ("guide_a", "mine", 200), ("guide_a", "theirs", 404),
    ("guide_a", "lost", 404), ("guide_b", "mine", 404),
])
def test_contact_detail_and_events_scoping(world, request, api_client_for, persona, target, status):
    client = api_client_for(request.getfixturevalue(persona))
    pk = world[target].pk
    assert client.get(f"/api/contacts/{pk}/").status_code == status
    assert client.get(f"/api/contacts/{pk}/events/").status_code == status


@pytest.mark.django_db
def test_guide_sees_masked_phone_numbers(world, guide_a, api_client_for):
    row = api_client_for(guide_a).get(f"/api/contacts/{world['mine'].pk}/").json()
    assert row["follow_relations"][0]["remark_mobiles"] == ["138****5678"]


@pytest.mark.django_db
def test_guide_lookup_of_someone_elses_customer_finds_nothing(world, guide_a, api_client_for):
    response = api_client_for(guide_a).get("/api/contacts/", {"external_userid": "wmTheirs"})
    assert response.json()["results"] == []


@pytest.mark.django_db
def test_groups_scoping_and_member_links(world, guide_a, operator_user, api_client_for):
    assert {g["chat_id"] for g in api_client_for(guide_a).get("/api/groups/").json()["results"]} == {"wrA"}
    assert api_client_for(guide_a).get(f"/api/groups/{world['other_chat'].pk}/").status_code == 404
    members = api_client_for(guide_a).get(f"/api/groups/{world['chat'].pk}/").json()["members"]
    links = {m["member_id"]: m["contact_id"] for m in members}
    assert links == {"wmMine": world["mine"].pk, "wmTheirs": None}
    members = api_client_for(operator_user).get(f"/api/groups/{world['chat'].pk}/").json()["members"]
    assert {m["member_id"]: m["contact_id"] for m in members}["wmTheirs"] == world["theirs"].pk


@pytest.mark.django_db
def test_keyset_pagination_walks_every_row_once(corp, staff_a, operator_user, api_client_for):
    for i in range(7):
        FollowRelationFactory(contact=ContactFactory(corp=corp, external_userid=f"wmP{i}"), staff=staff_a)
    client = api_client_for(operator_user)
    seen, cursor = [], None
    while True:
        params = {"page_size": 3} | ({"cursor": cursor} if cursor else {})
        body = client.get("/api/contacts/", params).json()
        seen += [r["external_userid"] for r in body["results"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(f"wmP{i}" for i in range(7))
    assert len(seen) == 7


@pytest.mark.django_db
def test_bad_cursor_is_a_clear_400(operator_user, api_client_for):
    response = api_client_for(operator_user).get("/api/contacts/", {"cursor": "%%%"})
    assert response.status_code == 400
    assert response.json()["message"] == "Validation error"


@pytest.mark.django_db
def test_list_query_count_does_not_grow_with_rows(corp, staff_a, operator_user, api_client_for,
                                                  django_assert_max_num_queries):
    for _ in range(20):
        FollowRelationFactory(contact=ContactFactory(corp=corp), staff=staff_a)
    client = api_client_for(operator_user)
    with django_assert_max_num_queries(4):
        client.get("/api/contacts/")


@pytest.mark.django_db
def test_anonymous_is_refused(client):
    assert client.get("/api/contacts/").status_code in (401, 403)


@pytest.mark.django_db
def test_token_auth_works(operator_user, client):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=operator_user)
    assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200


@pytest.mark.django_db
def test_sync_api_is_for_operators_only(guide_a, operator_user, api_client_for, monkeypatch):
    from contacts.tasks import corp_sync_from_wecom

    queued = []
    monkeypatch.setattr(corp_sync_from_wecom, "apply_async", lambda args, queue: queued.append(queue))
    assert api_client_for(guide_a).post("/api/wecom/sync/").status_code == 403
    assert queued == []
    assert api_client_for(operator_user).post("/api/wecom/sync/").status_code == 202
    assert queued == ["bulk"]


@pytest.mark.django_db
def test_openapi_schema_documents_the_contacts_api(operator_user, client):
    client.force_login(operator_user)
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/contacts/" in paths and "/api/groups/{id}/" in paths
    params = {p["name"] for p in paths["/api/contacts/"]["get"]["parameters"]}
    assert "external_userid" in params
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db
def test_guide_search_does_not_match_remarks_other_staff_wrote(corp, staff_a, staff_b, guide_a, operator_user,
                                                             api_client_for):
    shared = ContactFactory(corp=corp, external_userid="wmShared", name="共享客户")
    FollowRelationFactory(contact=shared, staff=staff_a, remark="甲的备注")
    FollowRelationFactory(contact=shared, staff=staff_b, remark="乙的秘密备注")
    guide = api_client_for(guide_a)
    assert guide.get("/api/contacts/", {"search": "秘密"}).json()["results"] == []
    assert len(guide.get("/api/contacts/", {"search": "甲的备注"}).json()["results"]) == 1
    assert len(api_client_for(operator_user).get("/api/contacts/", {"search": "秘密"}).json()["results"]) == 1


@pytest.mark.django_db
def test_superuser_from_environment_and_api_token_commands(monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    from accounts.models import User

    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root-admin")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-password-123")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@example.com")
    call_command("createsuperuser", interactive=False, stdout=StringIO())
    user = User.objects.get(username="root-admin")
    assert user.is_superuser and user.is_admin and user.check_password("a-long-password-123")
    out = StringIO()
    call_command("drf_create_token", "root-admin", stdout=out)
    assert "Generated token" in out.getvalue()
