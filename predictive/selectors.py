"""Reads: the model page (latest runs, coefficients, score histograms, tag counts) and one contact's prediction."""

from dataclasses import dataclass, field

import numpy as np
from django.db import connection
from django.db.models import Count
from django.utils.translation import gettext as _

from contacts.models import Contact, ContactFacts, Corp
from predictive import training
from predictive.features import FEATURES, features_extract
from predictive.models import ModelRun
from predictive.reasons import feature_label, reason_text
from scrm.clock import now
from tagging.models import ContactTag, Dimension, Tag
from web.charts import level  # bar heights bar-h0…bar-h20 (CSS classes: the CSP forbids inline styles)

BINS = 10
SCORE_FIELDS = {"churn": "churn_risk", "propensity": "purchase_propensity"}


@dataclass(frozen=True)
class Coefficient:
    label: str
    value: float
    positive: bool


@dataclass(frozen=True)
class HistogramBar:
    low: float
    high: float
    count: int
    level: int


@dataclass(frozen=True)
class ModelPanel:
    kind: str
    title: str
    run: ModelRun | None
    heuristic_note: str
    coefficients: list[Coefficient]
    histogram: list[HistogramBar]
    scored: int


@dataclass(frozen=True)
class TagCount:
    tag: Tag
    count: int


@dataclass(frozen=True)
class Overview:
    corp: Corp | None
    panels: list[ModelPanel]
    tags: list[TagCount]

    @property
    def trained(self) -> bool:
        return any(panel.run for panel in self.panels)


def latest_run(*, corp_id: int, kind: str) -> ModelRun | None:
    return ModelRun.objects.filter(corp_id=corp_id, kind=kind).order_by("-trained_at", "-id").first()


def heuristic_note(run: ModelRun) -> str:
    if run.method != ModelRun.Method.HEURISTIC:
        return ""
    if run.heuristic_reason == "too_few":
        return _("Too little history to learn from: %(n)s labelled customers in the training window, at least "
                 "%(min)s are needed. A transparent heuristic of recency and frequency is used instead.") % {
            "n": run.n_train, "min": training.MIN_LABELLED}
    return _("The training or holdout window holds only one outcome (everyone did or nobody did), so nothing can "
             "be learned yet. A transparent heuristic of recency and frequency is used instead.")


def _coefficients(run: ModelRun) -> list[Coefficient]:
    rows = [Coefficient(label=feature_label(name), value=value, positive=value > 0)
            for name, value in zip(run.features, run.coefficients, strict=False)]
    return sorted(rows, key=lambda row: -abs(row.value))


def score_histogram(*, corp_id: int, kind: str) -> tuple[list[HistogramBar], int]:
    column = SCORE_FIELDS[kind]
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT LEAST(width_bucket(f.{column}, 0, 1, %s), %s) AS b, count(*) "  # noqa: S608 - column is ours
            f"FROM {ContactFacts._meta.db_table} f JOIN {Contact._meta.db_table} c ON c.id = f.contact_id "
            f"WHERE c.corp_id = %s AND f.{column} IS NOT NULL GROUP BY b", [BINS, BINS, corp_id])
        counts = dict(cur.fetchall())
    peak = max(counts.values(), default=0)
    bars = [HistogramBar(low=(b - 1) / BINS, high=b / BINS, count=counts.get(b, 0), level=level(counts.get(b, 0), peak))
            for b in range(1, BINS + 1)]
    return bars, sum(counts.values())


def predictive_tag_counts(*, corp_id: int) -> list[TagCount]:
    tags = list(Tag.objects.filter(group__corp_id=corp_id, group__dimension=Dimension.PREDICTIVE)
                .select_related("group").order_by("group__order", "order", "pk"))
    counts = dict(ContactTag.objects.filter(tag__in=tags).values("tag_id").annotate(n=Count("id"))
                  .values_list("tag_id", "n"))
    return [TagCount(tag=tag, count=counts.get(tag.pk, 0)) for tag in tags]


def predictive_overview() -> Overview:
    """The page: the first corp (one corp per installation), its latest run per model kind."""
    corp = Corp.objects.order_by("pk").first()
    if corp is None:
        return Overview(corp=None, panels=[], tags=[])
    panels = []
    for kind, title in ModelRun.Kind.choices:
        run = latest_run(corp_id=corp.pk, kind=kind)
        bars, scored = score_histogram(corp_id=corp.pk, kind=kind) if run else ([], 0)
        panels.append(ModelPanel(kind=kind, title=str(title), run=run, heuristic_note=heuristic_note(run) if run else "",
                                 coefficients=_coefficients(run) if run and run.coefficients else [],
                                 histogram=bars, scored=scored))
    return Overview(corp=corp, panels=panels, tags=predictive_tag_counts(corp_id=corp.pk))


# --- one contact ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    kind: str
    title: str
    value: float | None
    method: str
    reasons: list[str] = field(default_factory=list)


def _reasons(run: ModelRun, raw: np.ndarray) -> list[str]:
    if run.features != list(FEATURES):
        return []  # trained on another feature layout: wait for the next run
    if run.method == ModelRun.Method.MODEL:
        fitted = training.Fitted(coefficients=tuple(run.coefficients), intercept=run.intercept,
                                 means=tuple(run.means), stds=tuple(run.stds))
        values = training.contributions(fitted, raw)[0]
    else:
        values = training.heuristic_terms(run.kind, raw)[0]
    return [reason_text(FEATURES[i], float(raw[0, i])) for i in training.top_reasons(values)]


def contact_prediction_for_user(*, user, contact_id: int) -> list[Score]:
    """Raises Http404 when the user may not see the contact (a guide who does not follow them)."""
    from contacts.selectors import contact_get_for_user

    return contact_prediction(contact=contact_get_for_user(user=user, contact_id=contact_id))


def contact_prediction(*, contact: Contact) -> list[Score]:
    """The stored scores and, from the latest runs, the top three reasons (recomputed from current features).

    The caller has already checked that the user may see ``contact``. Empty when no model has run yet.
    """
    runs = {kind: latest_run(corp_id=contact.corp_id, kind=kind) for kind in SCORE_FIELDS}
    if not any(runs.values()):
        return []
    facts = ContactFacts.objects.filter(contact_id=contact.pk).only(*SCORE_FIELDS.values()).first()
    current = features_extract(corp_id=contact.corp_id, at=now(), labels=False, contact_id=contact.pk)
    scores = []
    for kind, title in ModelRun.Kind.choices:
        run = runs[kind]
        value = getattr(facts, SCORE_FIELDS[kind]) if facts else None
        reasons = _reasons(run, current.raw) if run and current.size and value is not None else []
        scores.append(Score(kind=kind, title=str(title), value=value,
                            method=run.get_method_display() if run else "", reasons=reasons))
    return scores
