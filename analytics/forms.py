"""Query-string forms of the analytics pages: the date range (a preset or custom dates) and each page's selectors.

A page with no query string shows the last 30 days. Invalid input is reported on the form, never guessed.
"""

from datetime import date, timedelta

from django import forms
from django.utils.translation import gettext_lazy as _

from analytics.selectors import MAX_PERIOD_DAYS, Period, today

PRESETS = [("7", _("Last 7 days")), ("30", _("Last 30 days")), ("90", _("Last 90 days")),
           ("365", _("Last 365 days")), ("custom", _("Custom range"))]
DEFAULT_PRESET = "30"


class RangeForm(forms.Form):
    """The date range of every dashboard, plus optional page-specific fields added by subclasses."""

    range = forms.ChoiceField(label=_("Period"), choices=PRESETS, required=False)
    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data=None):
        data = data.copy() if data is not None else {}
        if not data.get("range"):
            # Custom dates without a preset mean a custom range; nothing at all means the default preset.
            data["range"] = "custom" if data.get("start") or data.get("end") else DEFAULT_PRESET
        super().__init__(data)

    def clean(self):
        data = super().clean()
        preset = data.get("range")
        if not preset or self.errors:
            return data
        if preset != "custom":
            end = today()
            data["start"], data["end"] = end - timedelta(days=int(preset) - 1), end
            return data
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            raise forms.ValidationError(_("A custom range needs both a start and an end date."))
        if start > end:
            raise forms.ValidationError(_("The start date must not be after the end date."))
        if end > today():
            raise forms.ValidationError(_("The end date must not be in the future."))
        if (end - start).days + 1 > MAX_PERIOD_DAYS:
            raise forms.ValidationError(_("A range may cover at most %(days)s days.") % {"days": MAX_PERIOD_DAYS})
        return data

    def period(self) -> Period:
        return Period(start=self.cleaned_data["start"], end=self.cleaned_data["end"])

    def effective(self, name: str) -> str:
        """The value in effect: the cleaned one (defaults applied) when valid, else what was sent."""
        if self.is_valid():
            value = self.cleaned_data.get(name)
            return "" if value is None else (value.isoformat() if isinstance(value, date) else str(value))
        return self.data.get(name) or ""

    def controls(self) -> list[dict]:
        """The select boxes of this page (the period preset first), each option marked when in effect."""
        hidden = set(self.HIDDEN)
        return [{"name": field.name, "label": field.label, "id": field.id_for_label,
                 "options": [(str(value), label, str(value) == self.effective(field.name))
                             for value, label in field.field.choices]}
                for field in self if isinstance(field.field, forms.ChoiceField) and field.name not in hidden]

    HIDDEN: tuple[str, ...] = ()

    @property
    def start_value(self) -> str:
        return self.effective("start")

    @property
    def end_value(self) -> str:
        return self.effective("end")


def dimension_field(choices: list[tuple[str, str]]) -> forms.ChoiceField:
    return forms.ChoiceField(label=_("Breakdown"), choices=choices, required=False)


class GrowthForm(RangeForm):
    DIMENSIONS = [("source", _("Source")), ("livecode", _("Live code")), ("staff", _("Staff member"))]
    by = dimension_field(DIMENSIONS)

    def clean_by(self):
        return self.cleaned_data.get("by") or "source"


class FunnelForm(RangeForm):
    DIMENSIONS = [("", _("All customers")), ("channel", _("Channel")), ("livecode", _("Live code"))]
    by = dimension_field(DIMENSIONS)

    def clean_by(self):
        return self.cleaned_data.get("by") or None


class RetentionForm(RangeForm):
    SHOW = [("still", _("Still a customer")), ("active", _("Active"))]
    WEEKS = [("12", _("12 weeks")), ("4", _("4 weeks")), ("8", _("8 weeks")), ("26", _("26 weeks"))]
    HIDDEN = ("show",)  # toggled by the links above the cohort table, carried by a hidden input
    show = forms.ChoiceField(label=_("Show"), choices=SHOW, required=False)
    weeks = forms.TypedChoiceField(label=_("Weeks"), choices=WEEKS, coerce=int, required=False, empty_value=12)

    def clean_show(self):
        return self.cleaned_data.get("show") or "still"


class LtvForm(RangeForm):
    DIMENSIONS = [("channel", _("Channel")), ("livecode", _("Live code"))]
    by = dimension_field(DIMENSIONS)

    def clean_by(self):
        return self.cleaned_data.get("by") or "channel"


class CampaignForm(RangeForm):
    DAYS = [("7", _("7 days")), ("1", _("1 day")), ("30", _("30 days"))]
    days = forms.TypedChoiceField(label=_("Within"), choices=DAYS, coerce=int, required=False, empty_value=7)


class StaffForm(RangeForm):
    pass


class DrilldownPageForm(forms.Form):
    """The drill-down list's own parameters; everything else in the query string is the DrilldownSpec."""

    after = forms.IntegerField(required=False, min_value=1)
    before = forms.IntegerField(required=False, min_value=0)
    format = forms.ChoiceField(required=False, choices=[("", ""), ("csv", "csv")])

    def values(self) -> dict:
        self.is_valid()
        return {name: self.cleaned_data.get(name) for name in self.fields}
