"""Writing a million scores set-based, then letting the predictive tag rules follow them.

Scores go into a temporary table with one binary COPY, then into ``contacts_contactfacts`` with one upsert per
chunk of contact ids, each chunk its own short transaction (no long row locks next to the live facts writers).
Contacts scored before but no longer customers lose their scores, so rules drop their tags.
"""

import io
import logging
from datetime import datetime

import numpy as np
from django.db import connection, transaction

from contacts.models import Contact, ContactFacts
from tagging.models import TagRule
from tagging.recompute import tag_rule_recompute

logger = logging.getLogger(__name__)

CHUNK = 50_000
SCORE_ATTRS = ("churn_risk", "purchase_propensity")

_UPSERT = """
INSERT INTO {facts} (contact_id, city, age_band, occupation, order_count, total_spent, avg_order_value,
    rfm_r, rfm_f, rfm_m, updated_at, churn_risk, purchase_propensity, scored_at)
SELECT s.contact_id, '', '', '', 0, 0, 0, 0, 0, 0, %(at)s, s.churn, s.propensity, %(at)s
FROM predictive_scores_tmp s WHERE s.contact_id >= %(low)s AND s.contact_id <= %(high)s
ON CONFLICT (contact_id) DO UPDATE SET churn_risk = EXCLUDED.churn_risk,
    purchase_propensity = EXCLUDED.purchase_propensity, scored_at = EXCLUDED.scored_at
"""
_CLEAR = """
UPDATE {facts} f SET churn_risk = NULL, purchase_propensity = NULL, scored_at = NULL
FROM {contact} c WHERE c.id = f.contact_id AND c.corp_id = %(corp)s AND f.scored_at IS NOT NULL
    AND f.scored_at IS DISTINCT FROM %(at)s
"""


def _copy_payload(contact_ids: np.ndarray, churn: np.ndarray, propensity: np.ndarray) -> bytes:
    """PostgreSQL's binary COPY format for rows of (int8, float8, float8)."""
    dtype = np.dtype([("count", ">i2"), ("l0", ">i4"), ("id", ">i8"), ("l1", ">i4"), ("churn", ">f8"),
                      ("l2", ">i4"), ("propensity", ">f8")])
    rows = np.empty(contact_ids.shape[0], dtype=dtype)
    rows["count"], rows["l0"], rows["l1"], rows["l2"] = 3, 8, 8, 8
    rows["id"], rows["churn"], rows["propensity"] = contact_ids, churn, propensity
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    return header + rows.tobytes() + (-1).to_bytes(2, "big", signed=True)


def scores_write(*, corp_id: int, contact_ids: np.ndarray, churn: np.ndarray, propensity: np.ndarray,
                 at: datetime, chunk: int = CHUNK) -> int:
    """Store both scores of these contacts (stamped ``at``) and clear older scores of the corp's others."""
    tables = {"facts": ContactFacts._meta.db_table, "contact": Contact._meta.db_table}
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS predictive_scores_tmp")
        cur.execute("CREATE TEMP TABLE predictive_scores_tmp (contact_id int8 PRIMARY KEY, churn float8, "
                    "propensity float8)")
        cur.copy_expert("COPY predictive_scores_tmp FROM STDIN (FORMAT binary)",
                        io.BytesIO(_copy_payload(contact_ids, churn, propensity)))
        try:
            for start in range(0, contact_ids.shape[0], chunk):
                part = contact_ids[start:start + chunk]
                with transaction.atomic():
                    cur.execute(_UPSERT.format(**tables),
                                {"at": at, "low": int(part[0]), "high": int(part[-1])})
            with transaction.atomic():
                cur.execute(_CLEAR.format(**tables), {"corp": corp_id, "at": at})
                cleared = cur.rowcount
        finally:
            cur.execute("DROP TABLE IF EXISTS predictive_scores_tmp")
    logger.info("predictive scores written corp_id=%s scored=%s cleared=%s", corp_id, contact_ids.shape[0], cleared)
    return int(contact_ids.shape[0])


def predictive_rules_recompute(*, corp_id: int) -> int:
    """Recompute (set-based) every active tag rule of the corp that reads a predictive score."""
    rules = TagRule.objects.filter(is_active=True, tag__group__corp_id=corp_id).order_by("pk")
    ids = [rule.pk for rule in rules if any(attr in str(rule.condition) for attr in SCORE_ATTRS)]
    for rule_id in ids:
        tag_rule_recompute(rule_id=rule_id)
    return len(ids)
