"""The predictive profile without much history: population edges, the heuristic fallback, rule agreement, empty page."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection
from django.test import Client

from contacts.models import ContactFacts
from predictive import training
from predictive.features import FEATURES, features_extract
from predictive.models import ModelRun
from predictive.services import models_retrain
from tagging import rules
from tagging.selectors import contact_facts_get
from tests.conftest import PASSWORD
from tests.factories import ContactFactory
from tests.predictive.synthetic import planted_world

AT = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)


def _client(user) -> Client:
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    client.cookies["django_language"] = "en"
    return client


def test_a_contact_who_is_no_longer_a_customer_is_not_in_the_population(corp, staff_a):
    gone = ContactFactory(corp=corp)
    gone.relations.create(staff=staff_a, added_at=AT - timedelta(days=90), is_active=False,
                          deleted_by_customer_at=AT - timedelta(days=10))
    assert features_extract(corp_id=corp.pk, at=AT, labels=False).size == 0
    before = features_extract(corp_id=corp.pk, at=AT - timedelta(days=30), labels=True)
    assert before.size == 1 and before.label("churn")[0] == 1  # lost every relation within the window


def test_fewer_than_500_labelled_customers_fall_back_to_the_heuristic(corp, staff_a, operator_user):
    planted_world(corp=corp, staff=staff_a, at=AT, customers=300)
    runs = models_retrain(corp=corp, at=AT)
    assert {run.method for run in runs} == {ModelRun.Method.HEURISTIC}
    assert {run.heuristic_reason for run in runs} == {"too_few"}
    assert all(run.coefficients == [] for run in runs)
    scores = list(ContactFacts.objects.filter(churn_risk__isnull=False)
                  .values_list("churn_risk", "purchase_propensity"))
    assert len(scores) == 300
    assert all(0 <= c <= 1 and 0 <= p <= 1 for c, p in scores)
    page = _client(operator_user).get("/analytics/predictive/").content.decode()
    assert "Too little history to learn from: 300 labelled customers" in page
    assert "Heuristic" in page


def test_one_outcome_only_falls_back_to_the_heuristic():
    y = np.zeros(800, dtype=np.int8)
    assert training.heuristic_reason(n_train=800, train_y=y, test_y=np.array([0, 1])) == "one_class"
    assert training.heuristic_reason(n_train=800, train_y=np.array([0, 1] * 400), test_y=y) == "one_class"
    assert training.heuristic_reason(n_train=800, train_y=np.array([0, 1] * 400), test_y=np.array([0, 1])) == ""
    assert training.auc(y, np.zeros(800)) is None


def test_heuristic_formula_is_the_documented_one():
    raw = np.zeros((2, len(FEATURES)))
    raw[0, FEATURES.index("days_since_activity")] = 30  # half of 60 days, some events lately
    raw[0, FEATURES.index("events_30d")] = 2
    raw[1, FEATURES.index("days_since_activity")] = 365
    raw[1, FEATURES.index("order_count")] = 3
    raw[1, FEATURES.index("days_since_order")] = 45
    assert training.heuristic_score("churn", raw).tolist() == pytest.approx([0.3, 1.0])
    assert training.heuristic_score("propensity", raw).tolist() == pytest.approx([0.0, 0.75])


@pytest.mark.parametrize("condition", [
    {"attr": "churn_risk", "op": "gte", "value": 0.6},
    {"attr": "churn_risk", "op": "lt", "value": 0.3},
    {"attr": "churn_risk", "op": "gte", "value": 0.6, "negate": True},
    {"attr": "purchase_propensity", "op": "exists"},
    {"not": {"attr": "purchase_propensity", "op": "exists"}},
])
def test_score_conditions_agree_between_evaluator_and_sql(condition, corp):
    people = []
    for churn, propensity, facts in [(0.9, 0.2, True), (0.1, None, True), (None, None, True), (None, None, False)]:
        contact = ContactFactory(corp=corp)
        if facts:
            ContactFacts.objects.create(contact=contact, churn_risk=churn, purchase_propensity=propensity)
        people.append(contact.pk)
    node = rules.parse_rule(condition)
    compiled = rules.to_sql(node, now=AT)
    with connection.cursor() as cur:
        cur.execute("SELECT c.id FROM contacts_contact c LEFT JOIN contacts_contactfacts f ON f.contact_id = c.id "
                    f"WHERE c.id = ANY(%s) AND {compiled.sql}", [people, *compiled.params])
        by_sql = {r[0] for r in cur.fetchall()}
    by_eval = {pk for pk in people if rules.evaluate(node, contact_facts_get(contact_id=pk, at=AT))}
    assert by_sql == by_eval


def test_page_before_the_first_run_explains_itself(corp, operator_user):
    response = _client(operator_user).get("/analytics/predictive/")
    assert response.status_code == 200
    assert "No model has been trained yet" in response.content.decode()

