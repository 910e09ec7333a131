from django.db import models
from django.utils.translation import gettext_lazy as _


class ModelRun(models.Model):
    """One nightly training of one predictive model (or its heuristic fallback) for one corp.

    The latest run per (corp, kind) scores everyone and explains single scores on the profile: the coefficients,
    feature means and standard deviations are stored, so a contact's reasons are recomputed from its features alone.
    """

    class Kind(models.TextChoices):
        CHURN = "churn", _("Churn risk")
        PROPENSITY = "propensity", _("Purchase propensity")

    class Method(models.TextChoices):
        MODEL = "model", _("Logistic regression")
        HEURISTIC = "heuristic", _("Heuristic")

    corp = models.ForeignKey("contacts.Corp", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    method = models.CharField(_("method"), max_length=16, choices=Method.choices)
    heuristic_reason = models.CharField(_("why the heuristic"), max_length=255, blank=True)
    # Training window: features as of cutoff, labels over (cutoff, cutoff + 30 d]; holdout one window later.
    cutoff = models.DateTimeField(_("training cutoff"))
    test_cutoff = models.DateTimeField(_("holdout cutoff"))
    trained_at = models.DateTimeField(_("trained at"))
    seed = models.PositiveIntegerField(_("seed"), default=0)
    n_train = models.PositiveIntegerField(_("training customers"), default=0)
    n_test = models.PositiveIntegerField(_("holdout customers"), default=0)
    positives = models.PositiveIntegerField(_("positives in training"), default=0)
    test_positives = models.PositiveIntegerField(_("positives in holdout"), default=0)
    auc = models.FloatField(_("holdout AUC"), null=True, blank=True)
    features = models.JSONField(_("features"), default=list)
    coefficients = models.JSONField(_("coefficients"), default=list)
    intercept = models.FloatField(_("intercept"), default=0.0)
    means = models.JSONField(_("feature means"), default=list)
    stds = models.JSONField(_("feature standard deviations"), default=list)
    n_scored = models.PositiveIntegerField(_("customers scored"), default=0)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    peak_memory_mb = models.PositiveIntegerField(_("peak memory (MB)"), default=0)

    class Meta:
        ordering = ["-trained_at", "-id"]
        verbose_name = _("model run")
        verbose_name_plural = _("model runs")
        indexes = [models.Index(fields=["corp", "kind", "-trained_at"], name="modelrun_latest")]

    def __str__(self) -> str:
        return f"{self.kind} {self.method} @ {self.trained_at:%Y-%m-%d %H:%M}"
