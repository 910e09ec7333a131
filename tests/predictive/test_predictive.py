"""The predictive profile: planted-signal training, determinism, heuristic fallback, reasons, tags, pages."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import translation

from contacts.models import ContactFacts, Corp
from livecodes.models import LiveCode
from predictive import selectors
from predictive.features import FEATURES, features_extract
from predictive.models import ModelRun
from predictive.reasons import reason_text
from predictive.scoring import predictive_rules_recompute, scores_write
from predictive.services import models_retrain
from predictive.tasks import models_retrain as models_retrain_task
from tagging.models import ContactTag, Dimension
from tagging.recompute import tag_rule_presets_install
from tests.conftest import PASSWORD
from tests.factories import CorpFactory, StaffFactory
from tests.predictive.synthetic import planted_world

AT = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def _module_world(django_db_setup, django_db_blocker):
    """Built once per module (a few seconds), outside the per-test transactions that roll back what tests do."""
    with django_db_blocker.unblock():
        corp = CorpFactory(corp_id="wwPLANTED00000001")
        try:
            world = planted_world(corp=corp, staff=StaffFactory(corp=corp, userid="planted"), at=AT,
                                  customers=3000)
            world.corp = corp
            yield world
        finally:
            LiveCode.objects.filter(corp=corp).delete()
            corp.delete()


@pytest.fixture
def world(_module_world, db):
    return _module_world


@pytest.fixture
def corp(world):
    """The planted corp (the first corp: the model page shows it)."""
    return world.corp


def _scores() -> dict[int, tuple]:
    return dict((cid, (churn, prop)) for cid, churn, prop in ContactFacts.objects.filter(
        churn_risk__isnull=False).values_list("contact_id", "churn_risk", "purchase_propensity"))


def _client(user, language="en") -> Client:
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    client.cookies["django_language"] = language
    return client


# --- features ---------------------------------------------------------------------------------------------------------
def test_features_are_as_of_the_cutoff_and_labels_cover_the_next_30_days(world, corp):
    contact = world.contacts[0]
    train = features_extract(corp_id=corp.pk, at=AT - timedelta(days=60), labels=True)
    assert train.size == 3000 and list(train.contact_ids) == sorted(train.contact_ids)
    row = int(np.searchsorted(train.contact_ids, contact.pk))
    values = dict(zip(FEATURES, train.raw[row], strict=True))
    assert values["tenure_days"] == pytest.approx(140)
    assert values["groups_active"] == float(world.in_group[0])
    assert values["channel_livecode"] == float(world.via_code[0])
    cutoff = AT - timedelta(days=60)
    assert values["events_30d"] == contact.events.filter(occurred_at__gt=cutoff - timedelta(days=30),
                                                         occurred_at__lte=cutoff).count()
    one = features_extract(corp_id=corp.pk, at=AT - timedelta(days=60), labels=True, contact_id=contact.pk)
    assert one.size == 1 and np.array_equal(one.raw[0], train.raw[row]) and np.array_equal(one.labels[0],
                                                                                          train.labels[row])


# --- training ---------------------------------------------------------------------------------------------------------
def test_both_models_find_the_planted_signal(world, corp):
    runs = {run.kind: run for run in models_retrain(corp=corp, at=AT, seed=7)}
    for kind in ("churn", "propensity"):
        run = runs[kind]
        assert run.method == ModelRun.Method.MODEL and run.heuristic_reason == ""
        assert run.auc >= 0.75, (kind, run.auc)
        assert run.n_train == run.n_test == run.n_scored == 3000
        assert 0 < run.positives < run.n_train
        assert run.cutoff == AT - timedelta(days=60) and run.test_cutoff == AT - timedelta(days=30)
    coefficients = dict(zip(FEATURES, runs["churn"].coefficients, strict=True))
    assert coefficients["groups_active"] == min(coefficients.values())  # being in a group protects most
    coefficients = dict(zip(FEATURES, runs["propensity"].coefficients, strict=True))
    assert coefficients["channel_livecode"] == max(coefficients.values())
    scores = _scores()
    assert len(scores) == 3000
    in_group = {c.pk for c, flag in zip(world.contacts, world.in_group, strict=True) if flag}
    churn_in = np.mean([s[0] for cid, s in scores.items() if cid in in_group])
    churn_out = np.mean([s[0] for cid, s in scores.items() if cid not in in_group])
    assert churn_out > churn_in + 0.3


def test_same_seed_gives_identical_coefficients_and_scores(world, corp):
    first = {run.kind: run for run in models_retrain(corp=corp, at=AT, seed=3)}
    scores = _scores()
    second = {run.kind: run for run in models_retrain(corp=corp, at=AT, seed=3)}
    for kind in first:
        assert first[kind].coefficients == second[kind].coefficients
        assert first[kind].intercept == second[kind].intercept and first[kind].auc == second[kind].auc
    assert _scores() == scores


def test_a_concurrent_retrain_of_the_same_corp_is_refused(world, corp):
    from django.db import connections

    from scrm.errors import ApplicationError

    other = connections.create_connection("default")
    key = 0x5052_4544_0000 + corp.pk
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", [key])
        with pytest.raises(ApplicationError, match="already being trained"):
            models_retrain(corp=corp, at=AT)
    finally:
        # Unlock before closing: the server drops a closed session's locks only when its backend has exited,
        # which may be after the next test (same module, same corp) has asked for the lock.
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", [key])
        other.close()
    assert not ModelRun.objects.exists()


# --- reasons ----------------------------------------------------------------------------------------------------------
def test_reasons_for_one_contact_name_the_planted_feature(world, corp, monkeypatch):
    models_retrain(corp=corp, at=AT, seed=7)
    monkeypatch.setattr("predictive.selectors.now", lambda: AT)
    lonely = next(c for c, flag, code in zip(world.contacts, world.in_group, world.via_code, strict=True)
                  if not flag and not code)
    with translation.override("en"):
        scores = {s.kind: s for s in selectors.contact_prediction(contact=lonely)}
    churn = scores["churn"]
    assert churn.value is not None and churn.value > 0.5
    assert 1 <= len(churn.reasons) <= 3
    assert "In 0 customer groups" in churn.reasons
    with translation.override("zh-hans"):
        assert reason_text("days_since_activity", 45) == "已 45 天无互动"


def test_no_prediction_before_the_first_run(world):
    assert selectors.contact_prediction(contact=world.contacts[0]) == []


# --- tag rules --------------------------------------------------------------------------------------------------------
def test_tag_rules_follow_the_scores(world, corp, django_capture_on_commit_callbacks):
    tag_rule_presets_install(corp=corp, preset="predictive")
    models_retrain(corp=corp, at=AT, seed=7)
    high = ContactTag.objects.filter(tag__name="高流失风险", tag__group__dimension=Dimension.PREDICTIVE)
    risky = set(ContactFacts.objects.filter(churn_risk__gte=0.6).values_list("contact_id", flat=True))
    assert risky and set(high.values_list("contact_id", flat=True)) == risky
    buyers = set(ContactFacts.objects.filter(purchase_propensity__gte=0.5).values_list("contact_id", flat=True))
    assert set(ContactTag.objects.filter(tag__name="高购买意向").values_list("contact_id", flat=True)) == buyers
    # the score of one risky customer drops: the next scoring removes the tag (and only that one)
    dropped = min(risky)
    before = _scores()
    ids = np.array(sorted(before), dtype=np.int64)
    churn = np.array([0.1 if cid == dropped else before[cid][0] for cid in ids])
    scores_write(corp_id=corp.pk, contact_ids=ids, churn=churn, propensity=np.zeros(ids.shape[0]),
                 at=AT + timedelta(days=1))
    predictive_rules_recompute(corp_id=corp.pk)
    assert set(high.values_list("contact_id", flat=True)) == risky - {dropped}
    assert not ContactTag.objects.filter(tag__name="高购买意向").exists()


# --- pages, task, command ---------------------------------------------------------------------------------------------
def test_page_shows_the_models_for_operators_and_refuses_guides(world, corp, operator_user, guide_a):
    tag_rule_presets_install(corp=corp, preset="predictive")
    runs = {run.kind: run for run in models_retrain(corp=corp, at=AT, seed=7)}
    response = _client(operator_user).get("/analytics/predictive/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f"{runs['churn'].auc:.3f}" in page and f"{runs['propensity'].auc:.3f}" in page
    assert "Customer groups joined" in page and "Added through a live code" in page  # coefficient table
    assert "bar-h20" in page  # the fullest histogram bar
    assert "高流失风险" in page and "Logistic regression" in page
    assert "Too little history" not in page
    assert _client(guide_a).get("/analytics/predictive/").status_code == 403
    assert Client().get("/analytics/predictive/").status_code == 302  # to the login


def test_profile_panel_shows_scores_and_reasons(world, corp, admin_user, guide_b):
    models_retrain(corp=corp, at=AT, seed=7)
    contact = world.contacts[0]
    page = _client(admin_user).get(f"/contacts/{contact.pk}/").content.decode()
    assert f'hx-get="/analytics/predictive/contacts/{contact.pk}/"' in page
    panel = _client(admin_user).get(f"/analytics/predictive/contacts/{contact.pk}/").content.decode()
    facts = ContactFacts.objects.get(contact=contact)
    assert 'class="panel prediction"' in panel and "Logistic regression" in panel
    assert f"{facts.churn_risk:.2f}" in panel and f"{facts.purchase_propensity:.2f}" in panel
    assert 3 <= panel.count("<li>") <= 6  # up to three reasons per score
    assert _client(guide_b).get(f"/analytics/predictive/contacts/{contact.pk}/").status_code == 404  # not theirs


def test_task_and_command_retrain_every_corp(world, corp):
    assert models_retrain_task() == Corp.objects.count()
    assert ModelRun.objects.filter(corp=corp).count() == 2
    from io import StringIO

    out = StringIO()
    call_command("predictive_train", "--corp", corp.corp_id, "--seed", "7", stdout=out)
    assert "churn" in out.getvalue() and "auc=" in out.getvalue() and "scored=3000" in out.getvalue()
    assert ModelRun.objects.filter(corp=corp).count() == 4
