"""Query-string forms of the list pages. Invalid values are dropped (and shown), never guessed."""

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from contacts import selectors
from contacts.models import GroupChat


class KeysetCursorForm(forms.Form):
    after = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    before = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def filters(self) -> dict:
        """The valid values; a missing or invalid one is None (its error stays on the form to be shown)."""
        self.is_valid()
        return {name: self.cleaned_data.get(name) for name in self.fields}


class ContactFilterForm(KeysetCursorForm):
    q = forms.CharField(
        label=_("Search"), required=False, max_length=128, strip=True,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Name, remark or external userid"),
                                      "autocomplete": "off"}),
    )
    staff = forms.ChoiceField(label=_("Staff member"), required=False)
    customers_only = forms.BooleanField(label=_("Customers only"), required=False)
    tag = forms.TypedChoiceField(label=_("Tag"), required=False, coerce=int, empty_value=None)

    def __init__(self, data, *, user: User):
        from tagging.selectors import tag_choices

        super().__init__(data)
        self.fields["staff"].choices = [("", _("All staff")),
                                        *((s.userid, s.name or s.userid) for s in selectors.staff_list(user=user))]
        self.fields["tag"].choices = [("", _("Any tag")), *tag_choices()]

    def tag_options(self, *, selected=None) -> str:
        """The tag <option>s in their <optgroup>s, built here in one pass: with thousands of tags a template
        loop would be most of the page's time."""
        from django.utils.html import format_html, format_html_join

        groups = [(label, choices) for label, choices in self.fields["tag"].choices if label != ""]
        return format_html_join("", '<optgroup label="{}">{}</optgroup>', (
            (label, format_html_join("", "{}", ((format_html('<option value="{}"{}>{}</option>', tag_id,
                                                               " selected" if tag_id == selected else "", name),)
                                                  for tag_id, name in choices)))
            for label, choices in groups))

    def tag_filter_options(self) -> str:
        self.is_valid()
        return self.tag_options(selected=self.cleaned_data.get("tag"))


class ContactBulkTagForm(forms.Form):
    """Tag or untag from the contact list: the ticked rows, or every contact matching the list's filters."""

    action = forms.ChoiceField(choices=[("tag", _("Add tag")), ("untag", _("Remove tag"))])
    tag_id = forms.IntegerField(label=_("Tag"), min_value=1)
    contact_ids = forms.TypedMultipleChoiceField(required=False, coerce=int)
    all_matching = forms.BooleanField(label=_("All matching contacts"), required=False)
    q = forms.CharField(required=False, max_length=128)
    staff = forms.CharField(required=False, max_length=64)
    customers_only = forms.BooleanField(required=False)
    tag = forms.IntegerField(required=False, min_value=1)

    def __init__(self, data):
        super().__init__(data)
        # Any integers: which of them the user may see is decided by the selector when the job runs.
        self.fields["contact_ids"].valid_value = lambda value: True

    def clean(self):
        data = super().clean()
        if not data.get("all_matching") and not data.get("contact_ids"):
            raise forms.ValidationError(_("Tick some contacts, or choose all matching contacts."))
        return data


class GroupFilterForm(KeysetCursorForm):
    q = forms.CharField(
        label=_("Search"), required=False, max_length=128, strip=True,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Group name or chat id"),
                                      "autocomplete": "off"}),
    )
    status = forms.ChoiceField(label=_("Status"), required=False,
                               choices=[("", _("All statuses")), *GroupChat.Status.choices])


class GroupMembersForm(forms.Form):
    left = forms.BooleanField(label=_("Show members who left"), required=False)
