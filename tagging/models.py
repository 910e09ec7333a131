from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils.translation import gettext_lazy as _

from scrm.models import TimeStampedModel


class Dimension(models.TextChoices):
    """The five fixed dimensions of a customer profile (五维标签)."""

    SOURCE = "source", _("Source")
    BASIC = "basic", _("Basic")
    BEHAVIOUR = "behaviour", _("Behaviour")
    BUSINESS = "business", _("Business")
    PREDICTIVE = "predictive", _("Predictive")


class SyncStatus(models.TextChoices):
    LOCAL = "local", _("Ours alone")
    PENDING = "pending", _("Waiting to sync")
    SYNCED = "synced", _("In step with WeCom")
    ERROR = "error", _("Sync failed")
    REMOVED = "removed", _("Deleted in WeCom")


class TagGroup(TimeStampedModel):
    corp = models.ForeignKey("contacts.Corp", on_delete=models.CASCADE, related_name="tag_groups")
    dimension = models.CharField(_("dimension"), max_length=16, choices=Dimension.choices)
    name = models.CharField(_("name"), max_length=30)
    order = models.PositiveIntegerField(_("order"), default=0)
    wecom_group_id = models.CharField(_("WeCom group id"), max_length=64, blank=True)

    class Meta:
        ordering = ["dimension", "order", "id"]
        verbose_name = _("tag group")
        verbose_name_plural = _("tag groups")
        constraints = [
            models.UniqueConstraint(fields=["corp", "dimension", "name"], name="taggroup_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class Tag(TimeStampedModel):
    group = models.ForeignKey(TagGroup, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(_("name"), max_length=30)
    color = models.CharField(_("color"), max_length=7, default="#2f6fde")
    order = models.PositiveIntegerField(_("order"), default=0)
    # Tags that live in WeCom too carry WeCom's id; tags that are ours alone have none and sync_to_wecom off.
    wecom_tag_id = models.CharField(_("WeCom tag id"), max_length=64, blank=True, db_index=True)
    sync_to_wecom = models.BooleanField(_("sync to WeCom"), default=False)
    sync_status = models.CharField(_("sync status"), max_length=16, choices=SyncStatus.choices,
                                   default=SyncStatus.LOCAL)
    sync_error = models.CharField(_("sync error"), max_length=255, blank=True)

    class Meta:
        ordering = ["group", "order", "id"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        constraints = [models.UniqueConstraint(fields=["group", "name"], name="tag_unique_name_in_group")]

    def __str__(self) -> str:
        return self.name


class ContactTag(models.Model):
    """One tag on one contact, with who or what set it (provenance) and an optional expiry."""

    class Source(models.TextChoices):
        MANUAL = "manual", _("Set by a user")
        RULE = "rule", _("Tag rule")
        LIVECODE = "livecode", _("Live code")
        JOURNEY = "journey", _("Journey")
        WECOM = "wecom", _("WeCom client")
        IMPORT = "import", _("Import")

    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="tag_links")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="contact_links")
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    source_ref = models.CharField(_("source reference"), max_length=64, blank=True,
                                  help_text=_("Which rule, live code or journey set it."))
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("contact tag")
        verbose_name_plural = _("contact tags")
        constraints = [models.UniqueConstraint(fields=["contact", "tag"], name="contacttag_unique")]
        indexes = [
            models.Index(fields=["tag", "contact"], name="contacttag_by_tag"),
            models.Index(fields=["expires_at"], name="contacttag_expiring", condition=models.Q(expires_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id}:{self.tag_id}"


class ContactTagIndex(models.Model):
    """The sorted tag ids of one contact, in step with ContactTag (rewritten by every tag write).

    A GIN index (intarray ``gin__int_ops``) answers ``tag_ids @> {A,B}`` / ``&&`` for segment counts
    without touching the join table; bench/segments.py measures it against the join-table query.
    """

    contact = models.OneToOneField("contacts.Contact", primary_key=True, on_delete=models.CASCADE,
                                   related_name="tag_index")
    tag_ids = ArrayField(models.IntegerField(), default=list)

    class Meta:
        ordering = ["contact"]
        indexes = [GinIndex(fields=["tag_ids"], name="contacttagindex_gin", opclasses=["gin__int_ops"])]

    def __str__(self) -> str:
        return f"tags of contact {self.contact_id}"


class TagRule(TimeStampedModel):
    """Condition → tag. The rule adds its tag when the condition matches and removes only what it set."""

    name = models.CharField(_("name"), max_length=64)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="rules")
    condition = models.JSONField(_("condition"))
    is_active = models.BooleanField(_("active"), default=True)
    preset = models.CharField(_("ready-made rule"), max_length=32, blank=True)
    last_run_at = models.DateTimeField(_("last recompute"), null=True, blank=True)
    last_matched = models.PositiveIntegerField(_("matched at last recompute"), default=0)

    class Meta:
        ordering = ["id"]
        verbose_name = _("tag rule")
        verbose_name_plural = _("tag rules")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from tagging.rules import RuleError, parse_rule

        try:
            parse_rule(self.condition)
        except RuleError as exc:
            raise ValidationError({"condition": exc.message}) from exc


class Segment(TimeStampedModel):
    """A saved boolean expression over tags, profile facts and behaviour windows (用户分层 / 人群)."""

    name = models.CharField(_("name"), max_length=64)
    expression = models.JSONField(_("expression"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["-id"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")

    def __str__(self) -> str:
        return self.name


class BulkJob(TimeStampedModel):
    """A long job on the bulk queue (bulk tag/untag, CSV import) with progress and a rejected-rows report."""

    class Kind(models.TextChoices):
        TAG = "tag", _("Bulk tag")
        UNTAG = "untag", _("Bulk untag")
        IMPORT_CONTACTS = "import_contacts", _("Import contacts")
        IMPORT_ORDERS = "import_orders", _("Import orders")
        IMPORT_ENTITLEMENTS = "import_entitlements", _("Import entitlements")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    source_file = models.CharField(max_length=512, blank=True)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    report = models.TextField(blank=True, help_text=_("CSV of rejected rows: line, reason, raw row."))
    last_error = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("bulk job")
        verbose_name_plural = _("bulk jobs")

    @property
    def percent(self) -> int:
        return 100 if self.status == self.Status.DONE else int(100 * self.processed / self.total) if self.total else 0


class TagBitmap(models.Model):
    """The contact ids carrying one tag, as a serialized roaring bitmap (pyroaring), in step with ContactTag.

    Every tag write updates the row in the same transaction as the ContactTag change (row lock, then the
    writer's own delta), so the bitmap is never ahead of or behind the committed join table. ``version`` grows
    with every write; readers keep deserialized bitmaps in a per-process cache keyed by it (tagging/bitmaps.py).
    ContactTag stays the source of truth: ``manage.py tag_index_rebuild`` recomputes bitmaps from it.
    """

    tag = models.OneToOneField(Tag, primary_key=True, on_delete=models.CASCADE, related_name="bitmap")
    bitmap = models.BinaryField(default=bytes)
    cardinality = models.PositiveIntegerField(default=0)
    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tag"]

    def __str__(self) -> str:
        return f"bitmap of tag {self.tag_id} ({self.cardinality})"


class StaffScopeVersion(models.Model):
    """A counter per staff member, bumped by a Postgres trigger on every change of contacts_followrelation.

    Guides' segment counts intersect tag bitmaps with the bitmap of the customers the guide actively follows;
    that bitmap is rebuilt from the (staff, contact) partial index only when this version moved, whichever
    code path (callback, full sync, merge, raw SQL) changed the relations.
    """

    staff = models.OneToOneField("contacts.Staff", primary_key=True, on_delete=models.CASCADE, related_name="+")
    version = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["staff"]

    def __str__(self) -> str:
        return f"staff {self.staff_id} v{self.version}"


class SegmentWatch(models.Model):
    """A segment's membership as last seen by one watcher (a journey family's "entered a segment" trigger), kept
    as a serialized roaring bitmap so the next look can tell who entered since (members now − members then)."""

    key = models.CharField(max_length=64, unique=True)
    members = models.BinaryField(default=bytes)
    taken_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("segment watch")
        verbose_name_plural = _("segment watches")

    def __str__(self) -> str:
        return self.key
