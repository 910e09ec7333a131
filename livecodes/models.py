"""Live codes (活码): one permanent URL/QR routing scanners to staff members or to a pool of groups.

The scan itself never writes here: routing state lives in Redis (``livecodes.hotpath``) and the scan log
and daily figures are flushed in batches (``livecodes.services.scans_flush``).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from scrm.models import TimeStampedModel

POOL_MAX = 200
STATE_MAX = 30
IMAGE_QR_DEFAULT_CAP = 200
IMAGE_QR_DEFAULT_DAYS = 7


class Campaign(TimeStampedModel):
    """Codes grouped so that dedup holds across all of them (a scanner keeps one target per campaign)."""

    corp = models.ForeignKey("contacts.Corp", on_delete=models.CASCADE, related_name="livecode_campaigns")
    name = models.CharField(_("name"), max_length=64)

    class Meta:
        ordering = ["id"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")

    def __str__(self) -> str:
        return self.name


class LiveCode(TimeStampedModel):
    class Kind(models.TextChoices):
        STAFF = "staff", _("Staff code")
        GROUP = "group", _("Group code")
        GROUPED = "grouped", _("Grouped code")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DISABLED = "disabled", _("Disabled")

    class Mode(models.TextChoices):
        FILL = "fill", _("Fill in order")
        ROUND_ROBIN = "round_robin", _("Round robin")
        WEIGHTED = "weighted", _("Weighted random")
        LOCATION = "location", _("By location")

    corp = models.ForeignKey("contacts.Corp", on_delete=models.CASCADE, related_name="livecodes")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="livecodes", verbose_name=_("owner"))
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="codes", verbose_name=_("campaign"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=64)
    slug = models.SlugField(_("slug"), max_length=32, unique=True)
    state = models.CharField(_("channel state"), max_length=STATE_MAX, unique=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    mode = models.CharField(_("rotation"), max_length=16, choices=Mode.choices, default=Mode.FILL)
    title = models.CharField(_("page title"), max_length=64, blank=True)
    description = models.CharField(_("page description"), max_length=300, blank=True)
    banner = models.BinaryField(_("banner image"), null=True, blank=True, editable=False)
    banner_type = models.CharField(max_length=32, blank=True)
    skip_verify = models.BooleanField(_("skip verification"), default=True)
    auto_remark = models.CharField(_("auto remark"), max_length=20, blank=True)
    tags = models.ManyToManyField("tagging.Tag", blank=True, related_name="+", verbose_name=_("tags on add"))
    welcome_text = models.TextField(_("welcome message"), blank=True,
                                    help_text=_("%NICKNAME% is replaced by the customer's name."))
    welcome_attachments = models.JSONField(_("welcome attachments"), default=list, blank=True)
    welcome_group_code = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                           related_name="+", verbose_name=_("invite to group code"))
    fallback = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 verbose_name=_("fallback staff code"))
    low_capacity = models.PositiveIntegerField(_("alert below capacity"), default=50)
    # Logo and colours of the permanent QR.
    qr_fg = models.CharField(_("QR colour"), max_length=7, default="#000000")
    qr_bg = models.CharField(_("QR background"), max_length=7, default="#ffffff")
    qr_logo = models.BinaryField(null=True, blank=True, editable=False)
    publish_error = models.TextField(_("last publishing error"), blank=True)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("live code")
        verbose_name_plural = _("live codes")

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class LiveCodeOption(TimeStampedModel):
    """A choice on a grouped code's landing page (city, interest, level…): its own pool, its own tag."""

    code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="options")
    label = models.CharField(_("label"), max_length=32)
    tag = models.ForeignKey("tagging.Tag", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                            verbose_name=_("tag"))
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("choice")
        verbose_name_plural = _("choices")

    def __str__(self) -> str:
        return self.label


class LiveCodeTarget(TimeStampedModel):
    """One pool member: a staff member (contact way), a WeCom group (join way) or an uploaded group QR."""

    class Kind(models.TextChoices):
        STAFF = "staff", _("Staff member")
        WECOM_GROUP = "wecom_group", _("WeCom group")
        IMAGE = "image", _("Group QR image")

    code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="targets")
    option = models.ForeignKey(LiveCodeOption, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="targets", verbose_name=_("choice"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    label = models.CharField(_("label"), max_length=64, blank=True)
    position = models.PositiveIntegerField(_("order"), default=0)
    enabled = models.BooleanField(_("enabled"), default=True)
    weight = models.PositiveIntegerField(_("weight"), default=1)
    region = models.CharField(_("region"), max_length=64, blank=True,
                              help_text=_("Province or city names, comma separated."))
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    # staff member
    staff = models.ForeignKey("contacts.Staff", null=True, blank=True, on_delete=models.CASCADE,
                              related_name="+", verbose_name=_("staff member"))
    is_backup = models.BooleanField(_("backup"), default=False)
    daily_cap = models.PositiveIntegerField(_("daily cap"), null=True, blank=True)
    schedule = models.JSONField(_("schedule"), default=dict, blank=True)
    contact_way_id = models.CharField(max_length=64, blank=True)
    wecom_qr_url = models.URLField(max_length=512, blank=True)
    # WeCom group
    chat = models.ForeignKey("contacts.GroupChat", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="+", verbose_name=_("group"))
    # uploaded group QR image
    image = models.BinaryField(null=True, blank=True, editable=False)
    image_type = models.CharField(max_length=32, blank=True)
    image_sha = models.CharField(max_length=64, blank=True)
    qr_text = models.CharField(_("QR content"), max_length=512, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    cap = models.PositiveIntegerField(_("join cap"), null=True, blank=True)
    # Persisted copies of the counters (Redis holds the live ones).
    joins = models.PositiveIntegerField(_("joins"), default=0)
    scans = models.PositiveIntegerField(_("scans routed here"), default=0)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("pool member")
        verbose_name_plural = _("pool members")
        indexes = [models.Index(fields=["chat"], name="livecodetarget_chat")]

    def __str__(self) -> str:
        if self.label:
            return self.label
        if self.staff_id:
            return str(self.staff)
        if self.chat_id:
            return str(self.chat)
        return f"#{self.pk}"


class JoinWay(TimeStampedModel):
    """A WeCom join way over at most 5 of a pool's WeCom groups; the window slides as groups fill."""

    code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="join_ways")
    option = models.ForeignKey(LiveCodeOption, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    config_id = models.CharField(max_length=64)
    qr_url = models.URLField(max_length=512, blank=True)
    chat_ids = models.JSONField(default=list)
    state = models.CharField(max_length=STATE_MAX, unique=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("join way")
        verbose_name_plural = _("join ways")


class Conversion(models.Model):
    """A real add or join attributed to a code (from callbacks), with what happened next."""

    class Kind(models.TextChoices):
        ADD = "add", _("Added a staff member")
        JOIN = "join", _("Joined a group")

    class Welcome(models.TextChoices):
        NONE = "", _("Not sent")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="conversions")
    target = models.ForeignKey(LiveCodeTarget, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    lost_at = models.DateTimeField(null=True, blank=True)
    welcome = models.CharField(max_length=8, choices=Welcome.choices, blank=True, default="")
    welcome_error = models.CharField(max_length=255, blank=True)
    event = models.OneToOneField("contacts.ContactEvent", null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("conversion")
        verbose_name_plural = _("conversions")
        indexes = [
            models.Index(fields=["code", "occurred_at"], name="conversion_code_time"),
            models.Index(fields=["contact", "kind"], name="conversion_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.contact_id} → {self.code_id}"


class ScanEvent(models.Model):
    """One scan, written in batches from the Redis log (never on the request path)."""

    code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey(LiveCodeTarget, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    visitor = models.CharField(max_length=32)
    scanned_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["-scanned_at"]
        verbose_name = _("scan")
        verbose_name_plural = _("scans")
        indexes = [models.Index(fields=["code", "scanned_at"], name="scan_code_time")]

    def __str__(self) -> str:
        return f"{self.code_id} @ {self.scanned_at:%Y-%m-%d %H:%M:%S}"


class DailyStat(models.Model):
    """Scans and unique visitors per code, target (null = whole code) and day, flushed from Redis.

    Adds, joins and losses are counted from ``Conversion`` rows, which the callbacks write.
    """

    code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="daily_stats")
    target = models.ForeignKey(LiveCodeTarget, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    scans = models.PositiveIntegerField(default=0)
    visitors = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["day", "id"]
        verbose_name = _("daily figures")
        verbose_name_plural = _("daily figures")
        constraints = [
            models.UniqueConstraint(fields=["code", "target", "day"], name="dailystat_unique",
                                    nulls_distinct=False),
        ]

    def __str__(self) -> str:
        return f"{self.code_id} {self.day}"


class Alert(TimeStampedModel):
    class Kind(models.TextChoices):
        EXPIRING = "expiring", _("Group QR expiring")
        EXPIRED = "expired", _("Group QR expired")
        LOW_CAPACITY = "low_capacity", _("Little capacity left")
        FORECAST = "forecast", _("Pool fills soon")
        STAFF_CAP = "staff_cap", _("Staff daily cap reached")
        EXHAUSTED = "exhausted", _("Nothing left to route to")
        PUBLISH_FAILED = "publish_failed", _("WeCom refused the configuration")
        WELCOME_MEDIA = "welcome_media", _("Welcome image not uploaded")

    code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="alerts")
    target = models.ForeignKey(LiveCodeTarget, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    message = models.CharField(_("message"), max_length=255)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        constraints = [
            models.UniqueConstraint(fields=["code", "target", "kind"], name="alert_open_unique",
                                    condition=Q(resolved_at__isnull=True), nulls_distinct=False),
        ]


class WelcomeImage(TimeStampedModel):
    """An image the operator uploaded for a code's welcome message (PNG/JPEG, checked like group QR images).

    WeCom takes images in welcome messages only as temporary media (valid 3 days): the image is uploaded when a
    welcome goes out and its ``media_id`` is reused until less than an hour of it is left.
    """

    code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="welcome_images")
    image = models.BinaryField(editable=False)
    image_type = models.CharField(max_length=32)
    image_sha = models.CharField(max_length=64)
    name = models.CharField(_("file name"), max_length=100, blank=True)
    position = models.PositiveIntegerField(default=0)
    media_id = models.CharField(max_length=128, blank=True)
    media_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("welcome image")
        verbose_name_plural = _("welcome images")

    def __str__(self) -> str:
        return self.name or f"#{self.pk}"


class WelcomeMiniProgram(TimeStampedModel):
    """A mini-program card in a code's welcome message: its title, appid and page, and the cover image the
    operator uploaded (PNG/JPEG, checked like welcome images).

    WeCom takes the cover only as a temporary media id (``pic_media_id``, valid 3 days): like a welcome image, the
    cover is uploaded when a welcome goes out and its ``media_id`` reused until less than an hour of it is left.
    A card without a cover (typed in before covers were uploaded, see migration 0003) is left out of the welcome
    until the operator uploads one.
    """

    code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="welcome_miniprograms")
    title = models.CharField(_("mini-program title"), max_length=64)
    appid = models.CharField(_("mini-program appid"), max_length=32)
    page = models.CharField(_("mini-program page"), max_length=255)
    position = models.PositiveIntegerField(default=0)
    image = models.BinaryField(_("cover image"), null=True, blank=True, editable=False)
    image_type = models.CharField(max_length=32, blank=True)
    image_sha = models.CharField(max_length=64, blank=True)
    name = models.CharField(_("cover file name"), max_length=100, blank=True)
    media_id = models.CharField(max_length=128, blank=True)
    media_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("welcome mini-program")
        verbose_name_plural = _("welcome mini-programs")

    def __str__(self) -> str:
        return self.title

    @property
    def has_cover(self) -> bool:
        return bool(self.image_sha)


class WelcomeDefault(TimeStampedModel):
    """The corp's default welcome message, used by codes that have none of their own."""

    corp = models.OneToOneField("contacts.Corp", on_delete=models.CASCADE, related_name="+")
    text = models.TextField(_("default welcome message"), blank=True)

    class Meta:
        verbose_name = _("default welcome message")
        verbose_name_plural = _("default welcome messages")
