from django.db import models
from django.utils.translation import gettext_lazy as _


class CallbackEvent(models.Model):
    """Every accepted WeCom callback, stored once (``event_key``) before we answer WeCom."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSED = "processed", _("Processed")
        IGNORED = "ignored", _("Ignored (unknown type)")
        FAILED = "failed", _("Failed")

    event_key = models.CharField(max_length=64, unique=True)
    corp_id = models.CharField(max_length=64)
    agent_id = models.CharField(max_length=32, blank=True)
    event = models.CharField(max_length=64, blank=True)
    change_type = models.CharField(max_length=64, blank=True)
    event_time = models.DateTimeField(null=True, blank=True)
    payload = models.TextField(help_text=_("The decrypted event XML."))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    deliveries = models.PositiveIntegerField(default=1, help_text=_("How many times WeCom delivered it."))
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("callback event")
        verbose_name_plural = _("callback events")
        indexes = [
            models.Index(fields=["received_at"], name="callback_pending",
                         condition=models.Q(status="pending")),
            models.Index(fields=["event", "change_type"], name="callback_type"),
        ]

    def __str__(self) -> str:
        return f"{self.event}/{self.change_type} #{self.pk}"
