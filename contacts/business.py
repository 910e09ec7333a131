"""Business facts: orders, entitlements and the derived ContactFacts, kept fresh incrementally.

Writes are idempotent by ``external_id`` (a re-sent order updates, never duplicates). After each write the
facts of the touched contacts are recomputed set-based from their orders (one statement, whatever the count).
Tag rules react through the explicit fan-out: each new order is recorded as an ``ordered`` ContactEvent
unless the caller (a bulk import) recomputes rules set-based afterwards.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from contacts import fanout
from contacts.models import Contact, ContactEvent, ContactFacts, Corp, Entitlement, Order
from scrm.clock import now


@dataclass
class WriteResult:
    created: int = 0
    updated: int = 0
    errors: list[dict] = field(default_factory=list)  # {"index": i, "message": ...}
    contact_ids: set[int] = field(default_factory=set)


def parse_when(value) -> datetime:
    return _when(value)


def _when(value) -> datetime:
    if isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value or ""))
    if parsed is None:
        raise ValueError(f"not a date and time: {value!r} (use ISO 8601, e.g. 2026-03-01T10:00:00+08:00)")
    if parsed.tzinfo is None:
        from django.utils import timezone

        parsed = timezone.make_aware(parsed)
    return parsed


def _contacts_by_external(corp: Corp, external_ids: set[str]) -> dict[str, int]:
    return dict(Contact.objects.filter(corp=corp, external_userid__in=external_ids)
                .values_list("external_userid", "pk"))


def orders_record(*, corp: Corp, rows: list[dict], record_events: bool = True) -> WriteResult:
    """Upsert orders: each row has external_id, amount, paid_at, items (optional) and the contact as
    ``contact_id`` or ``external_userid``. Bad rows are reported in ``errors`` and never abort the rest."""
    result = WriteResult()
    contacts = _contacts_by_external(corp, {str(r.get("external_userid")) for r in rows if r.get("external_userid")})
    valid: list[tuple[int, Order]] = []
    for index, row in enumerate(rows):
        try:
            contact_id = row.get("contact_id") or contacts.get(str(row.get("external_userid") or ""))
            if not contact_id:
                raise ValueError("unknown contact (give contact_id or an external_userid we know)")
            external_id = str(row.get("external_id") or "").strip()
            if not external_id or len(external_id) > 64:
                raise ValueError("external_id is required (at most 64 characters)")
            try:
                amount = Decimal(str(row.get("amount")))
            except InvalidOperation as exc:
                raise ValueError(f"amount is not a number: {row.get('amount')!r}") from exc
            if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
                raise ValueError("amount must be between 0 and 9,999,999,999.99")
            items = row.get("items") or []
            if not isinstance(items, list):
                raise ValueError("items is a list")
            valid.append((index, Order(corp=corp, contact_id=int(contact_id), external_id=external_id,
                                       amount=amount.quantize(Decimal("0.01")), items=items,
                                       paid_at=_when(row.get("paid_at")))))
        except (ValueError, TypeError) as exc:
            result.errors.append({"index": index, "message": str(exc)})
    known = set(Contact.objects.filter(corp=corp, pk__in={o.contact_id for _, o in valid}).values_list("pk", flat=True))
    for index, order in list(valid):
        if order.contact_id not in known:
            result.errors.append({"index": index, "message": f"unknown contact id {order.contact_id}"})
            valid.remove((index, order))
    if not valid:
        return result
    with transaction.atomic():
        existing = set(Order.objects.filter(corp=corp, external_id__in=[o.external_id for _, o in valid])
                       .values_list("external_id", flat=True))
        Order.objects.bulk_create([o for _, o in valid], batch_size=2000, update_conflicts=True,
                                  unique_fields=["corp", "external_id"],
                                  update_fields=["contact", "amount", "items", "paid_at", "updated_at"])
        result.created = len({o.external_id for _, o in valid} - existing)
        result.updated = len(valid) - result.created
        result.contact_ids = {o.contact_id for _, o in valid}
        contact_facts_refresh(contact_ids=sorted(result.contact_ids))
        if record_events:
            from contacts.services import record_event

            new = [o for _, o in valid if o.external_id not in existing]
            by_id = Contact.objects.in_bulk({o.contact_id for o in new})
            for order in new:
                record_event(corp=corp, kind=ContactEvent.Kind.ORDERED, occurred_at=order.paid_at,
                             contact=by_id[order.contact_id],
                             data={"external_id": order.external_id, "amount": str(order.amount)},
                             dedup_key=f"order:{corp.pk}:{order.external_id}")
    return result


def entitlements_record(*, corp: Corp, rows: list[dict]) -> WriteResult:
    result = WriteResult()
    contacts = _contacts_by_external(corp, {str(r.get("external_userid")) for r in rows if r.get("external_userid")})
    valid: list[Entitlement] = []
    for index, row in enumerate(rows):
        try:
            contact_id = row.get("contact_id") or contacts.get(str(row.get("external_userid") or ""))
            if not contact_id:
                raise ValueError("unknown contact (give contact_id or an external_userid we know)")
            external_id = str(row.get("external_id") or "").strip()
            if not external_id or len(external_id) > 64:
                raise ValueError("external_id is required (at most 64 characters)")
            kind = row.get("kind")
            if kind not in Entitlement.Kind.values:
                raise ValueError(f"kind is one of {', '.join(Entitlement.Kind.values)}")
            status = row.get("status") or Entitlement.Status.ACTIVE
            if status not in Entitlement.Status.values:
                raise ValueError(f"status is one of {', '.join(Entitlement.Status.values)}")
            expires = _when(row["expires_at"]) if row.get("expires_at") else None
            valid.append(Entitlement(corp=corp, contact_id=int(contact_id), external_id=external_id, kind=kind,
                                     name=str(row.get("name") or "")[:128], status=status, expires_at=expires))
        except (ValueError, TypeError) as exc:
            result.errors.append({"index": index, "message": str(exc)})
    known = set(Contact.objects.filter(corp=corp, pk__in={e.contact_id for e in valid}).values_list("pk", flat=True))
    valid = [e for e in valid if e.contact_id in known]
    if not valid:
        return result
    with transaction.atomic():
        existing = set(Entitlement.objects.filter(corp=corp, external_id__in=[e.external_id for e in valid])
                       .values_list("external_id", flat=True))
        Entitlement.objects.bulk_create(valid, batch_size=2000, update_conflicts=True,
                                        unique_fields=["corp", "external_id"],
                                        update_fields=["contact", "kind", "name", "status", "expires_at",
                                                       "updated_at"])
    result.created = len({e.external_id for e in valid} - existing)
    result.updated = len(valid) - result.created
    result.contact_ids = {e.contact_id for e in valid}
    return result


_FACTS_UPSERT = """
INSERT INTO contacts_contactfacts (contact_id, city, age_band, occupation, order_count, total_spent,
    avg_order_value, first_purchase_at, last_purchase_at, last_active_at, rfm_r, rfm_f, rfm_m, updated_at)
SELECT o.contact_id, '', '', '', count(*), sum(o.amount), round(avg(o.amount), 2), min(o.paid_at), max(o.paid_at),
    max(o.paid_at), 0, 0, 0, %s
FROM contacts_order o WHERE o.contact_id = ANY(%s::bigint[]) GROUP BY o.contact_id
ON CONFLICT (contact_id) DO UPDATE SET order_count = EXCLUDED.order_count, total_spent = EXCLUDED.total_spent,
    avg_order_value = EXCLUDED.avg_order_value, first_purchase_at = EXCLUDED.first_purchase_at,
    last_purchase_at = EXCLUDED.last_purchase_at,
    last_active_at = GREATEST(contacts_contactfacts.last_active_at, EXCLUDED.last_active_at),
    updated_at = EXCLUDED.updated_at
"""


def contact_facts_refresh(*, contact_ids: list[int]) -> None:
    """Recompute order facts of these contacts from their orders (set-based)."""
    if not contact_ids:
        return
    with connection.cursor() as cur:
        cur.execute(_FACTS_UPSERT, [now(), contact_ids])
    fanout.orders_written(contact_ids=contact_ids)


def contact_facts_refresh_sql(contact_ids_sql: str, params: list) -> None:
    """Like contact_facts_refresh for the contact ids a (trusted, internal) subquery yields: bulk imports."""
    sql = _FACTS_UPSERT.replace("o.contact_id = ANY(%s::bigint[])", f"o.contact_id IN ({contact_ids_sql})")
    with connection.cursor() as cur:
        cur.execute(sql, [now(), *params])
    fanout.orders_written(contact_ids_sql=contact_ids_sql, params=params)


def contact_active_touch(*, contact_id: int, at: datetime) -> None:
    """An event happened: last_active_at moves forward (never back)."""
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO contacts_contactfacts (contact_id, city, age_band, occupation, order_count, total_spent, "
            "avg_order_value, last_active_at, rfm_r, rfm_f, rfm_m, updated_at) "
            "VALUES (%s, '', '', '', 0, 0, 0, %s, 0, 0, 0, %s) ON CONFLICT (contact_id) DO UPDATE SET "
            "last_active_at = GREATEST(contacts_contactfacts.last_active_at, EXCLUDED.last_active_at), "
            "updated_at = EXCLUDED.updated_at", [contact_id, at, now()])


def contact_profile_update(*, contact: Contact, city: str | None = None, age_band: str | None = None,
                           occupation: str | None = None) -> ContactFacts:
    facts, _ = ContactFacts.objects.get_or_create(contact=contact)
    for name, value in (("city", city), ("age_band", age_band), ("occupation", occupation)):
        if value is not None:
            setattr(facts, name, value.strip()[:64])
    facts.save()
    return facts


_RFM = """
WITH scored AS (
  SELECT contact_id,
         ntile(5) OVER (ORDER BY last_purchase_at) AS r,
         ntile(5) OVER (ORDER BY order_count) AS f,
         ntile(5) OVER (ORDER BY total_spent) AS m
  FROM contacts_contactfacts WHERE order_count > 0
)
UPDATE contacts_contactfacts cf SET rfm_r = s.r, rfm_f = s.f, rfm_m = s.m
FROM scored s WHERE cf.contact_id = s.contact_id AND (cf.rfm_r, cf.rfm_f, cf.rfm_m) IS DISTINCT FROM (s.r, s.f, s.m)
"""


def contacts_rfm_score() -> int:
    """RFM scores 1–5 by quintiles of all buyers (recency of the last purchase, order count, total spent)."""
    with connection.cursor() as cur:
        cur.execute(_RFM)
        return cur.rowcount

