"""Analytics read models: one fact row per customer and small daily/weekly rollups derived from it.

Nothing here is a source of truth. Every table is recomputed from contacts, orders, groups and the outbox by
``analytics.rollups`` ("mark dirty, recompute the dirty bucket from its source rows"), so replays and
out-of-order events cannot double count, and ``manage.py analytics_rebuild`` rebuilds everything set-based.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class CustomerFact(models.Model):
    """What the dashboards need to know about one contact, refreshed set-based whenever an event touches it."""

    class LostBy(models.TextChoices):
        CUSTOMER = "customer", _("Customer deleted the staff member")
        STAFF = "staff", _("Staff member deleted the customer")
        UNKNOWN = "unknown", _("Unknown: found missing by a WeCom sync")

    contact = models.OneToOneField("contacts.Contact", primary_key=True, on_delete=models.CASCADE,
                                   related_name="analytics_fact")
    corp_id = models.BigIntegerField()
    added_at = models.DateTimeField(null=True)  # the first add (earliest FollowRelation.added_at)
    added_day = models.DateField(null=True)  # corp zone
    cohort_week = models.DateField(null=True)  # Monday of added_day's week
    state = models.CharField(max_length=64, blank=True, default="")  # channel of the first add
    livecode_id = models.BigIntegerField(null=True)  # the live code whose state that is
    staff_id = models.BigIntegerField(null=True)  # the staff member of the first add
    referrer_id = models.BigIntegerField(null=True)  # state "ref_<contact id>": brought by that customer
    # Set when nobody's customer any more: the last end of a relation (a deletion; or, when the full WeCom sync found
    # a relation gone without a callback, the time of that sync, with lost_by "unknown").
    lost_at = models.DateTimeField(null=True)
    lost_day = models.DateField(null=True)
    lost_by = models.CharField(max_length=8, choices=LostBy.choices, blank=True, default="")
    group_joined_at = models.DateTimeField(null=True)  # first group join
    group_joined_day = models.DateField(null=True)
    group_left_at = models.DateTimeField(null=True)  # set when in no group any more: the last departure
    group_left_day = models.DateField(null=True)
    first_order_at = models.DateTimeField(null=True)
    second_order_at = models.DateTimeField(null=True)
    revenue_30 = models.DecimalField(max_digits=14, decimal_places=2, default=0)  # paid within N days of adding
    revenue_90 = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    revenue_365 = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        ordering = ["contact"]
        verbose_name = _("customer fact")
        verbose_name_plural = _("customer facts")
        indexes = [
            models.Index(fields=["added_day", "contact"], name="cfact_added_day"),
            models.Index(fields=["cohort_week", "contact"], name="cfact_cohort_week"),
            models.Index(fields=["lost_day"], name="cfact_lost_day", condition=Q(lost_day__isnull=False)),
            models.Index(fields=["group_joined_day"], name="cfact_group_joined",
                         condition=Q(group_joined_day__isnull=False)),
            models.Index(fields=["group_left_day"], name="cfact_group_left", condition=Q(group_left_day__isnull=False)),
            models.Index(fields=["referrer_id"], name="cfact_referrer", condition=Q(referrer_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"fact of {self.contact_id}"


class DailyGrowth(models.Model):
    """Per day (corp zone) × dimension value: customers added, lost (by whom: the customer, the staff member, or
    unknown when a full sync found the relation gone), first group joins, group churn."""

    day = models.DateField()
    dim = models.CharField(max_length=8)  # source | livecode | staff
    key = models.CharField(max_length=64, blank=True)  # state, live code id or staff id ("" = none)
    added = models.PositiveIntegerField(default=0)
    lost_by_customer = models.PositiveIntegerField(default=0)
    lost_by_staff = models.PositiveIntegerField(default=0)
    lost_by_unknown = models.PositiveIntegerField(default=0, db_default=0)
    group_joined = models.PositiveIntegerField(default=0)
    group_left = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["day", "dim", "key"]
        verbose_name = _("daily growth")
        verbose_name_plural = _("daily growth")
        constraints = [models.UniqueConstraint(fields=["day", "dim", "key"], name="dailygrowth_unique")]

    def __str__(self) -> str:
        return f"{self.day} {self.dim}={self.key}"


class DailyCohort(models.Model):
    """Customers added on a day × channel × live code × staff member, and what became of them."""

    day = models.DateField()
    state = models.CharField(max_length=64, blank=True)
    livecode_id = models.BigIntegerField(default=0)  # 0 = no live code
    staff_id = models.BigIntegerField(default=0)  # 0 = unknown
    added = models.PositiveIntegerField(default=0)
    joined_group = models.PositiveIntegerField(default=0)
    first_order = models.PositiveIntegerField(default=0)
    repeat_order = models.PositiveIntegerField(default=0)
    retained_30 = models.PositiveIntegerField(default=0)  # not lost within 30 days of adding
    revenue_30 = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    revenue_90 = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    revenue_365 = models.DecimalField(max_digits=16, decimal_places=2, default=0)

    class Meta:
        ordering = ["day"]
        verbose_name = _("daily cohort")
        verbose_name_plural = _("daily cohorts")
        constraints = [models.UniqueConstraint(fields=["day", "state", "livecode_id", "staff_id"],
                                               name="dailycohort_unique")]

    def __str__(self) -> str:
        return f"{self.day} {self.state or '-'}"


class CohortWeek(models.Model):
    """Per weekly cohort and following week: customers lost in that week and customers active in it."""

    cohort_week = models.DateField()
    offset = models.PositiveSmallIntegerField()
    lost = models.PositiveIntegerField(default=0)
    active = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["cohort_week", "offset"]
        verbose_name = _("cohort week")
        verbose_name_plural = _("cohort weeks")
        constraints = [models.UniqueConstraint(fields=["cohort_week", "offset"], name="cohortweek_unique")]

    def __str__(self) -> str:
        return f"{self.cohort_week} +{self.offset}"


class ContactWeek(models.Model):
    """The contact had at least one event in this week (Monday, corp zone). Insert-only, idempotent."""

    pk = models.CompositePrimaryKey("week", "contact_id")
    week = models.DateField()
    contact_id = models.BigIntegerField()

    class Meta:
        verbose_name = _("active week")
        verbose_name_plural = _("active weeks")
        indexes = [models.Index(fields=["contact_id"], name="contactweek_contact")]

    def __str__(self) -> str:
        return f"{self.contact_id} @ {self.week}"


class DirtyContact(models.Model):
    """A contact whose fact row must be recomputed (written by the event fan-out, drained every minute)."""

    contact_id = models.BigIntegerField(primary_key=True)

    class Meta:
        verbose_name = _("contact to refresh")
        verbose_name_plural = _("contacts to refresh")

    def __str__(self) -> str:
        return str(self.contact_id)


class DirtyBucket(models.Model):
    """A rollup bucket to recompute: kind "day" (growth + cohort of that day), "cohort" (a cohort week's losses)
    or "activity" (the active counts of a calendar week)."""

    pk = models.CompositePrimaryKey("kind", "day")
    kind = models.CharField(max_length=8)
    day = models.DateField()

    class Meta:
        verbose_name = _("rollup bucket to refresh")
        verbose_name_plural = _("rollup buckets to refresh")

    def __str__(self) -> str:
        return f"{self.kind} {self.day}"


class RfmCell(models.Model):
    """Snapshot of the RFM grid (buyers per recency × frequency × monetary score), refreshed after scoring."""

    r = models.PositiveSmallIntegerField()
    f = models.PositiveSmallIntegerField()
    m = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField()
    value = models.DecimalField(max_digits=16, decimal_places=2)
    scored_at = models.DateTimeField()

    class Meta:
        ordering = ["r", "f", "m"]
        verbose_name = _("RFM cell")
        verbose_name_plural = _("RFM cells")
        constraints = [models.UniqueConstraint(fields=["r", "f", "m"], name="rfmcell_unique")]

    def __str__(self) -> str:
        return f"R{self.r}F{self.f}M{self.m}"


class CampaignStat(models.Model):
    """Outcomes of one broadcast or journey send step, refreshed periodically (never per page view)."""

    kind = models.CharField(max_length=16)  # broadcast | journey_step
    campaign_id = models.BigIntegerField()
    label = models.CharField(max_length=160)
    sent_at = models.DateTimeField(null=True)  # first actual send
    recipients = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    converted_1 = models.PositiveIntegerField(default=0)
    converted_7 = models.PositiveIntegerField(default=0)
    converted_30 = models.PositiveIntegerField(default=0)
    repurchased_1 = models.PositiveIntegerField(default=0)
    repurchased_7 = models.PositiveIntegerField(default=0)
    repurchased_30 = models.PositiveIntegerField(default=0)
    referrals_1 = models.PositiveIntegerField(default=0)
    referrals_7 = models.PositiveIntegerField(default=0)
    referrals_30 = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField()

    class Meta:
        ordering = ["-sent_at"]
        verbose_name = _("campaign outcome")
        verbose_name_plural = _("campaign outcomes")
        constraints = [models.UniqueConstraint(fields=["kind", "campaign_id"], name="campaignstat_unique")]
        indexes = [models.Index(fields=["sent_at"], name="campaignstat_sent_at")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.campaign_id}"
