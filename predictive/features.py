"""Customer features "as of" a cutoff, and the 30-day labels after it: one set-based query streamed to numpy.

The query aggregates each source table once per contact (relations, events, orders, group memberships, the
journey outbox) and joins the aggregates on the population: contacts who were customers at the cutoff (at least
one follow relation added by then and not ended by then). It is streamed with ``COPY … TO STDOUT (FORMAT binary)``
into one buffer that numpy reads as a fixed-width record array: every column is a non-NULL float8 (the id int8),
so there is no per-row Python work even at a million customers.

Labels over the window (t, t + 30 d]:
  churn     = the customer lost every relation active at t, or showed no activity at all in the window;
  purchase  = at least one order paid in the window.
Activity is any contact event other than a deletion, or an order. Relations are read from their current row
(added/deleted times), so a relation deleted and re-added before t counts from its last add.
"""

import io
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import connection

from contacts.models import Contact, ContactEvent, FollowRelation, GroupChat, GroupMember, Order
from journeys.models import OutboundMessage
from livecodes.models import LiveCode

WINDOW_DAYS = 30
CAP_DAYS = 365  # "days since" is capped here; never → the cap

# Raw columns in query order (after the id). ``LOG`` ones enter the model as log1p(value).
FEATURES = (
    "days_since_activity", "tenure_days", "order_count", "total_spent", "days_since_order", "events_30d",
    "events_30_90d", "groups_active", "relations_active", "channel_livecode", "channel_other", "gender_male",
    "gender_female", "journey_touches_30d",
)
LOG = frozenset({"order_count", "total_spent", "events_30d", "events_30_90d", "journey_touches_30d"})
LABELS = ("churn", "purchase")


@dataclass(frozen=True)
class FeatureSet:
    at: datetime
    contact_ids: np.ndarray  # int64, ascending
    raw: np.ndarray  # float64 (n, len(FEATURES)), human units
    labels: np.ndarray | None  # float64 (n, 2): churn, purchase; None when the window is not over yet

    @property
    def size(self) -> int:
        return int(self.contact_ids.shape[0])

    def label(self, name: str) -> np.ndarray:
        assert self.labels is not None
        return self.labels[:, LABELS.index(name)].astype(np.int8)


def design_matrix(raw: np.ndarray) -> np.ndarray:
    """The model's inputs: the raw columns with counts and money log-scaled."""
    out = raw.astype(np.float64, copy=True)
    for i, name in enumerate(FEATURES):
        if name in LOG:
            np.log1p(out[:, i], out=out[:, i])
    return out


def _tables() -> dict[str, str]:
    return {
        "contact": Contact._meta.db_table, "relation": FollowRelation._meta.db_table,
        "event": ContactEvent._meta.db_table, "order": Order._meta.db_table, "chat": GroupChat._meta.db_table,
        "member": GroupMember._meta.db_table, "outbox": OutboundMessage._meta.db_table,
        "livecode": LiveCode._meta.db_table,
    }


_SQL = """
WITH rel AS (
  SELECT r.contact_id,
    count(*) FILTER (WHERE r.a <= %(t)s AND (r.e IS NULL OR r.e > %(t)s)) AS active_t,
    count(*) FILTER (WHERE r.a <= %(t)s AND (r.e IS NULL OR r.e > %(t_end)s)) AS kept,
    min(r.a) AS first_added,
    bool_or(r.a <= %(t)s AND r.state <> '' AND lc.id IS NOT NULL) AS via_code,
    bool_or(r.a <= %(t)s AND r.state <> '' AND lc.id IS NULL) AS via_other
  FROM (SELECT r.contact_id, r.state, COALESCE(r.added_at, r.created_at) AS a,
               COALESCE(LEAST(r.deleted_by_customer_at, r.deleted_by_staff_at),
                        CASE WHEN NOT r.is_active THEN COALESCE(r.status_changed_at, r.updated_at) END) AS e
        FROM {relation} r JOIN {contact} c ON c.id = r.contact_id
        WHERE c.corp_id = %(corp)s {only_r}) r
  LEFT JOIN {livecode} lc ON lc.state = r.state AND r.state <> ''
  GROUP BY r.contact_id
  HAVING count(*) FILTER (WHERE r.a <= %(t)s AND (r.e IS NULL OR r.e > %(t)s)) > 0
), ev AS (
  SELECT e.contact_id,
    max(e.occurred_at) FILTER (WHERE e.occurred_at <= %(t)s) AS last_at,
    count(*) FILTER (WHERE e.occurred_at > %(t_30)s AND e.occurred_at <= %(t)s) AS n30,
    count(*) FILTER (WHERE e.occurred_at > %(t_90)s AND e.occurred_at <= %(t_30)s) AS n90,
    count(*) FILTER (WHERE e.occurred_at > %(t)s) AS n_after
  FROM {event} e
  WHERE e.corp_id = %(corp)s AND e.contact_id IS NOT NULL AND e.occurred_at <= %(t_end)s
    AND e.kind NOT IN ('deleted_by_customer', 'deleted_by_staff') {only_e}
  GROUP BY e.contact_id
), ord AS (
  SELECT o.contact_id,
    count(*) FILTER (WHERE o.paid_at <= %(t)s) AS n,
    COALESCE(sum(o.amount) FILTER (WHERE o.paid_at <= %(t)s), 0) AS spent,
    max(o.paid_at) FILTER (WHERE o.paid_at <= %(t)s) AS last_at,
    count(*) FILTER (WHERE o.paid_at > %(t)s) AS n_after
  FROM {order} o
  WHERE o.corp_id = %(corp)s AND o.paid_at <= %(t_end)s {only_o}
  GROUP BY o.contact_id
), grp AS (
  SELECT m.contact_id, count(*) AS n
  FROM {member} m JOIN {chat} g ON g.id = m.chat_id
  WHERE g.corp_id = %(corp)s AND m.contact_id IS NOT NULL AND COALESCE(m.joined_at, m.created_at) <= %(t)s
    AND (m.left_at IS NULL OR m.left_at > %(t)s) {only_m}
  GROUP BY m.contact_id
), ob AS (
  SELECT m.contact_id, count(*) AS n
  FROM {outbox} m
  WHERE m.corp_id = %(corp)s AND m.contact_id IS NOT NULL AND m.created_at > %(t_30)s
    AND m.created_at <= %(t)s {only_m}
  GROUP BY m.contact_id
)
SELECT c.id::int8,
  LEAST(%(cap)s, COALESCE(extract(epoch FROM %(t)s - GREATEST(ev.last_at, ord.last_at)) / 86400.0, %(cap)s))::float8,
  GREATEST(0, extract(epoch FROM %(t)s - rel.first_added) / 86400.0)::float8,
  COALESCE(ord.n, 0)::float8,
  COALESCE(ord.spent, 0)::float8,
  LEAST(%(cap)s, COALESCE(extract(epoch FROM %(t)s - ord.last_at) / 86400.0, %(cap)s))::float8,
  COALESCE(ev.n30, 0)::float8,
  COALESCE(ev.n90, 0)::float8,
  COALESCE(grp.n, 0)::float8,
  rel.active_t::float8,
  (COALESCE(rel.via_code, false))::int::float8,
  (COALESCE(rel.via_other, false) AND NOT COALESCE(rel.via_code, false))::int::float8,
  (c.gender = 1)::int::float8,
  (c.gender = 2)::int::float8,
  COALESCE(ob.n, 0)::float8
  {label_cols}
FROM rel JOIN {contact} c ON c.id = rel.contact_id
LEFT JOIN ev ON ev.contact_id = c.id
LEFT JOIN ord ON ord.contact_id = c.id
LEFT JOIN grp ON grp.contact_id = c.id
LEFT JOIN ob ON ob.contact_id = c.id
ORDER BY c.id
"""
_LABEL_COLS = """,
  (rel.kept = 0 OR COALESCE(ev.n_after, 0) + COALESCE(ord.n_after, 0) = 0)::int::float8,
  (COALESCE(ord.n_after, 0) > 0)::int::float8"""


def features_sql(*, corp_id: int, at: datetime, labels: bool, contact_id: int | None = None) -> tuple[str, dict]:
    """The feature query (and its parameters) as of ``at``; with ``labels`` the window (at, at + 30 d] too."""
    only = {key: "" for key in ("only_r", "only_e", "only_o", "only_m")}
    if contact_id is not None:
        only = {"only_r": "AND r.contact_id = %(one)s", "only_e": "AND e.contact_id = %(one)s",
                "only_o": "AND o.contact_id = %(one)s", "only_m": "AND m.contact_id = %(one)s"}
    sql = _SQL.format(**_tables(), **only, label_cols=_LABEL_COLS if labels else "")
    params = {"corp": corp_id, "t": at, "t_30": at - timedelta(days=WINDOW_DAYS),
              "t_90": at - timedelta(days=3 * WINDOW_DAYS),
              "t_end": at + timedelta(days=WINDOW_DAYS) if labels else at, "cap": float(CAP_DAYS), "one": contact_id}
    return sql, params


def features_extract(*, corp_id: int, at: datetime, labels: bool, contact_id: int | None = None) -> FeatureSet:
    """Stream the feature rows into numpy (binary COPY; no Python object per row)."""
    sql, params = features_sql(corp_id=corp_id, at=at, labels=labels, contact_id=contact_id)
    buffer = io.BytesIO()
    with connection.cursor() as cur:
        query = cur.mogrify(sql, params).decode()
        cur.copy_expert(f"COPY ({query}) TO STDOUT (FORMAT binary)", buffer)
    ncols = len(FEATURES) + (len(LABELS) if labels else 0)
    records = _records(buffer.getbuffer(), ncols)
    ids = records["id"].astype(np.int64)
    values = np.empty((ids.shape[0], ncols), dtype=np.float64)
    for i in range(ncols):
        values[:, i] = records[f"v{i}"]
    del records, buffer
    return FeatureSet(at=at, contact_ids=ids, raw=values[:, :len(FEATURES)],
                      labels=values[:, len(FEATURES):] if labels else None)


_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _records(data: memoryview, ncols: int) -> np.ndarray:
    """Read PostgreSQL's binary COPY stream of (int8, float8 × ncols) rows, none NULL, as a record array."""
    if bytes(data[:11]) != _SIGNATURE:
        raise ValueError("not a binary COPY stream")
    extension = int.from_bytes(data[15:19], "big")
    start = 19 + extension
    fields = [("count", ">i2"), ("id_len", ">i4"), ("id", ">i8")]
    for i in range(ncols):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">f8")]
    dtype = np.dtype(fields)
    body = data[start:len(data) - 2]  # the trailer is one int16 of -1
    if len(body) % dtype.itemsize:
        raise ValueError("unexpected row layout in the COPY stream (a NULL column?)")
    records = np.frombuffer(body, dtype=dtype)
    if records.shape[0] and (np.any(records["count"] != ncols + 1) or np.any(records["id_len"] != 8)):
        raise ValueError("unexpected row layout in the COPY stream")
    return records
