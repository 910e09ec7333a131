"""Outcomes after a broadcast or a journey send step, precomputed into ``CampaignStat`` (never per page view).

Among recipients whose message was actually sent (status "sent"; the anchor is each recipient's first send):
converted within N days = ordered in [sent, sent + N days); repurchased = converted and had ordered before the
send; referrals = new customers whose first add carries ``state`` ``ref_<recipient contact id>`` (the simplest
honest notion of a share code: live codes have no per-customer share code) added in [sent, sent + N days).
"""

from datetime import timedelta

from django.db import connection, transaction

from analytics.models import CampaignStat
from scrm.clock import now

DAYS = (1, 7, 30)
OPEN_WINDOW = timedelta(days=max(DAYS) + 2)  # campaigns sent more recently than this are still moving

_SENT = {
    "broadcast": "SELECT contact_id, min(sent_at) AS sent_at FROM journeys_outboundmessage WHERE broadcast_id = %s "
                 "AND contact_id IS NOT NULL AND status = 'sent' AND sent_at IS NOT NULL GROUP BY contact_id",
    "journey_step": "SELECT m.contact_id, min(m.sent_at) AS sent_at FROM journeys_outboundmessage m "
                    "JOIN journeys_journeystep st ON st.id = %s AND m.journey_id = st.journey_id AND m.step_id = st.id "
                    "WHERE m.contact_id IS NOT NULL AND m.status = 'sent' AND m.sent_at IS NOT NULL "
                    "GROUP BY m.contact_id",
}
_RECIPIENTS = {
    "broadcast": "SELECT count(DISTINCT contact_id) FROM journeys_outboundmessage WHERE broadcast_id = %s "
                 "AND contact_id IS NOT NULL",
    "journey_step": "SELECT count(DISTINCT m.contact_id) FROM journeys_outboundmessage m JOIN journeys_journeystep st "
                    "ON st.id = %s AND m.journey_id = st.journey_id AND m.step_id = st.id WHERE m.contact_id IS NOT NULL",
}
_OUTCOME = """
SELECT s.contact_id, s.sent_at,
  (SELECT min(o.paid_at) FROM contacts_order o WHERE o.contact_id = s.contact_id AND o.paid_at >= s.sent_at) AS nxt,
  EXISTS (SELECT 1 FROM contacts_order o WHERE o.contact_id = s.contact_id AND o.paid_at < s.sent_at) AS before
FROM ({sent}) s
"""


def outcome_contacts_sql(*, kind: str, campaign_id: int, metric: str, days: int) -> tuple[str, list]:
    """SQL yielding the contact ids behind one campaign number (sent, converted, repurchased, referrals)."""
    sent = _SENT[kind]
    if metric == "sent":
        return f"SELECT contact_id FROM ({sent}) s", [campaign_id]  # noqa: S608
    if metric == "referrals":
        return (f"SELECT cf.contact_id FROM ({sent}) s JOIN analytics_customerfact cf ON cf.referrer_id = s.contact_id "  # noqa: S608
                "AND cf.added_at >= s.sent_at AND cf.added_at < s.sent_at + make_interval(days => %s)",
                [campaign_id, days])
    cond = "x.nxt < x.sent_at + make_interval(days => %s)" + (" AND x.before" if metric == "repurchased" else "")
    return f"SELECT x.contact_id FROM ({_OUTCOME.format(sent=sent)}) x WHERE {cond}", [campaign_id, days]  # noqa: S608


def campaign_stat_compute(*, kind: str, campaign_id: int) -> dict:
    values: dict = {}
    with connection.cursor() as cur:
        cur.execute(_RECIPIENTS[kind], [campaign_id])
        values["recipients"] = cur.fetchone()[0]
        windows = ", ".join(f"count(*) FILTER (WHERE nxt < sent_at + interval '{d} days'), "
                            f"count(*) FILTER (WHERE before AND nxt < sent_at + interval '{d} days')" for d in DAYS)
        sql = f"SELECT count(*), min(sent_at), {windows} FROM ({_OUTCOME.format(sent=_SENT[kind])}) x"  # noqa: S608
        cur.execute(sql, [campaign_id])
        row = cur.fetchone()
        values.update(sent=row[0], sent_at=row[1])
        for i, d in enumerate(DAYS):
            values[f"converted_{d}"], values[f"repurchased_{d}"] = row[2 + 2 * i], row[3 + 2 * i]
        windows = ", ".join(f"count(*) FILTER (WHERE cf.added_at < s.sent_at + interval '{d} days')" for d in DAYS)
        sql = (f"SELECT {windows} FROM ({_SENT[kind]}) s JOIN analytics_customerfact cf "  # noqa: S608
               "ON cf.referrer_id = s.contact_id AND cf.added_at >= s.sent_at")
        cur.execute(sql, [campaign_id])
        for d, n in zip(DAYS, cur.fetchone(), strict=True):
            values[f"referrals_{d}"] = n
    return values


def _campaigns(all_campaigns: bool) -> list[tuple[str, int, str]]:
    from journeys.models import Broadcast, JourneyStep

    cutoff = now() - OPEN_WINDOW
    broadcasts = Broadcast.objects.exclude(status__in=[Broadcast.Status.DRAFT, Broadcast.Status.CANCELLED])
    steps = JourneyStep.objects.filter(kind=JourneyStep.Kind.SEND).select_related("journey")
    if not all_campaigns:
        fresh = set(CampaignStat.objects.filter(sent_at__lt=cutoff).values_list("kind", "campaign_id"))
        broadcasts = [b for b in broadcasts if ("broadcast", b.pk) not in fresh]
        steps = [s for s in steps.exclude(journey__status="draft") if ("journey_step", s.pk) not in fresh]
    return ([("broadcast", b.pk, b.name) for b in broadcasts]
            + [("journey_step", s.pk, f"{s.journey.name} · {s.label or s.position}") for s in steps])


def campaign_stats_refresh(*, all_campaigns: bool = False) -> int:
    """Recompute campaign outcomes: campaigns whose windows are still open (or never computed), or all of them."""
    count = 0
    for kind, campaign_id, label in _campaigns(all_campaigns):
        values = campaign_stat_compute(kind=kind, campaign_id=campaign_id)
        if not values["recipients"]:
            continue
        with transaction.atomic():
            CampaignStat.objects.update_or_create(kind=kind, campaign_id=campaign_id,
                                                  defaults={**values, "label": label[:160], "refreshed_at": now()})
        count += 1
    return count
