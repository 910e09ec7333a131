from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A person who logs in. ``role`` decides what they see; a guide is tied to one WeCom staff member."""

    class Role(models.TextChoices):
        ADMIN = "admin", _("Admin")
        OPERATOR = "operator", _("Operator")
        GUIDE = "guide", _("Guide")

    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.OPERATOR)
    staff = models.OneToOneField(
        "contacts.Staff",
        verbose_name=_("staff member"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="user",
        help_text=_("For guides: the WeCom staff member whose customers this user may see."),
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(role="guide") | models.Q(staff__isnull=False),
                name="guide_has_staff",
                violation_error_message=_("A guide must be linked to a staff member."),
            ),
        ]

    @property
    def is_guide(self) -> bool:
        return self.role == self.Role.GUIDE and not self.is_superuser

    @property
    def is_admin(self) -> bool:
        return self.is_superuser or self.role == self.Role.ADMIN
