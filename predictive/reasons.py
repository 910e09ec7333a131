"""Human words for features: a column name for the coefficient table and a sentence for one customer's value."""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from predictive.features import CAP_DAYS

LABELS = {
    "days_since_activity": gettext_lazy("Days since last interaction"),
    "tenure_days": gettext_lazy("Days as a customer"),
    "order_count": gettext_lazy("Orders (log)"),
    "total_spent": gettext_lazy("Total spent (log)"),
    "days_since_order": gettext_lazy("Days since last order"),
    "events_30d": gettext_lazy("Interactions in the last 30 days (log)"),
    "events_30_90d": gettext_lazy("Interactions 30–90 days ago (log)"),
    "groups_active": gettext_lazy("Customer groups joined"),
    "relations_active": gettext_lazy("Staff members added"),
    "channel_livecode": gettext_lazy("Added through a live code"),
    "channel_other": gettext_lazy("Added through another channel"),
    "gender_male": gettext_lazy("Male"),
    "gender_female": gettext_lazy("Female"),
    "journey_touches_30d": gettext_lazy("Journey messages in the last 30 days (log)"),
}


def feature_label(name: str) -> str:
    return str(LABELS.get(name, name))


def _days(value: float, never: str, some: str) -> str:
    n = int(value)
    if n >= CAP_DAYS:
        return never
    return some % {"n": n}


def reason_text(name: str, value: float) -> str:  # noqa: PLR0911 - one sentence per feature
    """One customer's value of one feature, as a sentence ("已 45 天无互动")."""
    n = int(round(value))
    if name == "days_since_activity":
        return _days(value, _("No interaction on record"),
                     ngettext("No interaction for %(n)s day", "No interaction for %(n)s days", n))
    if name == "days_since_order":
        if n >= CAP_DAYS:
            return _("Has never ordered")
        if n >= 30:
            return ngettext("No order in the last %(n)s day", "No order in the last %(n)s days", n) % {"n": n}
        return ngettext("Last order %(n)s day ago", "Last order %(n)s days ago", n) % {"n": n}
    if name == "tenure_days":
        return ngettext("A customer for %(n)s day", "A customer for %(n)s days", n) % {"n": n}
    if name == "order_count":
        return ngettext("%(n)s order so far", "%(n)s orders so far", n) % {"n": n}
    if name == "total_spent":
        return _("Spent ¥%(amount)s so far") % {"amount": f"{value:,.0f}"}
    if name == "events_30d":
        return ngettext("%(n)s interaction in the last 30 days", "%(n)s interactions in the last 30 days", n) % {
            "n": n}
    if name == "events_30_90d":
        return ngettext("%(n)s interaction 30–90 days ago", "%(n)s interactions 30–90 days ago", n) % {"n": n}
    if name == "groups_active":
        return ngettext("In %(n)s customer group", "In %(n)s customer groups", n) % {"n": n}
    if name == "relations_active":
        return ngettext("Customer of %(n)s staff member", "Customer of %(n)s staff members", n) % {"n": n}
    if name == "journey_touches_30d":
        return ngettext("%(n)s journey message in the last 30 days", "%(n)s journey messages in the last 30 days",
                        n) % {"n": n}
    if name == "channel_livecode":
        return _("Added through a live code") if n else _("Not added through a live code")
    if name == "channel_other":
        return _("Added through another channel") if n else _("Not added through another channel")
    if name in ("gender_male", "gender_female"):
        label = _("Male") if name == "gender_male" else _("Female")
        return label if n else _("Gender: not %(label)s") % {"label": label}
    return feature_label(name)
