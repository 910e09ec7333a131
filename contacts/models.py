from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from contacts.timezones import validate_time_zone
from scrm.models import TimeStampedModel


class Corp(TimeStampedModel):
    """A WeCom corp. Secrets are never stored here: they come from the environment."""

    corp_id = models.CharField(_("corp id"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=128, blank=True)
    last_synced_at = models.DateTimeField(_("last full sync"), null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("corp")
        verbose_name_plural = _("corps")

    def __str__(self) -> str:
        return self.name or self.corp_id


class Staff(TimeStampedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DISABLED = "disabled", _("Disabled")
        LEFT = "left", _("Left")

    corp = models.ForeignKey(Corp, on_delete=models.CASCADE, related_name="staff")
    userid = models.CharField(_("userid"), max_length=64)
    name = models.CharField(_("name"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    customer_contact_enabled = models.BooleanField(_("customer contact enabled"), default=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("staff member")
        verbose_name_plural = _("staff")
        constraints = [models.UniqueConstraint(fields=["corp", "userid"], name="staff_unique_userid")]

    def __str__(self) -> str:
        return f"{self.name} ({self.userid})" if self.name else self.userid


class Contact(TimeStampedModel):
    class Type(models.IntegerChoices):
        WECHAT = 1, _("WeChat user")
        WECOM = 2, _("WeCom user")

    class Gender(models.IntegerChoices):
        UNKNOWN = 0, _("Unknown")
        MALE = 1, _("Male")
        FEMALE = 2, _("Female")

    corp = models.ForeignKey(Corp, on_delete=models.CASCADE, related_name="contacts")
    external_userid = models.CharField(_("external userid"), max_length=64)
    name = models.CharField(_("name"), max_length=128, blank=True)
    avatar = models.URLField(_("avatar"), max_length=512, blank=True)
    type = models.PositiveSmallIntegerField(_("type"), choices=Type.choices, default=Type.WECHAT)
    gender = models.PositiveSmallIntegerField(_("gender"), choices=Gender.choices, default=Gender.UNKNOWN)
    unionid = models.CharField(_("unionid"), max_length=64, blank=True, db_index=True)
    position = models.CharField(_("position"), max_length=128, blank=True)
    corp_name = models.CharField(_("company"), max_length=128, blank=True)
    corp_full_name = models.CharField(_("company full name"), max_length=256, blank=True)
    first_added_at = models.DateTimeField(_("first added"), null=True, blank=True)
    # Where the customer lives, for quiet hours and local send times; blank: the corp's zone (CORP_TIME_ZONE).
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True, default="", db_default="",
                                 validators=[validate_time_zone],
                                 help_text=_("An IANA name such as Asia/Tokyo; blank means the corp's time zone."))
    # Denormalised: how many staff members this contact is a customer of right now.
    active_relations = models.PositiveIntegerField(_("active relations"), default=0)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            models.UniqueConstraint(fields=["corp", "external_userid"], name="contact_unique_external_userid")
        ]
        indexes = [
            models.Index(fields=["corp", "name"], name="contact_corp_name"),
            # Few customers have a zone of their own: the sweep asks "any at all?" once per tick (an index probe).
            models.Index(fields=["time_zone"], name="contact_own_zone", condition=~Q(time_zone="")),
        ]

    def __str__(self) -> str:
        return self.name or self.external_userid


class FollowRelation(TimeStampedModel):
    """One contact ↔ one staff member, with how and when they were connected (and disconnected)."""

    # No single-column contact index: relation_unique_pair (contact, staff) leads with it.
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="relations", db_index=False)
    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="relations")
    remark = models.CharField(_("remark"), max_length=64, blank=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    remark_corp_name = models.CharField(_("remark company"), max_length=128, blank=True)
    remark_mobiles = models.JSONField(_("remark phone numbers"), default=list, blank=True)
    add_way = models.PositiveSmallIntegerField(_("add way"), default=0)
    oper_userid = models.CharField(_("operator"), max_length=64, blank=True)
    state = models.CharField(_("channel state"), max_length=64, blank=True, db_index=True)
    wecom_tags = models.JSONField(_("WeCom tags"), default=list, blank=True)
    added_at = models.DateTimeField(_("added at"), null=True, blank=True)
    deleted_by_customer_at = models.DateTimeField(_("deleted by customer at"), null=True, blank=True)
    deleted_by_staff_at = models.DateTimeField(_("deleted by staff at"), null=True, blank=True)
    delete_source = models.CharField(_("delete source"), max_length=32, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # Event time of the last add/delete applied; older events arriving late do not undo newer ones.
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("follow relation")
        verbose_name_plural = _("follow relations")
        constraints = [models.UniqueConstraint(fields=["contact", "staff"], name="relation_unique_pair")]
        indexes = [
            models.Index(fields=["staff", "contact"], name="relation_active_by_staff", condition=Q(is_active=True)),
            # "The customer's staff member" (latest active relation), read for every send without a sort.
            models.Index(F("contact"), F("added_at").desc(nulls_last=True), F("id").desc(),
                         name="relation_latest_active", condition=Q(is_active=True)),
        ]

    def __str__(self) -> str:
        return f"{self.contact} ↔ {self.staff}"


class GroupChat(TimeStampedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DISMISSED = "dismissed", _("Dismissed")

    corp = models.ForeignKey(Corp, on_delete=models.CASCADE, related_name="group_chats")
    chat_id = models.CharField(_("chat id"), max_length=64)
    name = models.CharField(_("name"), max_length=128, blank=True)
    owner = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_chats")
    owner_userid = models.CharField(_("owner userid"), max_length=64, blank=True)
    notice = models.TextField(_("notice"), blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    wecom_created_at = models.DateTimeField(_("created in WeCom"), null=True, blank=True)
    dismissed_at = models.DateTimeField(_("dismissed at"), null=True, blank=True)
    member_version = models.CharField(max_length=64, blank=True)
    member_count = models.PositiveIntegerField(_("members"), default=0)
    synced_at = models.DateTimeField(_("last read from WeCom"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("customer group")
        verbose_name_plural = _("customer groups")
        constraints = [models.UniqueConstraint(fields=["corp", "chat_id"], name="groupchat_unique_chat_id")]

    def __str__(self) -> str:
        return self.name or self.chat_id


class GroupMember(TimeStampedModel):
    class Type(models.IntegerChoices):
        STAFF = 1, _("Staff member")
        EXTERNAL = 2, _("External contact")

    chat = models.ForeignKey(GroupChat, on_delete=models.CASCADE, related_name="members")
    member_id = models.CharField(_("member id"), max_length=64)
    member_type = models.PositiveSmallIntegerField(_("member type"), choices=Type.choices)
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="group_memberships")
    staff = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="group_memberships")
    name = models.CharField(_("name"), max_length=128, blank=True)
    group_nickname = models.CharField(_("group nickname"), max_length=128, blank=True)
    unionid = models.CharField(max_length=64, blank=True)
    joined_at = models.DateTimeField(_("joined at"), null=True, blank=True)
    join_scene = models.PositiveSmallIntegerField(_("join scene"), null=True, blank=True)
    invitor_userid = models.CharField(max_length=64, blank=True)
    state = models.CharField(_("channel state"), max_length=64, blank=True)
    left_at = models.DateTimeField(_("left at"), null=True, blank=True)
    quit_scene = models.PositiveSmallIntegerField(_("quit scene"), null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("group member")
        verbose_name_plural = _("group members")
        constraints = [models.UniqueConstraint(fields=["chat", "member_id"], name="groupmember_unique")]
        indexes = [models.Index(fields=["contact"], name="groupmember_contact")]

    @property
    def is_present(self) -> bool:
        return self.left_at is None


class ContactEvent(models.Model):
    """Append-only log of what happened to a contact (or a group). Never updated, never deleted."""

    class Kind(models.TextChoices):
        ADDED = "added", _("Added a staff member")
        HALF_ADDED = "half_added", _("Added, awaiting staff confirmation")
        DELETED_BY_CUSTOMER = "deleted_by_customer", _("Deleted the staff member")
        DELETED_BY_STAFF = "deleted_by_staff", _("Deleted by the staff member")
        EDITED = "edited", _("Remark or tags edited")
        TRANSFER_FAILED = "transfer_failed", _("Transfer failed")
        JOINED_GROUP = "joined_group", _("Joined a group")
        LEFT_GROUP = "left_group", _("Left a group")
        GROUP_CREATED = "group_created", _("Group created")
        GROUP_DISMISSED = "group_dismissed", _("Group dismissed")
        GROUP_CHANGED = "group_changed", _("Group changed")
        ORDERED = "ordered", _("Placed an order")

    corp = models.ForeignKey(Corp, on_delete=models.CASCADE, related_name="events")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    staff = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    chat = models.ForeignKey(GroupChat, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    data = models.JSONField(default=dict, blank=True)
    # Same source event → same key: replays and duplicate deliveries add nothing.
    dedup_key = models.CharField(max_length=128, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("contact event")
        verbose_name_plural = _("contact events")
        indexes = [
            models.Index(fields=["contact", "-occurred_at"], name="event_contact_time"),
            models.Index(fields=["corp", "kind", "-occurred_at"], name="event_kind_time"),
            models.Index(fields=["chat", "-occurred_at"], name="event_chat_time"),
            models.Index(fields=["-occurred_at", "-id"], name="event_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.occurred_at:%Y-%m-%d %H:%M}"




# --- business facts and the derived profile (tagging issue) ----------------------------------------------------------
class Order(TimeStampedModel):
    """A purchase, created through the API or a CSV import. ``external_id`` makes re-sends idempotent."""

    corp = models.ForeignKey(Corp, on_delete=models.CASCADE, related_name="orders")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="orders")
    external_id = models.CharField(_("external id"), max_length=64)
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    items = models.JSONField(_("items"), default=list, blank=True)
    paid_at = models.DateTimeField(_("paid at"))

    class Meta:
        ordering = ["-paid_at", "-id"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        constraints = [models.UniqueConstraint(fields=["corp", "external_id"], name="order_unique_external_id")]
        indexes = [models.Index(fields=["contact", "-paid_at"], name="order_contact_paid")]

    def __str__(self) -> str:
        return self.external_id


class Entitlement(TimeStampedModel):
    """A coupon, course or membership a contact holds, usually with an expiry."""

    class Kind(models.TextChoices):
        COUPON = "coupon", _("Coupon")
        COURSE = "course", _("Course")
        MEMBERSHIP = "membership", _("Membership")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        USED = "used", _("Used")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", _("Cancelled")

    corp = models.ForeignKey(Corp, on_delete=models.CASCADE, related_name="entitlements")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="entitlements")
    external_id = models.CharField(_("external id"), max_length=64)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=128, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("entitlement")
        verbose_name_plural = _("entitlements")
        constraints = [
            models.UniqueConstraint(fields=["corp", "external_id"], name="entitlement_unique_external_id")
        ]
        indexes = [models.Index(fields=["contact", "kind"], name="entitlement_contact_kind")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.external_id}"


class ContactFacts(models.Model):
    """Derived facts about one contact, kept fresh incrementally by contacts.services (never on read).

    One row per contact that has any fact; a missing row means "no orders, never active".
    """

    contact = models.OneToOneField(Contact, primary_key=True, on_delete=models.CASCADE, related_name="facts")
    city = models.CharField(_("city"), max_length=64, blank=True)
    age_band = models.CharField(_("age band"), max_length=16, blank=True)
    occupation = models.CharField(_("occupation"), max_length=64, blank=True)
    order_count = models.PositiveIntegerField(_("orders"), default=0)
    total_spent = models.DecimalField(_("total spent"), max_digits=14, decimal_places=2, default=0)
    avg_order_value = models.DecimalField(_("average order value"), max_digits=12, decimal_places=2, default=0)
    first_purchase_at = models.DateTimeField(_("first purchase"), null=True, blank=True)
    last_purchase_at = models.DateTimeField(_("last purchase"), null=True, blank=True)
    last_active_at = models.DateTimeField(_("last active"), null=True, blank=True)
    # RFM scores 1–5 (5 best), recomputed by a nightly sweeper over quantiles of all buyers.
    rfm_r = models.PositiveSmallIntegerField(default=0)
    rfm_f = models.PositiveSmallIntegerField(default=0)
    rfm_m = models.PositiveSmallIntegerField(default=0)
    # Predictive scores 0–1 (predictive app, nightly): NULL while the contact has not been scored.
    churn_risk = models.FloatField(_("churn risk"), null=True, blank=True)
    purchase_propensity = models.FloatField(_("purchase propensity"), null=True, blank=True)
    scored_at = models.DateTimeField(_("scored at"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["contact"]
        verbose_name = _("contact facts")
        verbose_name_plural = _("contact facts")
        indexes = [
            models.Index(fields=["total_spent"], name="facts_total_spent"),
            models.Index(fields=["last_purchase_at"], name="facts_last_purchase"),
        ]

    def __str__(self) -> str:
        return f"facts of {self.contact_id}"
