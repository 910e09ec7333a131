"""Journeys (message lines and scenario journeys), their steps and enrollments, message templates,
broadcasts, and the outbox of what we asked staff to send.

The schedule lives here, in ``Enrollment.next_run_at``, indexed through the narrow table ``EnrollmentDue`` (kept by
a database trigger; see that model); the broker only ever carries "do this group now". Statuses are declared as data (``OUTBOUND_TRANSITIONS``) and moved by
``journeys.sender`` with conditional updates.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from scrm.models import TimeStampedModel


class Priority(models.TextChoices):
    MARKETING = "marketing", _("Marketing (counts against the frequency cap)")
    SERVICE = "service", _("Service reminder (passes the cap and opt-out)")


class Channel(models.TextChoices):
    SINGLE = "single", _("1:1 through the customer's staff member")
    GROUP = "group", _("To customer groups")
    STAFF_REMINDER = "staff_reminder", _("Staff reminder only (manual follow-up)")


class MessageTemplate(TimeStampedModel):
    """Text with ``{{ field }}`` placeholders (see journeys/messages.py FIELDS) and optional attachments.

    A mini-program card needs a cover that WeCom takes only as temporary media (``pic_media_id``, valid 3 days): the
    operator uploads the image (PNG/JPEG, checked like welcome images: journeys/covers.py), it is kept here, and the
    sender uploads it to WeCom right before creating a task, reusing the cached ``cover_media_id`` until less than an
    hour of it is left (scrm/media.py). The attachment names the cover by its SHA-256 (``cover_sha``, set by
    ``clean``), so the rendered content and its hash never carry a media id. A mini-program template without a cover
    (typed in before covers were uploaded) is invalid until one is uploaded.
    """

    class Kind(models.TextChoices):
        TEXT = "text", _("Text")
        IMAGE = "image", _("Image")
        LINK = "link", _("Link")
        MINIPROGRAM = "miniprogram", _("Mini-program")

    name = models.CharField(_("name"), max_length=64)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(_("text"), help_text=_("Placeholders: {{ name }}, {{ staff_name }}, "
                                                    "{{ coupon_name }}, {{ coupon_expires }}, {{ today }}."))
    attachment = models.JSONField(_("attachment"), default=dict, blank=True,
                                  help_text=_("For image: pic_url; link: title, url, picurl, desc; "
                                              "mini-program: title, appid, page (upload the cover image below; "
                                              "cover_sha is filled in from it)."))
    cover = models.BinaryField(_("mini-program cover"), null=True, blank=True, editable=False)
    cover_type = models.CharField(max_length=32, blank=True, editable=False)
    cover_sha = models.CharField(max_length=64, blank=True, editable=False)
    cover_name = models.CharField(_("cover file name"), max_length=100, blank=True, editable=False)
    cover_media_id = models.CharField(max_length=128, blank=True, editable=False)
    cover_media_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from journeys.messages import TemplateError, template_check

        self.attachment_sync()
        try:
            template_check(text=self.text, kind=self.kind, attachment=self.attachment)
        except TemplateError as exc:
            raise ValidationError({exc.field: str(exc)}) from exc

    def attachment_sync(self) -> None:
        """A mini-program attachment names the uploaded cover by its SHA-256 (``cover_sha``); whatever was typed in
        under that key or as ``pic_media_id`` (a media id expires after 3 days) is replaced."""
        from journeys.messages import COVER_KEY

        if not isinstance(self.attachment, dict):
            return
        attachment = {k: v for k, v in self.attachment.items() if k != COVER_KEY}
        if self.kind == self.Kind.MINIPROGRAM:
            attachment.pop("pic_media_id", None)
            if self.cover_sha:
                attachment[COVER_KEY] = self.cover_sha
        self.attachment = attachment

    def save(self, *args, **kwargs):
        # A template referencing an unknown field is refused at save time, from the admin and from code.
        self.clean()
        super().save(*args, **kwargs)


class Journey(TimeStampedModel):
    class Kind(models.TextChoices):
        TIMELINE = "timeline", _("Message line (T+0/T+3/T+7)")
        SCENARIO = "scenario", _("Scenario journey")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        LIVE = "live", _("Live")
        PAUSED = "paused", _("Paused")
        RETIRED = "retired", _("Retired (replaced by a newer version)")

    class Trigger(models.TextChoices):
        MANUAL = "manual", _("Manual / broadcast only")
        CONTACT_ADDED = "contact_added", _("Contact added (any or through given live codes)")
        TAG_ADDED = "tag_added", _("Tag added")
        TAG_REMOVED = "tag_removed", _("Tag removed")
        SEGMENT_ENTERED = "segment_entered", _("Entered a segment")
        ORDER_PAID = "order_paid", _("Order paid (first or any)")
        ENTITLEMENT_EXPIRING = "entitlement_expiring", _("Entitlement expiring in N days")
        ENTITLEMENT_EXPIRED = "entitlement_expired", _("Entitlement expired")
        RENEWAL_DUE = "renewal_due", _("Membership renewal due")
        INACTIVE = "inactive", _("Inactive for N days")
        CUSTOM_EVENT = "custom_event", _("Custom event posted to the API")

    corp = models.ForeignKey("contacts.Corp", on_delete=models.CASCADE, related_name="journeys")
    name = models.CharField(_("name"), max_length=64)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.TIMELINE)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.DRAFT)
    trigger = models.CharField(_("trigger"), max_length=32, choices=Trigger.choices, default=Trigger.CONTACT_ADDED)
    trigger_config = models.JSONField(
        _("trigger settings"), default=dict, blank=True,
        help_text=_('e.g. {"states": ["poster_1"]}, {"tag_id": 3}, {"segment_id": 2}, {"first_only": true}, '
                    '{"days": 3, "kind": "coupon"}, {"type": "clicked_offer"}'))
    goal_event = models.CharField(_("goal event"), max_length=64, blank=True,
                                  help_text=_("An event kind (e.g. ordered) that ends the journey as a conversion."))
    priority = models.CharField(_("priority"), max_length=16, choices=Priority.choices, default=Priority.MARKETING)
    holdout_percent = models.PositiveSmallIntegerField(_("holdout share (%)"), default=0,
                                                       help_text=_("Enter but receive nothing (control group)."))
    reenter = models.BooleanField(_("may re-enter"), default=False)
    version = models.PositiveIntegerField(_("version"), default=1)
    family = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="versions",
                               verbose_name=_("first version"))
    preset = models.CharField(_("ready-made template"), max_length=32, blank=True)
    validated_at = models.DateTimeField(_("validated at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("journey")
        verbose_name_plural = _("journeys")
        indexes = [models.Index(fields=["status", "trigger"], name="journey_live_trigger")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class JourneyStep(models.Model):
    class Kind(models.TextChoices):
        WAIT = "wait", _("Wait")
        SEND = "send", _("Send a message")
        TAG = "tag", _("Add / remove tags")
        BRANCH = "branch", _("Branch on a condition")
        GOAL = "goal", _("Goal check")
        EXIT = "exit", _("Exit")

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(_("position"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    label = models.CharField(_("label"), max_length=64, blank=True)
    template = models.ForeignKey(MessageTemplate, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="steps", verbose_name=_("message template"))
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices, default=Channel.SINGLE)
    config = models.JSONField(
        _("settings"), default=dict, blank=True,
        help_text=_('wait: {"minutes": 30} | {"day": 3, "at": "10:00"} | {"at": "10:00"} | '
                    '{"weekday": 5, "at": "19:30"}; send: {"window": ["19:00", "22:00"], "on_hold": "retry"}; '
                    'tag: {"add": [1], "remove": [2]}; branch: {"condition": {...}, "else": 5}; goal: {"event": '
                    '"ordered"}'))

    class Meta:
        ordering = ["journey", "position"]
        verbose_name = _("journey step")
        verbose_name_plural = _("journey steps")
        constraints = [models.UniqueConstraint(fields=["journey", "position"], name="journeystep_unique_position")]

    def __str__(self) -> str:
        return f"{self.position}. {self.get_kind_display()} {self.label}".strip()


class Enrollment(models.Model):
    """One contact inside one journey version. ``next_run_at`` is the whole schedule."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DONE = "done", _("Finished")
        CONVERTED = "converted", _("Converted (goal reached)")
        EXITED = "exited", _("Exited")

    # No single-column FK index on journey: (journey, contact, entry_key) covers it. No index covers ``status``,
    # ``next_run_at`` or any other column a step changes, so advancing or finishing an enrollment is a HOT update
    # (no index entry written; the table keeps free space on each page for it: fillfactor 70, migration 0004).
    # What is due is indexed in ``EnrollmentDue``.
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="enrollments", db_index=False)
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="enrollments",
                                db_index=False)
    entry_key = models.CharField(_("entry key"), max_length=96, default="",
                                 help_text=_("What let the contact in; one enrollment per key."))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    position = models.PositiveIntegerField(_("current step"), default=1)
    seq = models.PositiveIntegerField(default=0, help_text=_("Steps run so far (part of idempotency keys)."))
    next_run_at = models.DateTimeField(_("next run at"), null=True, blank=True)
    holdout = models.BooleanField(_("control group"), default=False)
    entered_at = models.DateTimeField(_("entered at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    exit_reason = models.CharField(_("exit reason"), max_length=32, blank=True)
    hold_count = models.PositiveSmallIntegerField(default=0)
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("enrollment")
        verbose_name_plural = _("enrollments")
        constraints = [
            models.UniqueConstraint(fields=["journey", "contact", "entry_key"], name="enrollment_unique_entry"),
        ]
        indexes = [models.Index(fields=["contact"], name="enrollment_contact")]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.journey_id}"


class EnrollmentDue(models.Model):
    """The due index: one row per active enrollment that has a ``next_run_at``, with a copy of it.

    Derived data, like an index, and written only by the database: statement-level triggers on
    ``journeys_enrollment`` (migration 0004) insert, move and delete these rows in the statement that changes an
    enrollment, whichever code path writes it (ORM, bulk SQL, admin). Nothing in Python writes here.

    Why a table and not a partial index on the enrollment: an index over ``status``/``next_run_at`` makes every
    step finish a non-HOT update, which writes a new index entry into every index of the enrollment table at a
    random place. Here finishing deletes one narrow row and the enrollment update stays on its page.
    The sweeper claims through this table and locks the enrollment row (``journeys/fastpath.claim``), re-checking
    the enrollment's own ``status`` and ``next_run_at`` under the lock.
    """

    enrollment = models.OneToOneField(Enrollment, on_delete=models.DO_NOTHING, primary_key=True,
                                      db_constraint=False, related_name="+")
    next_run_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["next_run_at"], name="enrollment_due")]

    def __str__(self) -> str:
        return f"{self.enrollment_id} due {self.next_run_at}"


class StepRun(models.Model):
    """Audit: what each step did for one enrollment. The key makes a re-run of the same step a no-op."""

    # Append-only audit: no FK triggers on the hot insert path (see OutboundMessage).
    enrollment = models.ForeignKey(Enrollment, on_delete=models.DO_NOTHING, related_name="runs", db_constraint=False)
    step = models.ForeignKey(JourneyStep, null=True, on_delete=models.DO_NOTHING, related_name="runs",
                             db_constraint=False, db_index=False)
    journey_id_copy = models.BigIntegerField(db_index=True)
    outcome = models.CharField(_("outcome"), max_length=24)
    detail = models.CharField(_("detail"), max_length=255, blank=True)
    at = models.DateTimeField(_("at"))
    idempotency_key = models.CharField(max_length=96, unique=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("step run")
        verbose_name_plural = _("step runs")

    def __str__(self) -> str:
        return f"{self.outcome} @ {self.at:%Y-%m-%d %H:%M}"


class Broadcast(TimeStampedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        DONE = "done", _("Handed to staff")
        CANCELLED = "cancelled", _("Cancelled")

    corp = models.ForeignKey("contacts.Corp", on_delete=models.CASCADE, related_name="broadcasts")
    name = models.CharField(_("name"), max_length=64)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices, default=Channel.SINGLE)
    segment = models.ForeignKey("tagging.Segment", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+", verbose_name=_("segment"))
    chat_ids = models.JSONField(_("customer groups"), default=list, blank=True)
    template = models.ForeignKey(MessageTemplate, on_delete=models.PROTECT, related_name="+",
                                 verbose_name=_("message template"))
    priority = models.CharField(_("priority"), max_length=16, choices=Priority.choices, default=Priority.MARKETING)
    send_at = models.DateTimeField(_("send at"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.DRAFT)
    counts = models.JSONField(_("counts"), default=dict, blank=True)
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-id"]
        verbose_name = _("broadcast")
        verbose_name_plural = _("broadcasts")
        indexes = [models.Index(fields=["send_at"], name="broadcast_due", condition=Q(status="scheduled"))]

    def __str__(self) -> str:
        return self.name


class MassSendTask(models.Model):
    """One WeCom confirm-task (``add_msg_template``) for one staff member and one content."""

    class Status(models.TextChoices):
        CREATING = "creating", _("Creating")
        CREATED = "created", _("Waiting for staff to confirm")
        CONFIRMED = "confirmed", _("Confirmed by staff")
        EXPIRED = "expired", _("Not sent by staff")
        FAILED = "failed", _("Failed")
        UNKNOWN = "unknown", _("Unknown outcome")

    staff = models.ForeignKey("contacts.Staff", on_delete=models.CASCADE, related_name="mass_tasks")
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    content_hash = models.CharField(max_length=64)
    msgid = models.CharField(_("WeCom msgid"), max_length=64, blank=True, db_index=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.CREATING)
    recipients = models.PositiveIntegerField(_("recipients"), default=0)
    created_at = models.DateTimeField(_("created at"))
    reminded_at = models.DateTimeField(_("reminded at"), null=True, blank=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("mass-send task")
        verbose_name_plural = _("mass-send tasks")
        indexes = [models.Index(fields=["next_poll_at"], name="masstask_poll", condition=Q(status="created"))]

    def __str__(self) -> str:
        return self.msgid or f"task {self.pk}"


class OutboundMessage(models.Model):
    """The outbox: one row per recipient per send, unique by idempotency key."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Creating the WeCom task")
        QUEUED = "queued", _("Waiting for staff to send")
        SENT = "sent", _("Sent")
        NOT_SENT = "not_sent", _("Not sent by staff")
        NOT_FRIEND = "not_friend", _("No longer a customer")
        OVER_QUOTA = "over_quota", _("Over the customer's receive quota")
        FAILED = "failed", _("Failed")
        UNKNOWN = "unknown", _("Unknown outcome (not re-sent automatically)")

    # No FK constraint on the hot insert path (bench/journeys.py): an RI check per row and per reference locks the
    # referenced row (FOR KEY SHARE), and two sweepers locking the same 200 staff rows pile up multixacts. Audit
    # references (corp, journey, step, enrollment) outlive edits; contact and staff are written from rows the
    # sweeper read in the same transaction, Django still cascades deletes, and the sender settles rows whose
    # contact or staff member vanished in a race as FAILED (journeys/sender.py).
    corp = models.ForeignKey("contacts.Corp", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False,
                             db_index=False)
    idempotency_key = models.CharField(max_length=96)  # unique: outbound_unique_key (no extra LIKE index)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    priority = models.CharField(_("priority"), max_length=16, choices=Priority.choices)
    contact = models.ForeignKey("contacts.Contact", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="outbound_messages", db_index=False,  # outbound_contact_time covers it
                                db_constraint=False)
    chat_id = models.CharField(_("chat id"), max_length=64, blank=True)
    staff = models.ForeignKey("contacts.Staff", on_delete=models.CASCADE, related_name="outbound_messages",
                              db_constraint=False, db_index=False)  # outbound_pending serves the sender
    content = models.JSONField(_("content"))
    content_hash = models.CharField(max_length=64)
    journey = models.ForeignKey(Journey, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
                                db_constraint=False)
    step = models.ForeignKey(JourneyStep, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
                             db_constraint=False, db_index=False)
    enrollment = models.ForeignKey(Enrollment, null=True, blank=True, on_delete=models.DO_NOTHING,
                                   related_name="messages", db_constraint=False,
                                   db_index=False)  # read with the contact: outbound_contact_time
    broadcast = models.ForeignKey(Broadcast, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="messages", db_index=False)  # outbound_broadcast (partial)
    task = models.ForeignKey(MassSendTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages",
                             db_index=False)  # outbound_task covers it
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("outbound message")
        verbose_name_plural = _("outbound messages")
        indexes = [
            models.Index(fields=["staff", "content_hash", "next_attempt_at"], name="outbound_pending",
                         condition=Q(status="pending")),
            models.Index(fields=["contact", "created_at"], name="outbound_contact_time"),
            # Partial: a journey step's row is inserted without a task or a broadcast and costs these nothing.
            models.Index(fields=["task", "contact"], name="outbound_task_set", condition=Q(task__isnull=False)),
            models.Index(fields=["broadcast"], name="outbound_broadcast", condition=Q(broadcast__isnull=False)),
        ]
        constraints = [models.UniqueConstraint(fields=["idempotency_key"], name="outbound_unique_key")]

    def __str__(self) -> str:
        return f"{self.channel} → {self.contact_id or self.chat_id} ({self.status})"


# Status machine as data: which moves the sender and poller may make (anything else is a bug).
S = OutboundMessage.Status
OUTBOUND_TRANSITIONS: dict[str, set[str]] = {
    S.PENDING: {S.SENDING, S.FAILED},
    S.SENDING: {S.QUEUED, S.PENDING, S.FAILED, S.UNKNOWN, S.SENT},
    S.QUEUED: {S.SENT, S.NOT_SENT, S.NOT_FRIEND, S.OVER_QUOTA},
    S.UNKNOWN: {S.PENDING},  # only the admin "resend" action
    S.FAILED: {S.PENDING},  # only the admin "resend" action
    S.SENT: set(), S.NOT_SENT: set(), S.NOT_FRIEND: set(), S.OVER_QUOTA: set(),
}
del S


class ContactQuota(models.Model):
    """WeCom's per-customer receive quota as last seen: over it until ``blocked_until``."""

    contact = models.OneToOneField("contacts.Contact", primary_key=True, on_delete=models.CASCADE,
                                   related_name="receive_quota")
    blocked_until = models.DateTimeField(_("over the receive quota until"))

    class Meta:
        ordering = ["contact"]
        verbose_name = _("receive quota")
        verbose_name_plural = _("receive quotas")

    def __str__(self) -> str:
        return f"{self.contact_id} until {self.blocked_until:%Y-%m-%d}"
